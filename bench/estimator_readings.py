"""What a noise-estimating model reads, and what its reading costs it (issue 24).

For each model (a directory or built-in name that estimates its own noise map), one
line per probe, the map's median on the 0-255 scale:

- flat gray 128 with Gaussian noise of each of `--sigmas` (the estimate alone);
- the first `--limit` Set12 images (gray, given as `dae` gives a gray photograph to a
  colour model) at each sigma: the reading, and the PSNR denoised by the model's own
  reading against the PSNR given the true sigma (the gap is what the estimate costs);
- the first `--limit` clean McMaster images: the reading as they are, turned gray and
  twice as saturated, and the PSNR by the model's own reading against the PSNR given
  level 0 (what a false reading of noise costs a clean photograph).

    python bench/estimator_readings.py /tmp/photo-leg --limit 4
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

SHARED = common.ROOT.parent / "shared" / "data"
SET12 = SHARED / "photos" / "set12"
MCMASTER = SHARED / "photos-color" / "mcmaster"


def as_8_bit(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0, 1) * 255) / 255


def read_images(folder: Path, mode: str, limit: int) -> list[np.ndarray]:
    from PIL import Image

    return [
        np.asarray(Image.open(path).convert(mode), np.float32) / 255 for path in sorted(folder.glob("*.png"))[:limit]
    ]


def saturated(image: np.ndarray, factor: float) -> np.ndarray:
    """`image` with its saturation times `factor`, as `dae train --saturation-range` makes it."""
    from dae_cli.backend import tf
    from dae_cli.training.data import vary_saturation

    return vary_saturation(tf.constant(image[None]), tf.constant([0, 0], tf.int64), (factor, factor)).numpy()[0]


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    from dae_cli.apply.metrics import psnr as psnr_per_image

    return float(psnr_per_image(reference[None], image[None].astype(np.float32))[0])


def probe(model_name: str, sigmas: list[float], limit: int) -> None:
    from dae_cli.apply.pipeline import denoise_array
    from dae_cli.models.builtin_models import resolve_model
    from dae_cli.models.denoiser import ApplyOptions, load_denoiser

    model = load_denoiser(resolve_model(model_name))
    rng = np.random.default_rng(0)

    def run(image: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, float]:
        out, level, _ = denoise_array(model, image, 3, ApplyOptions(sigma=sigma))
        return as_8_bit(out), level * 255

    def noisy(image: np.ndarray, sigma: float) -> np.ndarray:
        return as_8_bit(image + rng.normal(0, sigma / 255, image.shape)).astype(np.float32)

    print(f"## {model_name}")
    flat = np.full((128, 128, 3), 0.5, np.float32)
    readings = [run(noisy(flat, sigma))[1] for sigma in sigmas]
    print("flat gray, sigma " + "/".join(f"{s:g}" for s in sigmas) + " reads " + "/".join(f"{r:.1f}" for r in readings))
    gray = [image[..., None] for image in read_images(SET12, "L", limit)]
    for sigma in sigmas:
        own, given, read = [], [], []
        for clean in gray:
            noisy_gray = noisy(clean, sigma)
            colour, reference = np.repeat(noisy_gray, 3, -1), np.repeat(clean, 3, -1)
            out, level = run(colour)
            own.append(psnr(reference, out)), read.append(level)
            given.append(psnr(reference, run(colour, sigma / 255)[0]))
        print(
            f"Set12 first {len(gray)}, sigma {sigma:g}: reads {np.median(read):.1f}; "
            f"PSNR by its reading {np.mean(own):.2f}, given the sigma {np.mean(given):.2f}"
        )
    for index, clean in enumerate(read_images(MCMASTER, "RGB", limit), start=1):
        out, level = run(clean)
        gray_level = run(saturated(clean, 0.0))[1]
        vivid_level = run(saturated(clean, 2.0))[1]
        at_zero = psnr(clean, run(clean, 0.0)[0])
        print(
            f"clean McMaster {index:02d}: reads {level:.1f} (gray {gray_level:.1f}, twice as saturated "
            f"{vivid_level:.1f}); PSNR by its reading {psnr(clean, out):.2f}, given level 0 {at_zero:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="directories or built-in names of noise-estimating models")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[5, 15, 25, 50])
    parser.add_argument("--limit", type=int, default=4, help="the first N images of Set12 and McMaster")
    args = parser.parse_args()
    print(f"Machine: {common.machine()}; command: python bench/estimator_readings.py {' '.join(sys.argv[1:])}")
    for model in args.models:
        probe(model, args.sigmas, args.limit)
    sys.stdout.flush()
    os._exit(0)  # tf.data's threads can hang the interpreter's teardown


if __name__ == "__main__":
    main()
