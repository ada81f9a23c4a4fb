"""Which conv architecture denoises photographs best for a fixed CPU training budget?

Two steps, because the CPU here is slow and a GPU, where one is lent, has no
TensorFlow (Keras 3 runs there on JAX; `dae_cli.models.networks` uses only Keras layers and ops):

1. `--measure-cpu OUT.json`, on the CPU that will train: each candidate's training
   throughput (pixels/s, forward and backward, median of timed batches).
2. `--train RATES.json`, anywhere (GPU with KERAS_BACKEND=jax): each candidate trains
   on random 64x64 crops of train400 at sigma 25 for as many pixels as the CPU would
   get through in `--cpu-seconds`, then is scored on Set12 (noisy input clipped and
   quantised to 8 bits, as `bench/photos.py` does). One JSON line per candidate.

    python bench/arch_sweep.py --measure-cpu bench/results/cpu-rates.json
    KERAS_BACKEND=jax python bench/arch_sweep.py --train bench/results/cpu-rates.json \
        --photos ../shared/data/photos --cpu-seconds 3000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    # dae_cli.backend imports TensorFlow; on a Keras-on-JAX machine give the model
    # module plain Keras instead.
    import keras

    sys.modules["dae_cli.backend"] = types.SimpleNamespace(keras=keras, tf=None)
from dae_cli.backend import keras  # noqa: E402
from dae_cli.models.networks import build_conv_decoder, build_conv_encoder, compose  # noqa: E402

PATCH, BATCH, SIGMA = 64, 32, 25 / 255

CANDIDATES = {
    "u3-32-b2": dict(layer_filters=[32, 64, 128], blocks=2),
    "u3-32-b2-mae": dict(layer_filters=[32, 64, 128], blocks=2, loss="mae"),
    "u3-32-b2-lr2e-3": dict(layer_filters=[32, 64, 128], blocks=2, lr=2e-3),
    "u3-32-b1": dict(layer_filters=[32, 64, 128], blocks=1),
    "u4-32-b2": dict(layer_filters=[32, 64, 128, 256], blocks=2),
    "u4-16-b2": dict(layer_filters=[16, 32, 64, 128], blocks=2),
    "u4-24-b2": dict(layer_filters=[24, 48, 96, 192], blocks=2),
    "u3-48-b2": dict(layer_filters=[48, 96, 192], blocks=2),
    "u3-32-b2-noskip": dict(layer_filters=[32, 64, 128], blocks=2, skips=False),
    "u3-32-b2-sigmoid": dict(layer_filters=[32, 64, 128], blocks=2, residual=False),
    "u3-32-b2-pool": dict(layer_filters=[32, 64, 128], blocks=2, downsampling="maxpool", upsampling="upsample"),
}
POOL = dict(downsampling="maxpool", upsampling="upsample", loss="mae")
# Round 2: the cheap, pooled, L1-trained shapes that round 1 pointed to.
CANDIDATES.update(
    {
        "u4-16-b2-pool-mae": dict(layer_filters=[16, 32, 64, 128], blocks=2, **POOL),
        "u4-16-b1-pool-mae": dict(layer_filters=[16, 32, 64, 128], blocks=1, **POOL),
        "u3-32-b1-pool-mae": dict(layer_filters=[32, 64, 128], blocks=1, **POOL),
        "u4-24-b1-pool-mae": dict(layer_filters=[24, 48, 96, 192], blocks=1, **POOL),
        "u4-32-b1-pool-mae": dict(layer_filters=[32, 64, 128, 256], blocks=1, **POOL),
        "u5-16-b1-pool-mae": dict(layer_filters=[16, 32, 64, 128, 256], blocks=1, **POOL),
        "u4-16-b2-pool-mae-lr2e-3": dict(layer_filters=[16, 32, 64, 128], blocks=2, lr=2e-3, **POOL),
        "u4-16-b2-mae": dict(layer_filters=[16, 32, 64, 128], blocks=2, loss="mae"),
    }
)
# Round 3: one shape, trained for one sigma or blind over a range, scored at 15, 25, 50.
BLIND = dict(layer_filters=[32, 64, 128], blocks=1, loss="mae")
CANDIDATES.update(
    {
        "u3-32-b1-mae-s25": dict(BLIND, sigma=25 / 255),
        "u3-32-b1-mae-s15": dict(BLIND, sigma=15 / 255),
        "u3-32-b1-mae-s50": dict(BLIND, sigma=50 / 255),
        "u3-32-b1-mae-blind0-55": dict(BLIND, sigma_range=[0, 55 / 255]),
    }
)
ROUND_3 = [name for name in CANDIDATES if name.startswith("u3-32-b1-mae-")]
ROUND_2 = [name for name in CANDIDATES if "pool-mae" in name] + ["u4-16-b2-mae", "u4-16-b2", "u3-32-b1"]


def build(spec):
    arch = {k: v for k, v in spec.items() if k in ("layer_filters", "blocks", "skips", "residual")}
    encoder = build_conv_encoder(1, downsampling=spec.get("downsampling", "strided"), **arch)
    decoder = build_conv_decoder(1, upsampling=spec.get("upsampling", "transpose"), **arch)
    return compose(encoder, decoder, (None, None, 1))


def measure_cpu(out: Path, names, rounds=5):
    # Rounds over all candidates, so that load from other processes falls on each alike.
    x = np.random.default_rng(0).random((BATCH, PATCH, PATCH, 1), dtype=np.float32)
    models = {}
    for name in names:
        models[name] = build(CANDIDATES[name])
        models[name].compile(optimizer="adam", loss=CANDIDATES[name].get("loss", "mse"))
        for _ in range(2):
            models[name].train_on_batch(x, x)
    times = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            started = time.perf_counter()
            for _ in range(2):
                models[name].train_on_batch(x, x)
            times[name].append((time.perf_counter() - started) / 2)
    rates = {name: BATCH * PATCH * PATCH / float(np.median(times[name])) for name in names}
    for name in names:
        print(name, f"{rates[name] / 1e3:.0f} kpx/s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rates, indent=1))


def load_gray(folder: Path):
    from PIL import Image

    return [np.asarray(Image.open(p).convert("L"), np.float32) / 255 for p in sorted(folder.glob("*.png"))]


def psnr(a, b):
    return 10 * math.log10(1 / float(np.mean((a - b) ** 2)))


def score(model, clean_images, depth, rng, sigma=SIGMA):
    values = []
    for clean in clean_images:
        noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1)
        noisy = np.round(noisy * 255) / 255  # an 8-bit PNG, as a user's noisy file is
        h, w = clean.shape
        m = 2**depth
        padded = np.pad(noisy, ((0, -h % m), (0, -w % m)), mode="reflect")
        out = np.asarray(model.predict(padded[None, ..., None].astype(np.float32), verbose=0))[0, :h, :w, 0]
        values.append(psnr(clean, np.clip(out, 0, 1)))
    return float(np.mean(values))


def train(rates: dict, photos: Path, cpu_seconds: float, names, out_file):
    train_images = load_gray(photos / "train400")
    test_images = load_gray(photos / "set12")
    for name in names:
        spec = CANDIDATES[name]
        rng = np.random.default_rng(0)
        keras.utils.set_random_seed(0)
        steps = int(rates[name] * cpu_seconds / (BATCH * PATCH * PATCH))
        model = build(spec)
        schedule = keras.optimizers.schedules.CosineDecay(spec.get("lr", 1e-3), steps, alpha=0.01)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=spec.get("loss", "mse"))
        started = time.perf_counter()
        chunk = 200
        for first in range(0, steps, chunk):
            n = min(chunk, steps - first)
            clean = np.empty((n * BATCH, PATCH, PATCH, 1), np.float32)
            for i in range(n * BATCH):
                image = train_images[rng.integers(len(train_images))]
                y, x = rng.integers(0, image.shape[0] - PATCH + 1), rng.integers(0, image.shape[1] - PATCH + 1)
                patch = image[y : y + PATCH, x : x + PATCH]
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                if rng.random() < 0.5:
                    patch = patch[::-1]
                clean[i, ..., 0] = patch
            if "sigma_range" in spec:
                sigma = rng.uniform(*spec["sigma_range"], size=(len(clean), 1, 1, 1))
            else:
                sigma = spec.get("sigma", SIGMA)
            noisy = np.clip(clean + (rng.normal(0, 1, clean.shape) * sigma).astype(np.float32), 0, 1)
            model.fit(noisy, clean, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        seconds = time.perf_counter() - started
        depth = len(spec["layer_filters"]) - 1
        result = {
            "name": name,
            "spec": spec,
            "cpu_kpx_per_s": round(rates[name] / 1e3, 1),
            "steps": steps,
            "train_seconds_here": round(seconds, 1),
            "set12_psnr_sigma25": round(score(model, test_images, depth, np.random.default_rng(1)), 3),
            "params": model.count_params(),
            "cpu_seconds": cpu_seconds,
            **(
                {
                    f"set12_psnr_sigma{s}": round(
                        score(model, test_images, depth, np.random.default_rng(1), s / 255), 3
                    )
                    for s in (15, 50)
                }
                if "sigma" in spec or "sigma_range" in spec
                else {}
            ),
        }
        line = json.dumps(result)
        print(line, flush=True)
        if out_file:
            with open(out_file, "a") as handle:
                handle.write(line + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure-cpu", type=Path)
    parser.add_argument("--train", type=Path, help="the rates JSON written by --measure-cpu")
    parser.add_argument(
        "--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
    )
    parser.add_argument("--cpu-seconds", type=float, default=3000)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--round2", action="store_true", help="only the second round's candidates")
    parser.add_argument("--round3", action="store_true", help="only the third round's: one sigma or blind")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = args.only or (ROUND_2 if args.round2 else ROUND_3 if args.round3 else list(CANDIDATES))
    if args.measure_cpu:
        measure_cpu(args.measure_cpu, names)
    if args.train:
        train(json.loads(args.train.read_text()), args.photos, args.cpu_seconds, names, args.out)


if __name__ == "__main__":
    main()
