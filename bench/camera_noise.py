"""Camera noise: two models (by default `-m photo`, which estimates its own noise map, and
`-m photo-gaussian`) and CBM3D on a check set of our own. Issue 16 ran it with the then
`photo-real` (configs/photo-real.toml) against the then `photo` (now `photo-gaussian`).

There is no real-noise set in ../shared and no network here, so the check set is made
by a camera simulation written apart from training's (`dae_cli/noise.py`), with other
choices at every step, so that a model cannot score by having learnt the simulator:

| step | training (`noise = "camera"`) | this check set |
| --- | --- | --- |
| to linear light | inverse smoothstep tone curve, gamma 2.2 | exact inverse sRGB curve |
| colour | none | a colour-correction matrix (`CCM`), inverted, then applied again |
| white balance gains | red 1.9-2.4, blue 1.5-1.9 | red 1.7-2.1, blue 1.3-1.7 |
| Bayer pattern | RGGB | GRBG |
| noise | Gaussian, variance a x + b^2 | Poisson photon counts (full well N: a = 1/N) plus Gaussian read noise |
| demosaicing | bilinear, of the noise only | Malvar-He-Cutler (sharper), of the noise only |
| channels mixed | by white balance only | by white balance and the CCM |
| back to sRGB | gamma 2.2, smoothstep | exact sRGB curve, 8 bits |
| JPEG | libjpeg through TensorFlow, quality 70-100 (the file Pillow writes) | Pillow's, quality `--jpeg` (default 90) |

The reference is the clean image: as in training, the signal is taken as the camera's
processing would reproduce it and only the noise goes through mosaic and demosaicing
(a reference made by demosaicing the clean mosaic was tried: Malvar-He-Cutler's false
colours, amplified by the CCM and cut by JPEG's chroma subsampling, put every method
under 28 dB whatever the noise). Three levels (`LEVELS`), full well and read noise as
a phone's at low, medium and high ISO.

Compared on the same files, PSNR of the 8-bit outputs against the reference:
- `dae denoise -m photo` (no flag: its own noise map);
- `dae denoise -m photo-gaussian` (Gaussian-trained; `--sigma auto`, its default);
- CBM3D given its best single sigma for each level: searched over `--cbm3d-factors`
  times the level's RMS noise (measured against the reference), one sigma for all the
  level's images.

    python bench/camera_noise.py --limit 2 --json bench/results/camera-noise.json
    python bench/camera_noise.py --limit 2 --models --json cbm3d.json      # CBM3D alone
    python bench/camera_noise.py --limit 2 --no-cbm3d --json models.json   # the models alone
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import SETS, bm3d_denoise, psnr, read, run_dae_denoise

ROOT = Path(__file__).resolve().parents[1]
# (name, full well in photo-electrons at white, read noise std on [0, 1])
LEVELS = (("bright", 2000, 0.002), ("indoor", 400, 0.005), ("dark", 100, 0.01))
CCM = np.array([[1.4, -0.3, -0.1], [-0.15, 1.3, -0.15], [0.0, -0.3, 1.3]])  # camera -> linear sRGB


def srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _grbg_sites(height, width):
    rows, cols = np.mgrid[:height, :width] % 2
    return {
        "g_red_row": (rows == 0) & (cols == 0),
        "red": (rows == 0) & (cols == 1),
        "blue": (rows == 1) & (cols == 0),
        "g_blue_row": (rows == 1) & (cols == 1),
    }


def mosaic(camera_rgb):
    """A GRBG Bayer mosaic, one plane."""
    sites = _grbg_sites(*camera_rgb.shape[:2])
    plane = camera_rgb[..., 1].copy()
    plane[sites["red"]] = camera_rgb[..., 0][sites["red"]]
    plane[sites["blue"]] = camera_rgb[..., 2][sites["blue"]]
    return plane


# Malvar, He and Cutler, "High-quality linear interpolation for demosaicing of
# Bayer-patterned color images" (ICASSP 2004): bilinear plus a Laplacian correction.
_G_AT_RB = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]) / 8
_ROW = np.array([[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]]) / 8
_COL = _ROW.T
_DIAGONAL = (
    np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]) / 8
)


def demosaic_mhc(plane):
    sites = _grbg_sites(*plane.shape)
    conv = {
        name: ndimage.convolve(plane, kernel, mode="mirror")
        for name, kernel in (("g", _G_AT_RB), ("row", _ROW), ("col", _COL), ("diag", _DIAGONAL))
    }
    red, green, blue = plane.copy(), plane.copy(), plane.copy()
    green[sites["red"] | sites["blue"]] = conv["g"][sites["red"] | sites["blue"]]
    red[sites["g_red_row"]] = conv["row"][sites["g_red_row"]]
    red[sites["g_blue_row"]] = conv["col"][sites["g_blue_row"]]
    red[sites["blue"]] = conv["diag"][sites["blue"]]
    blue[sites["g_blue_row"]] = conv["row"][sites["g_blue_row"]]
    blue[sites["g_red_row"]] = conv["col"][sites["g_red_row"]]
    blue[sites["red"]] = conv["diag"][sites["red"]]
    return np.stack([red, green, blue], axis=-1)


def camera(clean_srgb, full_well, read_std, jpeg_quality, rng):
    """The noisy uint8 image a simulated camera makes of a clean sRGB scene.

    The signal itself is taken as a camera's processing would reproduce it (the scene):
    only the noise goes through the mosaic and the demosaicing, so the check scores
    denoising, not demosaicing artefacts. The noise is drawn where a sensor makes it,
    on the raw data's Bayer sites (Poisson photon counts, Gaussian read noise), white
    balanced, demosaiced (Malvar-He-Cutler), and mixed across channels by the CCM.
    """
    gains = np.array([rng.uniform(1.7, 2.1), 1.0, rng.uniform(1.3, 1.7)])
    linear = srgb_to_linear(clean_srgb.astype(np.float64))
    raw = np.clip(linear @ np.linalg.inv(CCM).T, 0, 1) / gains
    plane = mosaic(raw)
    noise = rng.poisson(plane * full_well) / full_well - plane + rng.normal(0, read_std, plane.shape)
    noise_rgb = (demosaic_mhc(mosaic(np.ones_like(raw) * gains) * noise)) @ CCM.T
    noisy = np.rint(linear_to_srgb(linear + noise_rgb) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=jpeg_quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def make_check_set(paths, level, jpeg_quality, folder: Path):
    """The noisy PNGs (lossless copies of the JPEG-decoded pixels) in `folder`; returns
    ({name: reference}, {name: noisy}) as float32 on [0, 1]."""
    name_, full_well, read_std = level
    folder.mkdir(parents=True, exist_ok=True)
    references, noisies = {}, {}
    for index, path in enumerate(paths):
        rng = np.random.default_rng([index, full_well])
        clean = np.asarray(Image.open(path).convert("RGB"), np.float64) / 255
        noisy = camera(clean, full_well, read_std, jpeg_quality, rng)
        name = f"{path.parent.name}-{path.stem}.png"
        Image.fromarray(noisy).save(folder / name)
        references[name] = clean.astype(np.float32)
        noisies[name] = noisy.astype(np.float32) / 255
    return references, noisies


def dae_psnr(model: str, references: dict, noisy_dir: Path, out: Path) -> tuple[float, float]:
    seconds = run_dae_denoise(model, noisy_dir, out)
    scores = [psnr(references[n], read(out / (Path(n).stem + ".denoised.png"), "RGB")) for n in references]
    return float(np.mean(scores)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["kodak24", "mcmaster"], choices=["kodak24", "mcmaster"])
    parser.add_argument("--limit", type=int, default=4, help="the first N images of each set")
    parser.add_argument("--jpeg", type=int, default=90)
    parser.add_argument("--models", nargs="*", default=["photo", "photo-gaussian"])
    parser.add_argument("--cbm3d-factors", type=float, nargs="+", default=[0.6, 1.0, 1.5, 2.2])
    parser.add_argument("--no-cbm3d", action="store_true")
    parser.add_argument(
        "--levels", nargs="+", default=[level[0] for level in LEVELS], choices=[level[0] for level in LEVELS]
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "camera-noise")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    paths = [p for s in args.sets for p in sorted(SETS[s][0].glob("*.png"))[: args.limit]]
    rows = []
    for level in [level for level in LEVELS if level[0] in args.levels]:
        noisy_dir = args.work / f"noisy-{level[0]}"
        references, noisies = make_check_set(paths, level, args.jpeg, noisy_dir)
        rms = float(np.sqrt(np.mean([np.mean((references[n] - noisies[n]) ** 2) for n in references])) * 255)
        row = {
            "level": level[0],
            "full_well": level[1],
            "read_std": level[2],
            "jpeg": args.jpeg,
            "images": len(paths),
            "rms_noise": round(rms, 2),
            "psnr_noisy": round(float(np.mean([psnr(references[n], noisies[n]) for n in references])), 3),
        }
        for model in args.models:
            score, seconds = dae_psnr(model, references, noisy_dir, args.work / f"{model}-{level[0]}")
            row[f"psnr_{model}"], row[f"seconds_{model}"] = round(score, 3), round(seconds, 1)
        if not args.no_cbm3d:
            by_sigma = {}
            for sigma in [round(factor * rms, 1) for factor in args.cbm3d_factors]:
                restored = {n: bm3d_denoise(noisies[n], sigma) for n in references}
                by_sigma[sigma] = float(
                    np.mean([psnr(references[n], np.rint(restored[n] * 255) / 255) for n in references])
                )
            best = max(by_sigma, key=by_sigma.get)
            row.update(
                cbm3d_by_sigma={f"{k:g}": round(v, 3) for k, v in by_sigma.items()},
                cbm3d_best_sigma=best,
                psnr_cbm3d_best=round(by_sigma[best], 3),
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
