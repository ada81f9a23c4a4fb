"""Photographs: `dae denoise -m photo-gray` against BM3D on Set12, quality and speed.

For each sigma (on the 0-255 scale) the clean Set12 images get seeded Gaussian noise,
clipped to [0, 1] and saved as 8-bit PNGs, as a user's noisy files are. Then, in one
run on the same files:

- `dae denoise NOISY_DIR -m MODEL -o OUT`, a whole process (start-up included): mean
  PSNR against the clean images and megapixels per second;
- the same model in memory (loaded once; each image padded, run and cropped as `dae`
  does): megapixels per second, median of `--repeats` passes;
- BM3D (the `bm3d` package, sigma_psd = sigma/255) on the same noisy files: mean PSNR
  and megapixels per second.

With `--figure PATH` it also writes a picture for the README: a crop of scikit-image's
`coins` photograph (public domain, not a Set12 image) noisy at sigma 25, denoised by
`dae` and by BM3D, side by side.

    python bench/photos.py --model photo-gray --sigmas 15 25 50 --figure docs/photo-gray.png
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SET12 = ROOT.parent / "shared" / "data" / "photos" / "set12"


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return 10 * math.log10(1 / float(np.mean((clean.astype(np.float64) - other.astype(np.float64)) ** 2)))


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), np.float32) / 255


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape), 0, 1)
    return np.rint(noisy * 255).astype(np.uint8)


def make_noisy_set(clean: dict, sigma: float, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    noisy = {}
    for index, (name, image) in enumerate(sorted(clean.items())):
        pixels = add_noise(image, sigma, seed=int(sigma) * 1000 + index)
        Image.fromarray(pixels).save(folder / name)
        noisy[name] = pixels.astype(np.float32) / 255
    return noisy


def run_dae_denoise(model: str, noisy_dir: Path, out_dir: Path) -> float:
    """Seconds for the whole `dae denoise` process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dae_cli", "-q", "denoise", str(noisy_dir), "-m", model, "-o", str(out_dir), "--overwrite"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def in_memory_seconds(model: str, noisy: dict, repeats: int) -> float:
    from dae_cli import artifacts, builtins
    from dae_cli.whole_images import DEFAULT_MAX_PIXELS, plan_whole, run_windows

    loaded = artifacts.load_model(builtins.resolve_model(model))
    images = [image[..., None] for image in noisy.values()]

    def one_pass():
        for image in images:
            plan = plan_whole(image, loaded.size_multiple, DEFAULT_MAX_PIXELS)
            plan.assemble(run_windows(loaded.denoise, plan.tiles, DEFAULT_MAX_PIXELS))

    one_pass()  # traces the SavedModel's functions for these shapes
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return np.clip(bm3d.bm3d(noisy, sigma_psd=sigma / 255), 0, 1)


def measure(model: str, sigma: float, clean: dict, work: Path, repeats: int, with_bm3d: bool) -> dict:
    noisy = make_noisy_set(clean, sigma, work / f"set12-noisy-s{sigma:g}")
    megapixels = sum(image.size for image in clean.values()) / 1e6
    out = work / f"dae-s{sigma:g}"
    seconds = run_dae_denoise(model, work / f"set12-noisy-s{sigma:g}", out)
    denoised = {name: read(out / (Path(name).stem + ".denoised.png")) for name in clean}
    row = {
        "sigma": sigma,
        "megapixels": round(megapixels, 3),
        "psnr_noisy": round(float(np.mean([psnr(clean[n], noisy[n]) for n in clean])), 3),
        "psnr_dae": round(float(np.mean([psnr(clean[n], denoised[n]) for n in clean])), 3),
        "dae_process_seconds": round(seconds, 2),
        "dae_process_mp_per_s": round(megapixels / seconds, 4),
        "dae_in_memory_mp_per_s": round(megapixels / in_memory_seconds(model, noisy, repeats), 4),
        "per_image_psnr_dae": {n: round(psnr(clean[n], denoised[n]), 3) for n in sorted(clean)},
    }
    if with_bm3d:
        started = time.perf_counter()
        restored = {name: bm3d_denoise(image, sigma) for name, image in noisy.items()}
        bm3d_seconds = time.perf_counter() - started
        row.update(
            psnr_bm3d=round(float(np.mean([psnr(clean[n], restored[n]) for n in clean])), 3),
            bm3d_seconds=round(bm3d_seconds, 1),
            bm3d_mp_per_s=round(megapixels / bm3d_seconds, 5),
            per_image_psnr_bm3d={n: round(psnr(clean[n], restored[n]), 3) for n in sorted(clean)},
        )
        row["speed_ratio_process"] = round(row["dae_process_mp_per_s"] / row["bm3d_mp_per_s"], 1)
        row["psnr_gain_over_bm3d"] = round(row["psnr_dae"] - row["psnr_bm3d"], 3)
    return row


def figure(model: str, path: Path, work: Path, sigma: float = 25) -> dict:
    """Noisy, dae and BM3D crops of scikit-image's public-domain `coins`, side by side."""
    from skimage import data

    clean = data.coins().astype(np.float32)[40:232, 60:316] / 255
    noisy_file = work / "coins-noisy.png"
    Image.fromarray(add_noise(clean, sigma, seed=25)).save(noisy_file)
    noisy = read(noisy_file)
    run_dae_denoise(model, noisy_file, work / "coins-dae.png")
    ours = read(work / "coins-dae.png")
    theirs = bm3d_denoise(noisy, sigma)
    gap = np.ones((clean.shape[0], 6), np.float32)
    strip = np.concatenate([noisy, gap, ours, gap, theirs], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(strip * 255).astype(np.uint8)).save(path, optimize=True)
    return {"noisy": round(psnr(clean, noisy), 2), "dae": round(psnr(clean, ours), 2), "bm3d": round(psnr(clean, theirs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="photo-gray")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--set12", type=Path, default=SET12)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "photos")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D (about 30 s per megapixel here)")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    clean = {path.name: read(path) for path in sorted(args.set12.glob("*.png"))}
    results = {"model": args.model, "rows": []}
    for sigma in args.sigmas:
        row = measure(args.model, sigma, clean, args.work, args.repeats, not args.no_bm3d)
        results["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("per_image")}), flush=True)
    if args.figure:
        results["figure"] = figure(args.model, args.figure, args.work)
        print(json.dumps({"figure": str(args.figure), **results["figure"]}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
