"""`dae denoise DIR` over a folder of photographs: whole-process throughput, against a baseline.

The folder: `--count` noisy photographs (default 100), seeded Gaussian noise of sigma 25
on the colour benchmark photographs of ../shared (Kodak24, 768x512, and McMaster,
500x500), cycling through them with a new seed on each pass, saved as 8-bit PNGs, as a
user's folder of photos would be. Then `dae -q denoise DIR -m MODEL -o OUT` runs as a
whole process (start-up and model loading included) under `/usr/bin/time -v`
(`inference.denoise_runs`, as `bench/inference.py` runs it); with
`--baseline REF` the `dae_cli/` of that git ref (from `git archive`, on PYTHONPATH, in
the same venv) takes turns with this checkout's for `--rounds` rounds, so both meet the
same load on a shared machine. Figures per contender, medians over rounds: wall seconds,
images/s, megapixels/s, CPU seconds, CPU use (CPU seconds over wall seconds: 2.0 is both
cores busy the whole time) and peak RSS; and the speed ratio of this checkout to REF.

    python bench/photo_folder.py --model photo --baseline 412fa60 --rounds 3 --name photo-folder-vs-412fa60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from inference import denoise_runs, export_code  # noqa: E402

SOURCES = [common.ROOT.parent / "shared" / "data" / "photos-color" / name for name in ("kodak24", "mcmaster")]


def noisy_folder(folder: Path, count: int, sigma: float = 25.0) -> float:
    """Writes `count` noisy PNGs into `folder`; returns their megapixels."""
    sources = sorted(path for source in SOURCES for path in source.iterdir() if path.is_file())
    if not sources:
        raise SystemExit(f"no photographs under {SOURCES}: this benchmark needs ../shared")
    folder.mkdir(parents=True, exist_ok=True)
    megapixels = 0.0
    for index in range(count):
        clean = np.asarray(Image.open(sources[index % len(sources)]).convert("RGB"), np.float32)
        noise = np.random.default_rng(index).normal(0, sigma, clean.shape)
        Image.fromarray(np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)).save(folder / f"{index:03d}.png")
        megapixels += clean.shape[0] * clean.shape[1] / 1e6
    return megapixels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="photo")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--baseline", default=None, help="A git ref whose dae_cli takes turns with this checkout's.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default=None, help="Save the figures as bench/results/NAME.json.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dae-photo-folder-") as temporary:
        work = Path(temporary)
        megapixels = noisy_folder(work / "noisy", args.count)
        contenders = {"this": None}
        if args.baseline:
            contenders = {"baseline": export_code(args.baseline, work / "baseline-code"), "this": None}
        env = {**os.environ, "NO_COLOR": "1"}
        folders = [("photos", work / "noisy", args.count)]
        runs = {
            name: by_folder["photos"]
            for name, by_folder in denoise_runs(contenders, folders, args.model, work, env, args.rounds).items()
        }
    figures = {}
    for name, done in runs.items():
        wall = common.median([run["wall_seconds"] for run in done])
        cpu = common.median([run["cpu_seconds"] for run in done])
        figures[name] = {
            "wall_seconds": round(wall, 2),
            "images_per_second": round(args.count / wall, 3),
            "megapixels_per_second": round(megapixels / wall, 4),
            "cpu_seconds": round(cpu, 1),
            "cores_busy": round(cpu / wall, 2),
            "peak_rss_mb": round(common.median([run["peak_rss_mb"] for run in done])),
            "runs": done,
        }
    result = {
        "machine": common.machine(),
        "model": args.model,
        "images": args.count,
        "megapixels": round(megapixels, 2),
        "baseline": args.baseline,
        "rounds": args.rounds,
        **figures,
    }
    if args.baseline:
        ratios = [b["wall_seconds"] / t["wall_seconds"] for b, t in zip(runs["baseline"], runs["this"])]
        result["speedup"] = round(common.median(ratios), 3)
        print(f"speed-up of this checkout over {args.baseline}: {result['speedup']}x (median of per-round ratios)")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, default=str)[:2000])
    if args.name:
        print(common.save(args.name, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
