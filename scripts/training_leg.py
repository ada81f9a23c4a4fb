"""The bookkeeping of one leg of a built-in model's training, which runs across sessions.

A leg is one `dae train --resume` (or the first `dae train`) stopped with Ctrl-C before
a session ends, its checkpoint (`<out>.checkpoint/`: weights and optimizer state)
committed for the next leg. This script, run after the leg stopped:

1. makes a model directory of the checkpoint without touching it: a copy of the
   checkpoint is finished (`dae train --resume --epochs DONE`) in a temporary folder
   (a leg that ran its whole schedule left the finished model at `<out>` instead, and
   no checkpoint: that model is scored as it is);
2. scores that model as it would ship, in float32 (`ship_model.py --float32`: a leg
   trained in mixed bfloat16 is rebuilt with float32 layers, the same weights), and the
   shipped one (`--shipped`) on the validation sets with
   `bench/photo_model.py` (PolyU100, Set12 at sigma 15, 25 and 50, and clean McMaster
   and Kodak24, no flag given);
3. prints the line to append to `training/LOG.md`: date, machine and CPU flags,
   precision, the optimizer's steps in its schedule, the leg's CPU-seconds (give them: the
   `user` plus `sys` time of the leg's process), and the validation figures;
4. with `--keep DIR`, keeps the model directory there (to ship it with
   `scripts/ship_model.py DIR photo` when it beats the shipped model).

    python scripts/training_leg.py training/photo --cpu-seconds 5130 --keep /tmp/photo-leg
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description() -> str:
    """The CPU's model name, core count and the flags that decide training's precision."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    present = [flag for flag in FLAGS if flag in flags]
    return f"{name}, {os.cpu_count()} cores, {platform.machine()}, flags: {' '.join(present) or 'none of ' + ', '.join(FLAGS)}"


def model_of_leg(out: Path, state, folder: Path) -> Path:
    """The model directory to score: `out` itself if the leg finished its schedule, else
    one finished from a copy of `out`'s checkpoint, in `folder`."""
    if not state.in_checkpoint:
        return out
    if state.epochs_done == 0:
        sys.exit(f"{out}.checkpoint holds no complete epoch yet: nothing to score")
    copy = folder / out.name
    shutil.copytree(state.keras_path.parent, Path(f"{copy}.checkpoint"))
    command = ["dae", "train", "--resume", "--epochs", str(state.epochs_done), "--out", str(copy)]
    subprocess.run(command, cwd=ROOT, check=True)
    return copy


def as_shipped(model: Path, folder: Path) -> Path:
    """`model` as `scripts/ship_model.py --float32` would ship it: every layer in float32."""
    from dae_cli.models import artifacts

    copy = folder / "as-shipped"
    artifacts.write_inference_copy(model, copy, float32=True)
    return copy


def optimizer_steps(state) -> int:
    """The optimizer's iterations in the leg's saved model: the steps of its schedule so
    far (a new schedule, one a leg from the third on, restarts the count; the log adds them up)."""
    from dae_cli.models import artifacts
    from dae_cli.training import neighbor2neighbor, noise_estimation  # noqa: F401 - register their losses

    model = artifacts.load_keras_model(state.keras_path, compile=True)
    return int(model.optimizer.iterations.numpy())


# What each leg is scored on (`bench/photo_model.py`'s flags): the noisy sets, then the
# clean photographs, which a model that mistakes fine detail for noise would soften.
VALIDATION_RUNS = {
    "noisy": ["--sets", "polyu100", "set12", "--no-jpeg", "--no-clean"],
    "clean": ["--sets", "mcmaster", "kodak24", "--sigmas", "--no-jpeg", "--clean"],
}


def validation(models: list[str], folder: Path) -> dict:
    """`bench/photo_model.py`'s figures for `models` on PolyU100, Set12 and the clean sets."""
    rows = []
    for name, flags in VALIDATION_RUNS.items():
        report = folder / f"validation-{name}.json"
        command = [sys.executable, str(ROOT / "bench" / "photo_model.py"), "--models", *models, *flags]
        subprocess.run([*command, "--json", str(report)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        rows += json.loads(report.read_text())["rows"]
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the run's --out (its checkpoint is <out>.checkpoint)")
    parser.add_argument("--cpu-seconds", type=float, required=True, help="the leg's user + sys CPU time")
    parser.add_argument("--shipped", default="photo", help="the built-in model the leg competes with")
    parser.add_argument("--keep", type=Path, default=None, help="keep the model directory here")
    args = parser.parse_args()
    from dae_cli.training.checkpoints import find_resume_state

    # Its checkpoint if the leg stopped early, else the finished model at `out`.
    state = find_resume_state(args.out)
    with tempfile.TemporaryDirectory(prefix="dae-leg-") as folder:
        model = model_of_leg(args.out, state, Path(folder))
        scored = str(as_shipped(model, Path(folder)))
        figures = validation([scored, args.shipped], Path(folder))
        if args.keep is not None:
            shutil.copytree(model, args.keep)
    leg, shipped = (validation_text(figures, name) for name in (scored, args.shipped))
    from dae_cli.training.runtime import precision_policy

    precision = state.config["precision"]
    if precision_policy(precision) != precision:  # `auto`: say what it was on this machine
        precision = f"{precision}: {precision_policy(precision)}"
    print(
        f"| {datetime.date.today()} | {cpu_description()} | {precision} | {optimizer_steps(state)} "
        f"| {args.cpu_seconds:.0f} | {leg} | {shipped} |"
    )


def validation_text(figures: dict, model: str) -> str:
    """PolyU100, Set12 at each sigma, then the clean sets, of `model`:
    `PolyU 36.10; Set12 32.10/29.80/26.40; clean McMaster 41.04, Kodak24 65.19`."""
    rows = figures["rows"]

    def psnr(set_name: str, kind: str) -> list[float]:
        return [row["models"][model].get("psnr") for row in rows if row["set"] == set_name and row["kind"] == kind]

    set12 = "/".join(f"{value:.2f}" for value in psnr("set12", "gaussian"))
    clean = f"clean McMaster {psnr('mcmaster', 'clean')[0]:.2f}, Kodak24 {psnr('kodak24', 'clean')[0]:.2f}"
    return f"PolyU {psnr('polyu100', 'real')[0]:.2f}; Set12 {set12}; {clean}"


if __name__ == "__main__":
    main()
