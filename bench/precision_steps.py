"""A training step of a model's recipe in each precision, with and without XLA, side by side.

The step is the one `dae train` runs: the model's config (`dae.json` of a model
directory, say `training/photo`) is built under each dtype policy
(`networks.build_model`) and compiled as training compiles it
(`training.model_setup.compile_model`, its loss included: for a noise-estimating model,
the image's and the estimate's, `noise_estimation.training_model`). All variants live
in one process and take turns, a few steps each a round, on one random batch of the
recipe's shape (batch 32 of 64x64 crops), so load from other work on a shared machine
falls on all alike. Printed: the median wall and process CPU seconds per step of each
variant, and each one's speed against float32 with XLA (how the photo model trained on
a CPU without native bfloat16).

Mixed bfloat16 is fast only where the CPU computes bfloat16 (AVX512-BF16 or AMX); this
says which the machine has.

    python bench/precision_steps.py training/photo --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

VARIANTS = {
    "float32+xla": ("float32", True),
    "float32": ("float32", False),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "mixed_bfloat16+xla": ("mixed_bfloat16", True),
}


def compiled_step(values: dict, precision: str, xla: bool, image_shape: tuple):
    """The model of `values` built under `precision`, compiled as `dae train` compiles it."""
    from dae_cli.backend import keras
    from dae_cli.config import Config
    from dae_cli.models.networks import build_model
    from dae_cli.training.model_setup import compile_model, optimizer

    config = Config.from_dict({**values, "precision": precision, "jit_compile": xla})
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        autoencoder, _, _ = build_model(config, image_shape)
        fitted = compile_model(autoencoder, optimizer(config, 1000, 1), config, image_shape[-1], 1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model directory whose recipe (dae.json) to step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps of each variant a round")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()

    import numpy as np

    from dae_cli.hardware import native_bfloat16
    from dae_cli.models import artifacts
    from dae_cli.training.noise_estimation import DENOISED, ESTIMATE

    values = artifacts.read_manifest(Path(args.model))["config"]
    crop, batch, channels = values["patch_size"], values["batch_size"], values["channels"]
    image_shape = (crop, crop, channels)
    models = {name: compiled_step(values, *VARIANTS[name], image_shape) for name in args.variants}
    inputs = models[args.variants[0]].input_shape[-1]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch, crop, crop, inputs)).astype("float32")
    # The targets as training gives them to a noise-estimating model (the clean image and
    # the true level map), or the clean image alone.
    clean = x[..., :channels]
    y = {DENOISED: clean, ESTIMATE: clean * 0.1} if values.get("noise_estimator") else clean
    for name, model in models.items():
        started = time.perf_counter()
        loss = model.train_on_batch(x, y, return_dict=True)["loss"]
        print(f"{name}: first step (tracing, compiling) {time.perf_counter() - started:.1f} s, loss {loss:.5f}")
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            wall[name].append((time.perf_counter() - started) / args.steps)
            cpu[name].append((time.process_time() - started_cpu) / args.steps)
    median_wall = {name: statistics.median(values) for name, values in wall.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    reference = "float32+xla" if "float32+xla" in models else args.variants[0]
    print(f"native bfloat16 (AVX512-BF16 or AMX): {native_bfloat16()}; batch {batch} of {crop}x{crop}")
    print(f"{'variant':<20} {'wall s/step':>12} {'CPU s/step':>11} {'speed (wall)':>13}")
    for name in models:
        speed = median_wall[reference] / median_wall[name]
        print(f"{name:<20} {median_wall[name]:>12.3f} {median_cpu[name]:>11.3f} {speed:>12.2f}x")


if __name__ == "__main__":
    main()
