"""What real camera noise looks like, beside the training's simulator, and what a model
leaves of it (issue 24: the PolyU100 gap).

For the first `--limit` pairs of a real set (noisy camera JPEG, clean reference), the
noise `noisy - clean` on the 0-255 scale, per image then the median over images:

- `rms`: its RMS; `dc`: the largest of its three channel means (an exposure difference
  between the shot and the reference, which no denoiser can see);
- `c1`, `c2`, `c4`: its correlation with itself 1, 2 and 4 pixels away (white noise: 0);
- `cross`: the mean correlation between its colour channels;
- `luma`: the share of its variance in the mean of the channels (independent channels:
  1/3);
- `>=8 px`, `>=32 px`: the share of its energy left in 8x8 and 32x32 block means (its
  low frequencies; white noise: 1/64 and 1/1024).

The same rows for the simulator's `camera` noise (`dae_cli.noise.camera_noise`, shot
gain `--shot`, read std `--read`) on the same clean references, as it is and saved as
JPEG at each of `--jpeg` (training's `camera-jpeg` share); `--simulator low-frequency`
adds the correlated part `bench/camera_processing_probe.py --arm low-frequency` trains on.

For each of `models` (directories or built-in names), each noisy image is denoised as
`dae denoise` does it, with the model's own reading: the mean PSNR, the median level the
model read (0-255) beside the noise's RMS, and how much of the noise's energy is left,
in all and at >= 8 and >= 32 pixels.

    python bench/real_noise.py training/photo --limit 10
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

POLYU100 = common.ROOT.parent / "shared" / "data" / "photos-real" / "polyu100"
BLOCKS = (8, 32)


def read_pairs(root: Path, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from PIL import Image

    def read(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path).convert("RGB"), np.float64)

    noisy = sorted((root / "noisy").glob("*.png"))[:limit]
    return [(read(path), read(root / "clean" / path.name)) for path in noisy]


def low_frequency_share(error: np.ndarray, block: int) -> float:
    """The share of `error`'s energy in its `block` x `block` means."""
    height, width = (error.shape[0] // block) * block, (error.shape[1] // block) * block
    means = error[:height, :width].reshape(height // block, block, width // block, block, -1).mean(axis=(1, 3))
    return float(np.mean(means**2) / np.mean(error**2))


def noise_statistics(noise: np.ndarray) -> dict[str, float]:
    centred = noise - noise.mean(axis=(0, 1))
    variance = centred.var(axis=(0, 1))

    def correlation(shift: int) -> float:
        down = (centred[:-shift] * centred[shift:]).mean(axis=(0, 1)) / variance
        right = (centred[:, :-shift] * centred[:, shift:]).mean(axis=(0, 1)) / variance
        return float((down.mean() + right.mean()) / 2)

    channels = np.corrcoef(centred.reshape(-1, 3).T)
    return {
        "rms": float(np.sqrt(np.mean(noise**2))),
        "dc": float(np.abs(noise.mean(axis=(0, 1))).max()),
        "c1": correlation(1),
        "c2": correlation(2),
        "c4": correlation(4),
        "cross": float((channels[0, 1] + channels[0, 2] + channels[1, 2]) / 3),
        "luma": float(centred.mean(axis=2).var() / variance.mean()),
        **{f">={block} px": low_frequency_share(noise, block) for block in BLOCKS},
    }


def simulated(clean: np.ndarray, index: int, shot: float, read: float, jpeg: int | None) -> np.ndarray:
    from dae_cli.backend import tf
    from dae_cli.noise import NoiseSpec, camera_noise

    spec = NoiseSpec(
        "camera", shot_range=(shot, shot), read_range=(read, read), jpeg_range=(jpeg, jpeg) if jpeg else None
    )
    noisy = camera_noise(tf.constant(clean[None] / 255, tf.float32), tf.constant([index, 1]), spec).numpy()[0]
    return np.rint(np.clip(noisy, 0, 1) * 255)


def table_row(name: str, rows: list[dict[str, float]]) -> str:
    keys = rows[0].keys()
    return f"| {name} | " + " | ".join(f"{np.median([row[key] for row in rows]):.2f}" for key in keys) + " |"


def score_model(name: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> str:
    from dae_cli.apply.pipeline import denoise_array
    from dae_cli.models.builtin_models import resolve_model
    from dae_cli.models.denoiser import ApplyOptions, load_denoiser

    model = load_denoiser(resolve_model(name))
    psnrs, levels, rms, left, left_low = [], [], [], [], {block: [] for block in BLOCKS}
    for noisy, clean in pairs:
        out, level, _ = denoise_array(model, (noisy / 255).astype(np.float32), 3, ApplyOptions())
        error = np.rint(np.clip(out, 0, 1) * 255) - clean
        noise = noisy - clean
        psnrs.append(10 * np.log10(255**2 / np.mean(error**2)))
        levels.append(None if level is None else level * 255), rms.append(np.sqrt(np.mean(noise**2)))
        left.append(np.mean(error**2) / np.mean(noise**2))
        for block in BLOCKS:
            energy = low_frequency_share(error, block) * np.mean(error**2)
            left_low[block].append(energy / (low_frequency_share(noise, block) * np.mean(noise**2)))
    low = " | ".join(f"{np.mean(left_low[block]):.2f}" for block in BLOCKS)
    read = "-" if None in levels else f"{np.median(levels):.2f}"  # a blind model reads no level
    return f"| {name} | {np.mean(psnrs):.2f} | {read} | {np.median(rms):.2f} | {np.mean(left):.2f} | {low} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="directories or built-in names to score")
    parser.add_argument(
        "--pairs", type=Path, default=POLYU100, help="a folder with noisy/ and clean/ (default: PolyU100)"
    )
    parser.add_argument("--limit", type=int, default=10, help="the first N pairs")
    parser.add_argument("--shot", type=float, default=1e-3, help="the simulator's shot gain")
    parser.add_argument("--read", type=float, default=0.004, help="the simulator's read noise std")
    parser.add_argument("--jpeg", type=int, nargs="*", default=[90, 75], help="JPEG qualities for the simulator")
    parser.add_argument(
        "--simulator",
        choices=["camera", "low-frequency"],
        default="camera",
        help="the simulator's camera noise as `dae_cli.noise` makes it, or with "
        "`camera_processing_probe.py`'s low-frequency part",
    )
    args = parser.parse_args()
    if args.simulator == "low-frequency":
        import camera_processing_probe

        from dae_cli import noise

        noise.camera_noise = camera_processing_probe.low_frequency_camera_noise(noise.camera_noise)
    pairs = read_pairs(args.pairs, args.limit)
    if not pairs:
        parser.error(f"no noisy/*.png with clean/ beside them under {args.pairs}")
    print(f"Machine: {common.machine()}; command: python bench/real_noise.py {' '.join(sys.argv[1:])}\n")
    keys = ["rms", "dc", "c1", "c2", "c4", "cross", "luma", *(f">={block} px" for block in BLOCKS)]
    print("| noise (median of images) | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    print(table_row(f"real: {args.pairs.name}, first {len(pairs)}", [noise_statistics(n - c) for n, c in pairs]))
    for jpeg in (None, *args.jpeg):
        rows = [
            noise_statistics(simulated(clean, index, args.shot, args.read, jpeg) - clean)
            for index, (_, clean) in enumerate(pairs)
        ]
        print(table_row(f"simulated {args.simulator}{f', JPEG {jpeg}' if jpeg else ''}", rows))
    if args.models:
        print("\n| model | PSNR | level read (median) | noise RMS (median) | energy left | at >=8 px | at >=32 px |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in args.models:
            print(score_model(name, pairs), flush=True)
    sys.stdout.flush()
    os._exit(0)  # tf.data's threads can hang the interpreter's teardown


if __name__ == "__main__":
    main()
