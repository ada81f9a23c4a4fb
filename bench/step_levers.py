"""Training-step levers of the photo recipe measured in one process, taking turns on a fixed batch.

The photo recipe's model (`configs/photo.toml`, 64x64 crops, batch 32) is built once per
variant, and the variants' steps alternate for `ROUNDS` rounds, so load from other work
on a shared machine falls on all alike; the median seconds per step are printed, and
each variant's speed relative to `base`. Variants (`VARIANTS`, comma-separated):
`base` (the Keras step as `dae train` compiles it, without XLA), `jit` (the same under
XLA) and `slice` (the decoder's latent slices as `tf.slice`, whose gradient is a pad).
`PREC=mixed_bfloat16` runs them in mixed bfloat16. Issue 25 (BENCHMARKS.md).

    PREC=float32 VARIANTS=base,jit ROUNDS=10 python bench/step_levers.py
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dae_cli.backend import keras, tf  # noqa: E402
from dae_cli.config import Config  # noqa: E402
from dae_cli.models import networks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def make_step(autoencoder, jit: bool):
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(autoencoder(x, training=True) - y))
        gradients = tape.gradient(loss, autoencoder.trainable_variables)
        optimizer.apply_gradients(zip(gradients, autoencoder.trainable_variables))
        return loss

    return step


def sliced_call(self, x):
    shape = tf.shape(x)
    return tf.slice(x, [0, 0, 0, self.start], tf.concat([shape[:3], [self.stop - self.start]], 0))


def build(config, slices: bool = False):
    keras.utils.set_random_seed(0)
    original = networks.SliceChannels.call
    if slices:
        networks.SliceChannels.call = sliced_call
    try:
        return networks.build_model(config, (64, 64, 3))[0]
    finally:
        networks.SliceChannels.call = original


def main() -> None:
    precision = os.environ.get("PREC", "float32")
    keras.mixed_precision.set_global_policy(precision)
    config = Config.resolve(str(ROOT / "configs" / "photo.toml"), {"precision": precision})
    x, y = tf.random.uniform((32, 64, 64, 4)), tf.random.uniform((32, 64, 64, 3))
    names = os.environ.get("VARIANTS", "base,jit,slice").split(",")
    variants = {name: make_step(build(config, name == "slice"), name == "jit") for name in names}
    for name, step in variants.items():
        print(name, "first loss", float(step(x, y)))
    times = {name: [] for name in variants}
    for _ in range(int(os.environ.get("ROUNDS", 5))):
        for name, step in variants.items():
            started = time.perf_counter()
            float(step(x, y))
            times[name].append(time.perf_counter() - started)
    median = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
    speed = {name: round(median["base"] / value, 2) for name, value in median.items()} if "base" in median else {}
    print(json.dumps({"precision": precision, "seconds_per_step": median, "speed_vs_base": speed}))


if __name__ == "__main__":
    main()
