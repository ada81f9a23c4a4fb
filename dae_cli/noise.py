"""Noise models that turn clean images into training inputs, as TensorFlow ops.

Every function takes float images in [0, 1] and a stateless seed (two int32/int64s), so
the same seed gives the same noise on any run, inside a `tf.data` pipeline or out of it.

Example:
    >>> spec = NoiseSpec("gaussian", mean=0.5, std=0.5)
    >>> noisy = add_noise(clean, tf.constant([0, 1]), spec)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

from dae_cli.backend import tf


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """Which noise, with its parameters. Unused parameters are ignored."""

    kind: str = "gaussian"
    mean: float = 0.5
    std: float = 0.5
    amount: float = 0.1
    peak: float = 30.0

    @classmethod
    def from_config(cls, config) -> "NoiseSpec":
        return cls(
            kind=config.noise,
            mean=config.noise_mean,
            std=config.noise_std,
            amount=config.noise_amount,
            peak=config.noise_peak,
        )


def add_noise(images, seed, spec: NoiseSpec):
    """Returns `images` with `spec`'s noise, clipped to [0, 1]."""
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    if spec.kind == "gaussian":
        noise = tf.random.stateless_normal(shape, seed, mean=spec.mean, stddev=spec.std)
        noisy = images + noise
    elif spec.kind == "speckle":
        noisy = images + images * tf.random.stateless_normal(shape, seed, stddev=spec.std)
    elif spec.kind == "salt-pepper":
        draw = tf.random.stateless_uniform(shape, seed)
        noisy = tf.where(draw < spec.amount / 2, 0.0, images)
        noisy = tf.where(draw > 1 - spec.amount / 2, 1.0, noisy)
    elif spec.kind == "poisson":
        counts = tf.random.stateless_poisson(shape, seed, lam=images * spec.peak, dtype=tf.float32)
        noisy = counts / spec.peak
    elif spec.kind == "mask":
        draw = tf.random.stateless_uniform(shape, seed)
        noisy = tf.where(draw < spec.amount, 0.0, images)
    else:
        raise ValueError(f"unknown noise {spec.kind!r}")
    return tf.clip_by_value(noisy, 0.0, 1.0)
