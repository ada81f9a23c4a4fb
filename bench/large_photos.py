"""Large photographs: peak memory of `dae denoise` on a 24-megapixel photo, and the
quality of window-by-window denoising against whole-image denoising.

1. Memory: a 6000x4000 photograph (scikit-image's public-domain `astronaut`, enlarged,
   with Gaussian noise of sigma 25) is denoised by `dae denoise -m MODEL` in a process of
   its own, once per `--max-megapixels` value; peak RSS from `/usr/bin/time -v`.
2. Quality: a 2000x2000 crop of it, denoised whole (`--max-megapixels 4`) and by windows
   (each `--max-megapixels` value): PSNR against the clean image, and the difference.

    python bench/large_photos.py --model photo --max-megapixels 2 1 0.5 --json bench/results/large.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return 10 * math.log10(1 / float(np.mean((clean.astype(np.float64) - other.astype(np.float64)) ** 2)))


def photograph(width: int, height: int, mode: str) -> np.ndarray:
    from skimage import data

    image = Image.fromarray(data.astronaut()).convert(mode).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, np.float32) / 255


def write_noisy(clean: np.ndarray, path: Path, sigma: float = 25, seed: int = 0) -> None:
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape).astype(np.float32), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)


def denoise(model: str, source: Path, target: Path, max_megapixels: float) -> dict:
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "dae_cli",
        "-q",
        "denoise",
        str(source),
        "-m",
        model,
        "-o",
        str(target),
        "--overwrite",
        "--sigma",
        "25",
        "--max-megapixels",
        str(max_megapixels),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return {"max_megapixels": max_megapixels, "peak_rss_gb": round(peak_kb / 1e6, 3), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="photo")
    parser.add_argument("--mode", default="RGB", choices=["RGB", "L"])
    parser.add_argument("--max-megapixels", type=float, nargs="+", default=[2.0, 1.0])
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "large")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    results = {"model": args.model, "mode": args.mode, "memory": [], "quality": []}
    big = args.work / "24mp-noisy.png"
    write_noisy(photograph(6000, 4000, args.mode), big)
    for budget in args.max_megapixels:
        row = denoise(args.model, big, args.work / f"24mp-{budget:g}.png", budget)
        results["memory"].append(row)
        print(json.dumps({"memory": row}), flush=True)

    clean = photograph(6000, 4000, args.mode)[1000:3000, 2000:4000]
    crop = args.work / "4mp-noisy.png"
    write_noisy(clean, crop)
    whole = denoise(args.model, crop, args.work / "4mp-whole.png", 4.0)
    whole_psnr = psnr(clean, np.asarray(Image.open(args.work / "4mp-whole.png"), np.float32) / 255)
    for budget in args.max_megapixels:
        row = denoise(args.model, crop, args.work / f"4mp-{budget:g}.png", budget)
        tiled = psnr(clean, np.asarray(Image.open(args.work / f"4mp-{budget:g}.png"), np.float32) / 255)
        row.update(
            psnr_whole=round(whole_psnr, 3),
            psnr_windows=round(tiled, 3),
            difference=round(tiled - whole_psnr, 4),
            whole_peak_rss_gb=whole["peak_rss_gb"],
        )
        results["quality"].append(row)
        print(json.dumps({"quality": row}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
