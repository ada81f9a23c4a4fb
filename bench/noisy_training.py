"""Training without clean images: `--self-supervised` against supervised training (issue 16).

One run, side by side on this machine:
1. the first `--images` training images (sorted) get seeded Gaussian noise of sigma
   `--sigma` (0-255 scale), saved as 8-bit PNGs under the same names: the noisy folder;
2. two models of one shape and one budget (the same epochs, crops and batch) train on it:
   - supervised: `dae train --data NOISY --targets CLEAN` (the same noisy images, with
     their clean originals as targets);
   - self-supervised: `dae train --self-supervised --data NOISY` (no clean image read);
3. both denoise the test set with seeded noise of the same sigma (`dae denoise`, whole
   process), and BM3D (gray) or CBM3D (colour) is given the true sigma; mean PSNR.

    python bench/noisy_training.py --train ../shared/data/photos/train400 --test set12 --epochs 8
    python bench/noisy_training.py --train ../shared/data/photos-color/train --images 100 \\
        --test kodak24 --test-limit 8 --epochs 4

Both trainings use squared error, the loss Neighbor2Neighbor's argument needs, so the
comparison is of the methods alone. CPU seconds are the training process's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import SETS, bm3d_denoise, make_noisy_set, psnr, read, run_dae_denoise

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (
    "--arch",
    "conv",
    "--filters",
    "32,64,128",
    "--blocks-per-level",
    "1",
    "--skips",
    "--residual",
    "--loss",
    "mse",
    "--patch-size",
    "64",
    "--batch-size",
    "32",
    "--learning-rate",
    "0.001",
    "--lr-schedule",
    "cosine",
    "--precision",
    "float32",
    "--val-split",
    "0.05",
    "--seed",
    "0",
)


def noisy_training_folders(train: Path, count: int, mode: str, sigma: float, work: Path) -> tuple[Path, Path]:
    """(noisy, clean) folders of the first `count` training images, the same names in each."""
    clean_dir, noisy_dir = work / "clean", work / "noisy"
    clean_dir.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in train.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp", ".tif"))[:count]
    clean = {}
    for path in paths:
        pixels = np.asarray(Image.open(path).convert(mode))
        Image.fromarray(pixels).save(clean_dir / (path.stem + ".png"))
        clean[path.stem + ".png"] = pixels.astype(np.float32) / 255
    make_noisy_set(clean, sigma, noisy_dir)
    return noisy_dir, clean_dir


def train(name: str, flags: list, out: Path, channels: int, epochs: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dae_cli",
            "train",
            *SHAPE,
            "--channels",
            str(channels),
            "--epochs",
            str(epochs),
            *flags,
            "--out",
            str(out),
            "--overwrite",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"method": name, "wall_seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--images", type=int, default=400, help="the first N training images")
    parser.add_argument("--test", choices=sorted(SETS), required=True)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "noisy-training")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    test_folder, mode = SETS[args.test]
    channels = 1 if mode == "L" else 3
    work = args.work / f"{args.test}-s{args.sigma:g}"
    noisy_dir, clean_dir = noisy_training_folders(args.train, args.images, mode, args.sigma, work / "train")
    rows = [
        train(
            "supervised",
            ["--data", str(noisy_dir), "--targets", str(clean_dir)],
            work / "supervised",
            channels,
            args.epochs,
        ),
        train(
            "self-supervised",
            ["--self-supervised", "--data", str(noisy_dir)],
            work / "self-supervised",
            channels,
            args.epochs,
        ),
    ]
    paths = sorted(test_folder.glob("*.png"))[: args.test_limit]
    clean = {path.name: read(path, mode) for path in paths}
    test_noisy_dir = work / "test-noisy"
    noisy = make_noisy_set(clean, args.sigma, test_noisy_dir)
    for row in rows:
        out = work / f"test-{row['method']}"
        row["denoise_seconds"] = round(run_dae_denoise(str(work / row["method"]), test_noisy_dir, out), 2)
        denoised = {name: read(out / (Path(name).stem + ".denoised.png"), mode) for name in clean}
        row["psnr"] = round(float(np.mean([psnr(clean[n], denoised[n]) for n in clean])), 3)
    restored = {name: bm3d_denoise(image, args.sigma) for name, image in noisy.items()}
    result = {
        "train": str(args.train),
        "images": args.images,
        "test": args.test,
        "test_images": len(clean),
        "sigma": args.sigma,
        "epochs": args.epochs,
        "psnr_noisy": round(float(np.mean([psnr(clean[n], noisy[n]) for n in clean])), 3),
        "psnr_bm3d": round(float(np.mean([psnr(clean[n], restored[n]) for n in clean])), 3),
        "rows": rows,
        "self_supervised_minus_supervised": round(rows[1]["psnr"] - rows[0]["psnr"], 3),
    }
    print(json.dumps(result), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
