"""Photographs: `dae denoise -m MODEL` against BM3D and CBM3D, quality and speed.

For each set and sigma (on the 0-255 scale) the clean images get seeded Gaussian noise,
clipped to [0, 1] and saved as 8-bit PNGs, as a user's noisy files are (gray for Set12,
RGB for Kodak24 and McMaster). Then, in one run on the same files:

- `dae denoise NOISY_DIR -m MODEL -o OUT`, a whole process (start-up included), given no
  sigma (`--sigma auto` for a model that takes the level): mean PSNR against the clean
  images and megapixels per second;
- for a model that takes the level, the same with the true sigma (`--sigma S`), so
  the cost of estimating it shows; with `--tta`, also `--tta` at the true sigma;
- BM3D (gray) or CBM3D (colour), the `bm3d` package, given the true sigma: mean PSNR
  and megapixels per second.

PSNR of a colour image is over its three channels together, as the colour denoising
literature reports it. `--limit N` takes the first N images of each set (BM3D costs
about 30 s a megapixel here, CBM3D more).

With `--figure PATH` it also writes the README's picture: crops of scikit-image's
public-domain `astronaut` (colour) and `camera` (gray), neither a benchmark image,
noisy at sigma 25, denoised by `dae` and by (C)BM3D, each labelled with its PSNR.

    python bench/photos.py --model photo --sets set12 kodak24 mcmaster --sigmas 15 25 50 \\
        --figure docs/photo.png --json bench/results/photos.json
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
SHARED = ROOT.parent / "shared" / "data"
SETS = {
    "set12": (SHARED / "photos" / "set12", "L"),
    "kodak24": (SHARED / "photos-color" / "kodak24", "RGB"),
    "mcmaster": (SHARED / "photos-color" / "mcmaster", "RGB"),
}


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return 10 * math.log10(1 / float(np.mean((clean.astype(np.float64) - other.astype(np.float64)) ** 2)))


def read(path: Path, mode: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert(mode), np.float32) / 255


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


def run_dae_denoise(model: str, noisy: Path, out: Path, *flags: str) -> float:
    """Seconds for the whole `dae denoise` process."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dae_cli",
            "-q",
            "denoise",
            str(noisy),
            "-m",
            model,
            "-o",
            str(out),
            "--overwrite",
            *flags,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    if noisy.ndim == 3:
        return np.clip(bm3d.bm3d_rgb(noisy, sigma_psd=sigma / 255), 0, 1)
    return np.clip(bm3d.bm3d(noisy, sigma_psd=sigma / 255), 0, 1)


def takes_level(model: str) -> bool:
    from dae_cli.models import artifacts, builtin_models

    return bool(artifacts.read_manifest(builtin_models.resolve_model(model)).get("noise_level_input"))


def dae_figures(
    model: str, clean: dict, mode: str, noisy_dir: Path, out: Path, *flags: str
) -> tuple[float, float, dict]:
    seconds = run_dae_denoise(model, noisy_dir, out, *flags)
    denoised = {name: read(out / (Path(name).stem + ".denoised.png"), mode) for name in clean}
    per_image = {name: psnr(clean[name], denoised[name]) for name in sorted(clean)}
    return float(np.mean(list(per_image.values()))), seconds, per_image


def measure(
    model: str, set_name: str, sigma: float, clean: dict, mode: str, work: Path, *, with_bm3d: bool, with_tta: bool
) -> dict:
    noisy_dir = work / f"{set_name}-noisy-s{sigma:g}"
    noisy = make_noisy_set(clean, sigma, noisy_dir)
    megapixels = sum(image.shape[0] * image.shape[1] for image in clean.values()) / 1e6
    psnr_auto, seconds, per_image = dae_figures(model, clean, mode, noisy_dir, work / f"{set_name}-dae-s{sigma:g}")
    row = {
        "set": set_name,
        "images": len(clean),
        "sigma": sigma,
        "megapixels": round(megapixels, 3),
        "psnr_noisy": round(float(np.mean([psnr(clean[n], noisy[n]) for n in clean])), 3),
        "psnr_dae": round(psnr_auto, 3),
        "dae_process_seconds": round(seconds, 2),
        "dae_process_mp_per_s": round(megapixels / seconds, 4),
        "per_image_psnr_dae": {n: round(v, 3) for n, v in per_image.items()},
    }
    if takes_level(model):
        true_sigma = ("--sigma", f"{sigma:g}")
        psnr_true, _, _ = dae_figures(
            model, clean, mode, noisy_dir, work / f"{set_name}-dae-true-s{sigma:g}", *true_sigma
        )
        row.update(psnr_dae_true_sigma=round(psnr_true, 3), auto_minus_true=round(psnr_auto - psnr_true, 3))
        if with_tta:
            psnr_tta, tta_seconds, _ = dae_figures(
                model, clean, mode, noisy_dir, work / f"{set_name}-dae-tta-s{sigma:g}", *true_sigma, "--tta"
            )
            row.update(
                psnr_dae_tta=round(psnr_tta, 3),
                tta_gain=round(psnr_tta - psnr_true, 3),
                tta_process_seconds=round(tta_seconds, 2),
            )
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


def _labelled(pixels: np.ndarray, label: str) -> Image.Image:
    from PIL import ImageDraw

    image = Image.fromarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((6, 6), label)
    draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    draw.text((6, 6), label, fill=(255, 255, 255))
    return image


def figure(model: str, path: Path, work: Path, sigma: float = 25) -> dict:
    """Noisy, dae and (C)BM3D crops of public-domain photographs, labelled, in two rows."""
    from skimage import data

    crops = {
        "colour": data.astronaut().astype(np.float32)[30:286, 120:376] / 255,
        "gray": data.camera().astype(np.float32)[60:316, 150:406] / 255,
    }
    figures, rows = {}, []
    for kind, clean in crops.items():
        noisy_file = work / f"figure-{kind}-noisy.png"
        Image.fromarray(add_noise(clean, sigma, seed=25)).save(noisy_file)
        mode = "RGB" if clean.ndim == 3 else "L"
        noisy = read(noisy_file, mode)
        run_dae_denoise(model, noisy_file, work / f"figure-{kind}-dae.png")
        ours = read(work / f"figure-{kind}-dae.png", mode)
        theirs = bm3d_denoise(noisy, sigma)
        name = "CBM3D" if mode == "RGB" else "BM3D"
        figures[kind] = {
            "noisy": round(psnr(clean, noisy), 2),
            "dae": round(psnr(clean, ours), 2),
            name.lower(): round(psnr(clean, theirs), 2),
        }
        panels = [
            _labelled(noisy, f"noisy {figures[kind]['noisy']:.2f} dB"),
            _labelled(ours, f"dae -m {model} {figures[kind]['dae']:.2f} dB"),
            _labelled(theirs, f"{name} {figures[kind][name.lower()]:.2f} dB"),
        ]
        rows.append(panels)
    width = sum(panel.width for panel in rows[0]) + 6 * (len(rows[0]) - 1)
    height = sum(row[0].height for row in rows) + 6 * (len(rows) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in rows:
        x = 0
        for panel in row:
            canvas.paste(panel, (x, y))
            x += panel.width + 6
        y += row[0].height + 6
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="photo")
    parser.add_argument("--sets", nargs="+", default=["set12", "kodak24", "mcmaster"], choices=sorted(SETS))
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--limit", type=int, default=None, help="the first N images of each set")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "photos")
    parser.add_argument("--no-bm3d", action="store_true", help="skip (C)BM3D (about 30 s per megapixel here)")
    parser.add_argument("--tta", action="store_true", help="also measure --tta at the true sigma")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    results = {"model": args.model, "rows": []}
    for set_name in args.sets:
        folder, mode = SETS[set_name]
        paths = sorted(folder.glob("*.png"))[: args.limit]
        clean = {path.name: read(path, mode) for path in paths}
        for sigma in args.sigmas:
            row = measure(
                args.model, set_name, sigma, clean, mode, args.work, with_bm3d=not args.no_bm3d, with_tta=args.tta
            )
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
