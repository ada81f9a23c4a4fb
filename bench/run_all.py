"""Runs the whole benchmark, then writes its tables to bench/results/report.md
(--quick: everything under bench/results/quick/ instead).

    .venv/bin/python bench/run_all.py            # everything, as in BENCHMARKS.md (~50 min on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # a smoke run: 3 epochs on 10,000 images, 1,000 test images

Steps (each also runs alone, see its --help):
  levers     bench/compare.py: reference vs one dae lever at a time, a few epochs
  train      bench/compare.py: reference vs `dae` default vs configs/mnist-best.toml
  train-cli  `dae train` on full MNIST under /usr/bin/time -v: peak RSS, wall time
  inference  bench/inference.py: `dae denoise DIR` vs in-memory prediction, latency
  classical  bench/classical.py: scikit-image denoisers on the same noisy test set
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BENCH = Path(__file__).resolve().parent
LEVERS = [
    "reference",
    "f32-constant::precision=float32,lr_schedule=constant,jit_compile=false",
    "bf16::precision=mixed_bfloat16,lr_schedule=constant,jit_compile=false",
    "f32-xla::precision=float32,lr_schedule=constant,jit_compile=true",
    "bf16-xla::precision=mixed_bfloat16,lr_schedule=constant,jit_compile=true",
    "bf16-cosine::precision=mixed_bfloat16,lr_schedule=cosine,jit_compile=false",
]
STEPS = ("levers", "train", "train-cli", "inference", "classical")


def python(script, *args):
    command = [common.PYTHON, str(BENCH / script), *map(str, args)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=common.ROOT)


def train_cli(epochs, limit):
    out = common.RESULTS / "models" / "cli-default"
    command = [
        "/usr/bin/time",
        "-v",
        common.DAE,
        "-q",
        "--json",
        "train",
        "--data",
        str(common.MNIST),
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--overwrite",
    ]
    if limit:
        command += ["--limit", str(limit)]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    import json

    record = json.loads(done.stdout.strip().splitlines()[-1])
    result = {
        "machine": common.machine(),
        "command": command[2:],
        "wall_seconds": wall,
        "peak_rss_mb": rss,
        "epochs": epochs,
        "training_seconds": record["training_seconds"],
        "metrics": record["metrics"],
    }
    common.save("train_cli", result)
    print(f"dae train: {wall:.1f}s wall, peak RSS {rss:.0f} MB", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="A smoke run of every step, in a few minutes.")
    parser.add_argument("--only", action="append", choices=STEPS, help="Run only these steps (repeatable).")
    parser.add_argument("--lever-epochs", type=int, default=3)
    parser.add_argument("--cli-epochs", type=int, default=3, help="Epochs of the `dae train` CLI run (peak RSS).")
    args = parser.parse_args(argv)
    steps = args.only or STEPS
    if args.quick:  # never overwrite the full run's results
        common.RESULTS = common.RESULTS / "quick"
        os.environ["DAE_BENCH_RESULTS"] = str(common.RESULTS)
    limit = ["--limit", "10000"] if args.quick else []

    if "levers" in steps:
        contenders = [arg for spec in LEVERS for arg in ("--contender", spec)]
        python(
            "compare.py", *contenders, "--epochs", 1 if args.quick else args.lever_epochs, *limit, "--name", "levers"
        )
    if "train" in steps:
        contenders = [
            "--contender",
            "reference",
            "--contender",
            "default:",
            "--contender",
            f"best:{common.ROOT / 'configs' / 'mnist-best.toml'}",
        ]
        python("compare.py", *contenders, *(["--epochs", 3] if args.quick else []), *limit, "--name", "train")
    if "train-cli" in steps:
        train_cli(1 if args.quick else args.cli_epochs, 10000 if args.quick else None)
    if "inference" in steps:
        model = common.RESULTS / "models" / "default"
        if not model.exists():
            model = common.RESULTS / "models" / "cli-default"
        python(
            "inference.py", "--model", model, *(["--files", 2000, "--small", 500, "--repeats", 3] if args.quick else [])
        )
    if "classical" in steps:
        python("classical.py", *(["--test-images", 500, "--tune-images", 100] if args.quick else []))
    python("report.py")


if __name__ == "__main__":
    main()
