"""The GPU benchmark's model-side figures on any Keras backend, for a GPU machine
without TensorFlow.

The GPU machines lent here have JAX but no TensorFlow, and the TensorFlow wheel with
its CUDA libraries is far larger than what may travel to them, so `bench/gpu.py`
(which runs `dae train` and `dae denoise`) cannot run there. This script measures what
does not need TensorFlow, on Keras 3 over JAX:

1. Training, taking turns epoch by epoch in one process on the same device: the Keras
   example (`common.build_reference`: batch 128, Adam 0.001, float32, one fixed noise
   draw, one step per call) against dae's default dense model as `dae train` builds
   and compiles it (`dae_cli.models.networks.build_model`, Adam on dae's cosine schedule, dae's
   GPU `steps_per_execution`), in float32 (what `precision = "auto"` picks on a GPU)
   and in mixed bfloat16. dae draws new noise every epoch, as its input pipeline does;
   here the draw is made in NumPy between epochs, untimed. Images/s counts training
   steps only (median of the epochs after the first, which compiles); "time to the
   reference's PSNR" is dae's cumulative training time until its test PSNR first
   reaches the reference's final PSNR, over the reference's whole training time.
2. Denoising in memory: the reference model and dae's dense model on the noisy test
   set, and dae's conv architecture (configs/photo-gray.toml's shape, untrained
   weights: speed does not depend on them) on whole gray images of several sizes;
   images/s and megapixels/s, best of 3 after a warm-up.

Not measured here: `dae train`'s tf.data input pipeline, its checkpoints, and `dae
denoise` running the SavedModels; those are `bench/gpu.py`'s, on a GPU with TensorFlow.

    KERAS_BACKEND=jax python bench/gpu_keras.py --mnist mnist.npz          # ~5 min on one GPU
    python bench/gpu_keras.py --quick                                       # smoke run, any CPU

Results: bench/results/gpu-keras.json (gpu-keras-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    # dae_cli.backend imports TensorFlow; without it, give dae's modules plain Keras.
    import keras

    sys.modules["dae_cli.backend"] = types.SimpleNamespace(keras=keras, tf=None)
import common  # noqa: E402
import gpu  # noqa: E402 -- its best_rate; it imports TensorFlow only inside functions

from dae_cli.backend import keras  # noqa: E402
from dae_cli.config import Config  # noqa: E402
from dae_cli.models.networks import build_model  # noqa: E402
from dae_cli.training.model_setup import learning_rate  # noqa: E402
from dae_cli.training.runtime import GPU_STEPS_PER_EXECUTION  # noqa: E402

CONV_SIZES = ((256, 256, 16), (512, 512, 4), (1024, 1024, 1), (2048, 2048, 1))  # height, width, batch


def psnr(clean, restored) -> float:
    """Mean per-image PSNR in dB, images in [0, 1] (NumPy: dae_cli.apply.metrics needs TensorFlow)."""
    errors = np.mean((clean.astype("float64") - restored.astype("float64")) ** 2, axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(1 / np.maximum(errors, 1e-12))))


def gaussian_noise(clean, rng, mean=0.5, std=0.5):
    return np.clip(clean + rng.normal(mean, std, clean.shape), 0, 1).astype("float32")


class Contender:
    """One model, its compiled training step and its data; trains one epoch per `epoch()`."""

    def __init__(self, name, model, x_clean, fixed_noisy=None, seed=0, batch_size=128):
        self.name, self.model, self.x_clean = name, model, x_clean
        self.fixed_noisy, self.rng, self.batch_size = fixed_noisy, np.random.default_rng(seed), batch_size
        self.epoch_seconds: list[float] = []
        self.test_psnr: list[float] = []

    def epoch(self, number: int, test_noisy, test_clean) -> None:
        noisy = self.fixed_noisy if self.fixed_noisy is not None else gaussian_noise(self.x_clean, self.rng)
        started = time.perf_counter()
        self.model.fit(
            noisy,
            self.x_clean,
            batch_size=self.batch_size,
            epochs=number + 1,
            initial_epoch=number,
            shuffle=True,
            verbose=0,
        )
        self.epoch_seconds.append(time.perf_counter() - started)
        self.test_psnr.append(psnr(test_clean, self.model.predict(test_noisy, batch_size=1024, verbose=0)))

    def summary(self, images: int) -> dict:
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return {
            "median_images_per_second": images / statistics.median(steady),
            "epoch_seconds": self.epoch_seconds,
            "test_psnr": self.test_psnr,
            "final_test_psnr": self.test_psnr[-1],
            "total_seconds": sum(self.epoch_seconds),
        }


def dae_contender(name, precision, x_clean, epochs, seed, **overrides):
    keras.mixed_precision.set_dtype_policy(precision)
    config = Config(**overrides)
    keras.utils.set_random_seed(seed)
    autoencoder, _, _ = build_model(config, x_clean.shape[1:])
    steps = math.ceil(len(x_clean) / config.batch_size)
    autoencoder.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, epochs * steps)),
        loss=config.loss,
        steps_per_execution=min(GPU_STEPS_PER_EXECUTION, steps),
    )
    keras.mixed_precision.set_dtype_policy("float32")
    return Contender(name, autoencoder, x_clean, seed=seed, batch_size=config.batch_size)


def conv_rates(sizes, precision) -> dict:
    keras.mixed_precision.set_dtype_policy(precision)
    config = Config(architecture="conv", layer_filters=[32, 64, 128], blocks_per_level=1, loss="mae", channels=1)
    autoencoder, _, _ = build_model(config, (None, None, 1))
    keras.mixed_precision.set_dtype_policy("float32")
    rates = {}
    for height, width, batch in sizes:
        images = np.random.default_rng(0).random((4 * batch, height, width, 1), dtype="float32")
        rate = gpu.best_rate(autoencoder.predict_on_batch, images, batch)
        rates[f"{height}x{width}"] = {
            "batch": batch,
            "images_per_second": rate,
            "megapixels_per_second": rate * height * width / 1e6,
        }
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=str(common.MNIST), help="mnist.npz in keras.datasets' layout.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N training images.")
    parser.add_argument(
        "--contender",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="One more dae contender, float32, with Config overrides (e.g. b1024:batch_size=1024,learning_rate=0.008).",
    )
    parser.add_argument("--skip-conv", action="store_true", help="Leave out the conv denoising figures.")
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs on 2,000 images, small conv sizes; runs on a CPU."
    )
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    sizes = CONV_SIZES
    if args.quick:
        args.epochs, args.limit, sizes = min(args.epochs, 2), args.limit or 2000, ((64, 64, 2), (96, 128, 1))

    with np.load(args.mnist) as archive:
        x_train, x_test = archive["x_train"][: args.limit], archive["x_test"][: args.limit]
    x_noisy, x_clean, test_noisy, test_clean = common.reference_arrays(x_train, x_test)
    reference_model = common.build_reference()
    contenders = [
        Contender("reference", reference_model, x_clean, fixed_noisy=x_noisy),
        dae_contender("dae-float32", "float32", x_clean, args.epochs, seed=1),
        dae_contender("dae-bfloat16", "mixed_bfloat16", x_clean, args.epochs, seed=1),
    ]
    for spec in args.contender:
        name, _, pairs = spec.partition(":")
        overrides = {
            key: json.loads(value) for key, _, value in (pair.partition("=") for pair in filter(None, pairs.split(",")))
        }
        contenders.append(dae_contender(name, "float32", x_clean, args.epochs, seed=1, **overrides))
    for number in range(args.epochs):
        for contender in contenders:
            contender.epoch(number, test_noisy, test_clean)
        print(
            f"epoch {number + 1}: "
            + "  ".join(f"{c.name} {c.epoch_seconds[-1]:.2f}s {c.test_psnr[-1]:.2f}dB" for c in contenders),
            flush=True,
        )

    summary = {c.name: c.summary(len(x_clean)) for c in contenders}
    reference = summary["reference"]
    for name, figures in summary.items():
        figures["training_vs_reference"] = figures["median_images_per_second"] / reference["median_images_per_second"]
        elapsed = np.cumsum(figures["epoch_seconds"])
        reached = [i for i, value in enumerate(figures["test_psnr"]) if value >= reference["final_test_psnr"]]
        figures["time_to_reference_psnr_fraction"] = (
            float(elapsed[reached[0]] / reference["total_seconds"]) if reached else None
        )

    dense = {c.name: gpu.best_rate(c.model.predict_on_batch, test_noisy, 1024) for c in contenders}
    conv = (
        {}
        if args.skip_conv
        else {precision: conv_rates(sizes, precision) for precision in ("float32", "mixed_bfloat16")}
    )

    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(device) for device in jax.devices()]
    record = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "devices": devices,
        "argv": sys.argv,
        "epochs": args.epochs,
        "training_images": len(x_clean),
        "summary": summary,
        "denoise_dense_images_per_second": dense,
        "denoise_conv": conv,
    }
    path = common.save(args.name or ("gpu-keras-quick" if args.quick else "gpu-keras"), record)
    for name, figures in summary.items():
        fraction = figures["time_to_reference_psnr_fraction"]
        print(
            f"{name:>13}: train {figures['median_images_per_second']:9.0f} img/s (x{figures['training_vs_reference']:.2f})"
            f"  final PSNR {figures['final_test_psnr']:.2f} dB  time to reference PSNR "
            f"{'never' if fraction is None else f'{fraction:.3f}'}  denoise {dense[name]:9.0f} img/s",
            flush=True,
        )
    for precision, rates in conv.items():
        for size, figures in rates.items():
            print(
                f"conv {precision:>14} {size:>9} x{figures['batch']:<2}: {figures['megapixels_per_second']:8.1f} MP/s",
                flush=True,
            )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
