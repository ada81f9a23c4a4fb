"""Shared pieces of the benchmark: paths, the MNIST arrays, the fixed noisy test set,
the reference Keras example, and small helpers for timing and results.

Every script measures against the same noisy test set: MNIST `x_test` with one seeded
`x + N(0.5, 0.5)` draw, clipped, made by `dae_cli.apply.evaluation.noisy_set` -- the same set
`dae evaluate --seed 0` scores, so benchmark and CLI figures agree.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("DAE_BENCH_RESULTS", ROOT / "bench" / "results"))
MNIST = Path(os.environ.get("DAE_BENCH_MNIST", ROOT.parent / "shared" / "data" / "mnist.npz"))
PYTHON = sys.executable
DAE = str(Path(sys.executable).with_name("dae"))
TEST_SEED = 0

sys.path.insert(0, str(ROOT))


def load_mnist():
    """(x_train, x_test) as uint8 (N, 28, 28)."""
    import numpy as np

    with np.load(MNIST) as archive:
        return archive["x_train"], archive["x_test"]


def noisy_test_set(x_test_uint8, seed: int = TEST_SEED):
    """(noisy, clean) float32 (N, 28, 28, 1): the fixed test set every figure uses."""
    from dae_cli.apply.evaluation import noisy_set
    from dae_cli.noise import NoiseSpec

    noisy, clean, _ = noisy_set(x_test_uint8[..., None], NoiseSpec("gaussian", 0.5, 0.5), seed)
    return noisy, clean


def build_reference(seed: int = 1337):
    """The Keras MNIST denoising-autoencoder example, written as plain Keras.

    Same layers as the example: Conv2D(32, 64; kernel 3, stride 2, ReLU) -> Flatten ->
    Dense(16) ; Dense -> Reshape -> Conv2DTranspose(64, 32; stride 2, ReLU) ->
    Conv2DTranspose(1) -> sigmoid. MSE loss, Adam with its default learning rate.
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    image_size, kernel_size, latent_dim, layer_filters = 28, 3, 16, [32, 64]
    inputs = keras.Input(shape=(image_size, image_size, 1), name="encoder_input")
    x = inputs
    for filters in layer_filters:
        x = layers.Conv2D(
            filters=filters, kernel_size=kernel_size, strides=2, activation="relu", padding="same", dtype="float32"
        )(x)
    shape = tuple(x.shape)
    x = layers.Flatten(dtype="float32")(x)
    latent = layers.Dense(latent_dim, name="latent_vector", dtype="float32")(x)
    encoder = keras.Model(inputs, latent, name="encoder")
    latent_inputs = keras.Input(shape=(latent_dim,), name="decoder_input")
    x = layers.Dense(shape[1] * shape[2] * shape[3], dtype="float32")(latent_inputs)
    x = layers.Reshape((shape[1], shape[2], shape[3]), dtype="float32")(x)
    for filters in layer_filters[::-1]:
        x = layers.Conv2DTranspose(
            filters=filters, kernel_size=kernel_size, strides=2, activation="relu", padding="same", dtype="float32"
        )(x)
    x = layers.Conv2DTranspose(filters=1, kernel_size=kernel_size, padding="same", dtype="float32")(x)
    outputs = layers.Activation("sigmoid", name="decoder_output", dtype="float32")(x)
    decoder = keras.Model(latent_inputs, outputs, name="decoder")
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    autoencoder.compile(loss="mse", optimizer="adam")
    return autoencoder


def reference_arrays(x_train_uint8, x_test_uint8, seed: int = 1337):
    """The example's data: floats in [0, 1] and ONE fixed noise draw, made once."""
    import numpy as np

    rng = np.random.RandomState(seed)
    x_train = x_train_uint8.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test_uint8.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_train_noisy = np.clip(x_train + rng.normal(loc=0.5, scale=0.5, size=x_train.shape), 0.0, 1.0).astype("float32")
    x_test_noisy = np.clip(x_test + rng.normal(loc=0.5, scale=0.5, size=x_test.shape), 0.0, 1.0).astype("float32")
    return x_train_noisy, x_train, x_test_noisy, x_test


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine() -> dict:
    def run(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""

    lscpu = run(["lscpu"])
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
        platform.processor(),
    )
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    try:
        import psutil

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gb = None
    versions = {}
    try:
        from dae_cli.backend import keras, tf

        versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    except Exception:
        pass
    return {
        "cpu": model,
        "nproc": int(run(["nproc"]).strip() or 0),
        "memory_gb": memory_gb,
        "bf16_flags": [f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")],
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        **versions,
    }


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
