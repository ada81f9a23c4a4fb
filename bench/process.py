"""Whole-process training time: the Keras example as a script against `dae train`.

Each run is a fresh process timed from start to exit (imports, data, training, saving
included), as a user waits for it. The contenders take turns round by round (reference,
dae, dae float32, ..., then again), so load from other work on a shared machine falls
on all of them alike; medians over rounds are reported.

    .venv/bin/python bench/process.py --epochs 3 --rounds 2
    .venv/bin/python bench/process.py --quick          # 1 epoch on 2,000 images, one round

`--reference-only` runs the reference script alone (what each reference run is).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def reference(epochs: int, limit: int | None) -> None:
    """The example's whole script: load MNIST, add its noise, fit, predict the test set."""
    x_train, x_test = common.load_mnist()
    if limit:
        x_train, x_test = x_train[:limit], x_test[:limit]
    model = common.build_reference()
    x_noisy, x_clean, test_noisy, test_clean = common.reference_arrays(x_train, x_test)
    model.fit(x_noisy, x_clean, validation_data=(test_noisy, test_clean), epochs=epochs, batch_size=128, verbose=0)
    model.predict(test_noisy, verbose=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--precision",
        action="append",
        default=None,
        help="dae precisions to run (repeatable; default: auto and float32).",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--name", default=None)
    parser.add_argument("--reference-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_only:
        reference(args.epochs, args.limit)
        return 0
    if args.quick:
        args.epochs, args.rounds, args.limit = 1, 1, args.limit or 2000
    precisions = args.precision or ["auto", "float32"]
    limit = ["--limit", str(args.limit)] if args.limit else []
    env = {**os.environ, "NO_COLOR": "1"}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="dae-process-") as scratch:
        commands = {"reference": [common.PYTHON, __file__, "--reference-only", "--epochs", str(args.epochs), *limit]}
        for precision in precisions:
            commands[f"dae-{precision}"] = [
                common.DAE,
                "-q",
                "train",
                "--data",
                str(common.MNIST),
                "--epochs",
                str(args.epochs),
                "--precision",
                precision,
                "--out",
                str(Path(scratch) / precision),
                "--overwrite",
                *limit,
            ]
        for round_number in range(args.rounds):
            for label, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                seconds = time.perf_counter() - started
                times.setdefault(label, []).append(seconds)
                print(f"round {round_number + 1} {label:>14}: {seconds:6.1f} s", flush=True)
    reference_median = common.median(times["reference"])
    summary = {
        label: {"median_seconds": common.median(runs), "reference_over_this": reference_median / common.median(runs)}
        for label, runs in times.items()
    }
    for label, figures in summary.items():
        print(
            f"{label:>14}: median {figures['median_seconds']:6.1f} s, reference / this = {figures['reference_over_this']:.2f}x"
        )
    path = common.save(
        args.name or ("process-quick" if args.quick else "process"),
        {
            "machine": common.machine(),
            "argv": sys.argv,
            "epochs": args.epochs,
            "limit": args.limit,
            "runs": times,
            "summary": summary,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
