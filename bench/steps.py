"""Training-step levers that are not config keys: `steps_per_execution` and TensorFlow's
thread pools, measured on `dae_cli.training.trainer.train` itself.

Every run is a fresh process (TensorFlow fixes its thread pools when it starts), and
the variants take turns round by round, so load from other work on a shared machine
falls on all of them alike. A run trains `--epochs` epochs on the first `--limit`
MNIST images; its figure is the median training images/s over the epochs after the
first (which traces the step function), counting training steps only (epoch start to
the start of validation). Medians over rounds are reported.

    .venv/bin/python bench/steps.py                                  # the default variants
    .venv/bin/python bench/steps.py --variant spe=1 --variant spe=8 --rounds 3
    .venv/bin/python bench/steps.py --quick                          # a smoke run

A variant is `key=value,key=value` with keys `spe` (steps per execution), `intra` and
`inter` (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS; unset: TensorFlow's default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DEFAULT_VARIANTS = ["spe=1", "spe=8", "spe=32", "spe=1,intra=1,inter=1", "spe=1,intra=2,inter=1"]


def parse_variant(text: str) -> dict:
    pairs = dict(pair.split("=", 1) for pair in text.split(",") if pair)
    unknown = set(pairs) - {"spe", "intra", "inter"}
    if unknown:
        raise SystemExit(f"unknown variant keys {sorted(unknown)} in {text!r}")
    return {key: int(value) for key, value in pairs.items()}


def child(args) -> None:
    """One training run in this process; prints one JSON line."""
    from dae_cli.backend import keras
    from dae_cli.training import trainer as training

    spe = args.spe
    training.steps_per_execution = lambda steps_per_epoch, distribution: max(1, min(spe, steps_per_epoch))
    rates = []
    images = args.limit

    class StepTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            validation_started = getattr(self.model, "dae_validation_started", time.perf_counter())
            rates.append(images / (validation_started - self.started))

    with tempfile.TemporaryDirectory(prefix="dae-steps-") as scratch:
        overrides = {"data": str(common.MNIST), "epochs": args.epochs, "limit": args.limit}
        started = time.perf_counter()
        training.train(None, overrides, Path(scratch) / "model", strategy="one", callbacks=[StepTimer()])
        seconds = time.perf_counter() - started
    later = rates[1:] or rates
    print(json.dumps({"images_per_second": common.median(later), "per_epoch": rates, "train_seconds": seconds}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="Repeatable; default: " + " ".join(DEFAULT_VARIANTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=20000, help="Training images per epoch.")
    parser.add_argument("--quick", action="store_true", help="Two variants, one round, 2 epochs of 2,000 images.")
    parser.add_argument("--name", default="steps")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spe", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.quick:
        args.variant = args.variant or ["spe=1", "spe=4"]
        args.rounds, args.epochs, args.limit = 1, 2, 2000
        args.name = args.name if args.name != "steps" else "steps-quick"
    variants = args.variant or DEFAULT_VARIANTS
    runs: dict[str, list] = {variant: [] for variant in variants}
    for round_number in range(args.rounds):
        for variant in variants:
            settings = parse_variant(variant)
            env = {**os.environ, "NO_COLOR": "1"}
            for key, name in (("intra", "TF_NUM_INTRAOP_THREADS"), ("inter", "TF_NUM_INTEROP_THREADS")):
                env.pop(name, None)
                if key in settings:
                    env[name] = str(settings[key])
            command = [
                common.PYTHON,
                __file__,
                "--child",
                "--spe",
                str(settings.get("spe", 1)),
                "--epochs",
                str(args.epochs),
                "--limit",
                str(args.limit),
            ]
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise RuntimeError(f"{variant} failed: {done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[variant].append(result)
            print(
                f"round {round_number + 1} {variant:28s} {result['images_per_second']:7.0f} img/s "
                f"(whole train() {result['train_seconds']:.1f} s)",
                flush=True,
            )
    baseline = common.median([r["images_per_second"] for r in runs[variants[0]]])
    summary = {}
    for variant, results in runs.items():
        rate = common.median([r["images_per_second"] for r in results])
        summary[variant] = {
            "median_images_per_second": rate,
            "vs_first": rate / baseline,
            "median_train_seconds": common.median([r["train_seconds"] for r in results]),
        }
        print(f"{variant:28s} median {rate:7.0f} img/s  x{rate / baseline:.2f} vs {variants[0]}")
    path = common.save(
        args.name,
        {
            "machine": common.machine(),
            "argv": sys.argv,
            "epochs": args.epochs,
            "limit": args.limit,
            "runs": runs,
            "summary": summary,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
