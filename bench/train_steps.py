"""Training steps per second of a config (default: the photo recipe), against a baseline.

One run is one process: `Trainer.prepare` (the code `dae train` runs: data, model,
compile, the `tf.data` stream), then `model.fit` on that stream for `--epochs` short
epochs of `--steps` steps; the first epoch traces (and with XLA compiles) the step and
is left out. A run prints its steps/s (median over the epochs after the first), the mean
loss of each epoch (the same seed gives the same curve, within float noise), and the
`tf.data` stream alone, batches/s pulled with nothing else running (`--pipeline N`).

With `--baseline DIR` (a `git archive` of another commit with its own venv at
DIR/.venv) the two take turns, run by run, for `--rounds` rounds, so load from other
work on a shared machine falls on both alike; the speed-up is the median of the per-round
ratios. `--set key=value` overrides config keys in both (say `jit_compile=true`);
`--this-set` in this checkout's runs only. `--env K=V` sets a variable in both,
`--this-env K=V` in this checkout's runs only: against a `git archive` of the same
commit, it measures a setting of the environment alone.

    python bench/train_steps.py --precision float32 --rounds 3
    python bench/train_steps.py --baseline /work/baseline --precision mixed_bfloat16 --rounds 3
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

PHOTOS = common.ROOT.parent / "shared" / "data" / "photos-color"


def parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def key_value(text: str) -> tuple[str, str]:
    """`K=V` of `--set`, `--env` and their `--this-` forms, as a pair."""
    return tuple(text.split("=", 1))


def child(args) -> None:
    """One run in this process; prints one JSON line."""
    # `common` put this checkout first on the path; a baseline's run must import the
    # baseline's own `dae_cli`, from the directory it runs in.
    sys.path.insert(0, str(Path.cwd()))
    from dae_cli.training.trainer import Trainer

    overrides = {"data": str(PHOTOS / "train"), "val_data": str(PHOTOS / "kodak24"), "limit": args.limit}
    overrides.update(precision=args.precision, **dict(args.set))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dae-steps-") as temporary:
        trainer = Trainer(Path(temporary) / "model")
        trainer.prepare(args.config, overrides)
    prepared = time.perf_counter() - started
    # Only now: `prepare` sets up TensorFlow as `dae train` does, before its first tensor.
    from dae_cli.backend import keras

    pipeline = None
    if args.pipeline:
        iterator = iter(trainer.train_stream)
        next(iterator)
        begin = time.perf_counter()
        for _ in range(args.pipeline):
            next(iterator)
        pipeline = args.pipeline / (time.perf_counter() - begin)
    seconds, cpu_seconds, losses = [], [], []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began, self.cpu_began = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.began)
            cpu_seconds.append(time.process_time() - self.cpu_began)  # all threads: steps and tf.data
            losses.append(float(logs["loss"]))

    fitted = getattr(trainer, "fitted", trainer.model)  # a baseline from before `Trainer.fitted` fits its model
    fitted.fit(trainer.train_stream, epochs=args.epochs, steps_per_epoch=args.steps, callbacks=[Timer()], verbose=0)
    rates = sorted(args.steps / s for s in seconds[1:])
    cpu_per_step = sorted(s / args.steps for s in cpu_seconds[1:])
    print(
        json.dumps(
            {
                "steps_per_second": rates[len(rates) // 2],
                "cpu_seconds_per_step": cpu_per_step[len(cpu_per_step) // 2],
                "epoch_seconds": [round(s, 3) for s in seconds],
                "losses": [round(loss, 6) for loss in losses],
                "pipeline_batches_per_second": pipeline,
                "prepare_seconds": round(prepared, 2),
                "steps_per_execution": int(fitted.steps_per_execution),
                "jit_compile": bool(fitted.jit_compile),
            }
        )
    )


def run(python: str, cwd: Path, args, extra_set: list, env: dict) -> dict:
    command = [python, str(HERE / "train_steps.py"), "--child", "--config", args.config]
    command += ["--precision", args.precision, "--limit", str(args.limit), "--steps", str(args.steps)]
    command += ["--epochs", str(args.epochs), "--pipeline", str(args.pipeline)]
    for key, value in [*args.set, *extra_set]:
        command += ["--set", f"{key}={value}"]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(common.ROOT / "configs" / "photo.toml"))
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--limit", type=int, default=40, help="training images (each cropped at random)")
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs; the first is left out")
    parser.add_argument("--pipeline", type=int, default=0, help="batches pulled from tf.data alone first")
    parser.add_argument("--set", action="append", default=[], type=key_value)
    parser.add_argument("--this-set", action="append", default=[], type=key_value)
    parser.add_argument("--env", action="append", default=[], type=key_value)
    parser.add_argument("--this-env", action="append", default=[], type=key_value)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--name", default=None)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args(argv)
    args.set = [(key, parse_value(value)) for key, value in args.set]
    args.this_set = [(key, parse_value(value)) for key, value in args.this_set]
    if args.child:
        child(args)
        return 0
    env = {**os.environ, **dict(args.env)}
    contenders = {"this": (sys.executable, common.ROOT, args.this_set, {**env, **dict(args.this_env)})}
    if args.baseline:
        base = args.baseline.resolve()
        contenders = {"baseline": (str(base / ".venv" / "bin" / "python"), base, [], env), **contenders}
    runs = {name: [] for name in contenders}
    for round_number in range(args.rounds):
        for name, (python, cwd, extra, run_env) in contenders.items():
            result = run(python, cwd, args, extra, run_env)
            runs[name].append(result)
            print(f"round {round_number + 1} {name}: {json.dumps(result)}", flush=True)
    summary = {name: common.median([r["steps_per_second"] for r in done]) for name, done in runs.items()}
    cpu = {name: common.median([r.get("cpu_seconds_per_step", 0) for r in done]) for name, done in runs.items()}
    result = {"machine": common.machine(), "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}
    result["steps_per_second"], result["cpu_seconds_per_step"] = summary, cpu
    if args.baseline:
        ratios = [t["steps_per_second"] / b["steps_per_second"] for b, t in zip(runs["baseline"], runs["this"])]
        result["speedup"] = round(common.median(ratios), 3)
        cpu_ratios = [
            b["cpu_seconds_per_step"] / t["cpu_seconds_per_step"] for b, t in zip(runs["baseline"], runs["this"])
        ]
        result["cpu_speedup"] = round(common.median(cpu_ratios), 3)
    print(json.dumps({k: v for k, v in result.items() if k in ("steps_per_second", "speedup", "cpu_speedup")}))
    if args.name:
        print(common.save(args.name, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
