"""One photograph through the built-in `photo` model, three ways, taking turns in one process.

`serve`: `Denoiser.denoise`, the two SavedModels as `dae denoise` calls them; `graph`:
one `tf.function` around both; `xla`: the same compiled with XLA. Prints each way's first
call (with XLA, the compile) and the median of `ROUNDS` more, and the largest difference
from `serve`'s output. `IMAGE` is a PNG (default Kodak24's kodim01 from ../shared). Run
it once with `TF_ENABLE_ONEDNN_OPTS=0` and once without to compare TensorFlow's own
kernels with oneDNN's. Issue 25 (BENCHMARKS.md).

    MODES=serve,xla ROUNDS=4 python bench/photo_call.py
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dae_cli.backend import tf  # noqa: E402
from dae_cli.models.builtin_models import resolve_model  # noqa: E402
from dae_cli.models.denoiser import load_denoiser  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("IMAGE", str(ROOT.parent / "shared" / "data" / "photos-color" / "kodak24" / "kodim01.png"))


def main() -> None:
    model = load_denoiser(resolve_model("photo"))
    clean = np.asarray(Image.open(IMAGE).convert("RGB"), np.float32)[None] / 255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    levels = np.array([25 / 255], np.float32)
    inputs = model.model_input(noisy, levels)
    encoder, decoder = model.encoder, model.decoder
    ways = {"serve": lambda: model.denoise(noisy, levels)}
    graph = tf.function(lambda t: decoder.serve(encoder.serve(t)))
    xla = tf.function(lambda t: decoder.serve(encoder.serve(t)), jit_compile=True)
    ways["graph"] = lambda: graph(inputs).numpy()
    ways["xla"] = lambda: xla(inputs).numpy()
    ways = {name: ways[name] for name in os.environ.get("MODES", "serve,graph,xla").split(",")}
    reference = model.denoise(noisy, levels)
    first, difference = {}, {}
    for name, call in ways.items():
        started = time.perf_counter()
        output = call()
        first[name] = round(time.perf_counter() - started, 3)
        difference[name] = float(np.max(np.abs(output - reference)))
    times = {name: [] for name in ways}
    for _ in range(int(os.environ.get("ROUNDS", 4))):
        for name, call in ways.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    median = {name: round(sorted(values)[len(values) // 2], 3) for name, values in times.items()}
    print(json.dumps({"first": first, "median": median, "max_difference": difference}))


if __name__ == "__main__":
    main()
