"""Where `dae denoise DIR` spends its time on many small files: each stage alone, in one process.

Writes `--files` noisy MNIST digits as 28x28 PNGs into a temporary folder, then times,
per image, in wall and CPU microseconds (CPU: every thread of the process):
reading and planning (`reading.read_all`, `tf.data` for plain PNGs), the model alone on
batches of 256, the batching stage with the model (`pipeline.run_plans`), and encoding
and writing the outputs (the writer's own code, in this thread). Issue 25 (BENCHMARKS.md).

    python bench/file_stages.py --files 3000
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from dae_cli.apply import pipeline, reading  # noqa: E402
from dae_cli.apply.outcomes import OutcomeLog, output_paths  # noqa: E402
from dae_cli.apply.writer import Writer  # noqa: E402
from dae_cli.io import image_io  # noqa: E402
from dae_cli.models.builtin_models import resolve_model  # noqa: E402
from dae_cli.models.denoiser import ApplyOptions, load_denoiser  # noqa: E402


def timed(label: str, count: int, work):
    started, cpu = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{label}: {wall * 1e6 / count:.0f} us wall, {cpu * 1e6 / count:.0f} us CPU an image", flush=True)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    args = parser.parse_args(argv)
    _, x_test = common.load_mnist()
    noisy = np.clip(x_test[: args.files] / 255 + np.random.default_rng(0).normal(0.5, 0.5, (args.files, 28, 28)), 0, 1)
    with tempfile.TemporaryDirectory(prefix="dae-stages-") as temporary:
        folder = Path(temporary) / "in"
        folder.mkdir()
        for i, pixels in enumerate(np.rint(noisy * 255).astype(np.uint8)):
            Image.fromarray(pixels).save(folder / f"{i:05d}.png")
        model = load_denoiser(resolve_model("mnist"))
        paths = image_io.expand_inputs([str(folder)])
        outputs = output_paths(paths, Path(temporary) / "out", "denoised")
        prepare = pipeline._plan_denoise(model, ApplyOptions())
        list(reading.read_all(paths[:300], outputs[:300], 1, prepare=prepare, plain_png_shape=(28, 28, 1)))
        items = timed(
            "read and plan",
            len(paths),
            lambda: list(reading.read_all(paths, outputs, 1, prepare=prepare, plain_png_shape=(28, 28, 1))),
        )
        batch = np.random.default_rng(0).random((256, 28, 28, 1), np.float32)
        model.denoise(batch)
        timed("the model alone", 12 * 256, lambda: [model.denoise(batch) for _ in range(12)])
        limit = model.batch_limit(ApplyOptions())
        finished = timed(
            "batching with the model",
            len(items),
            lambda: list(pipeline.run_plans(((item, item.prepared) for item in items), model.denoise, limit)),
        )
        writer = Writer(OutcomeLog(lambda outcome: None), False, image_io.OutputOptions())
        images = [
            pipeline._finished_image(item, work, lambda message: None) for done in finished for item, work in done
        ]
        timed("encode and write", len(images), lambda: writer._write(images))
        writer.close()


if __name__ == "__main__":
    main()
