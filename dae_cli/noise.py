"""Noise models that turn clean images into training inputs, as TensorFlow ops.

Every function takes float images in [0, 1] and a stateless seed (two int32/int64s), so
the same seed gives the same noise on any run, inside a `tf.data` pipeline or out of it.

Example:
    >>> spec = NoiseSpec("gaussian", mean=0.5, std=0.5)
    >>> noisy = add_noise(clean, tf.constant([0, 1]), spec)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dae_cli.backend import tf


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """Which noise, with its parameters. Unused parameters are ignored."""

    kind: str = "gaussian"
    mean: float = 0.5
    std: float = 0.5
    amount: float = 0.1
    peak: float = 30.0
    # Blind noise: each image's std drawn uniformly from this range (gaussian, speckle)
    std_range: tuple[float, float] | None = None

    @classmethod
    def from_config(cls, config) -> "NoiseSpec":
        return cls(
            kind=config.noise,
            mean=config.noise_mean,
            std=config.noise_std,
            amount=config.noise_amount,
            peak=config.noise_peak,
            std_range=tuple(config.noise_std_range) if config.noise_std_range else None,
        )

    def std_per_image(self, shape, seed):
        """The std for each image of a batch of `shape` (a scalar unless blind)."""
        if self.std_range is None:
            return self.std
        low, high = self.std_range
        # (n, 1, 1, 1) for a batch, () for one image; its own seed stream (seed + 7).
        per_image = tf.concat([shape[:1], [1, 1, 1]], axis=0) if shape.shape[0] == 4 else []
        return tf.random.stateless_uniform(per_image, seed + 7, minval=low, maxval=high)


def noise_levels(images, seed, spec: NoiseSpec):
    """The std that `add_noise(images, seed, spec)` gives each image: shape (n,) for a batch."""
    shape = tf.shape(images)
    levels = spec.std_per_image(shape, seed)
    return tf.reshape(tf.broadcast_to(tf.cast(levels, tf.float32), tf.concat([shape[:1], [1, 1, 1]], 0)), [-1])


def with_level_map(images, levels):
    """(n, h, w, c) images and (n,) noise levels -> (n, h, w, c + 1): the level as a last channel.

    What a model with `noise_level_input` takes; NumPy in, NumPy out, tensors likewise.
    """
    if isinstance(images, np.ndarray):
        levels = np.asarray(levels, np.float32).reshape(-1, 1, 1, 1)
        level_map = np.broadcast_to(levels, images.shape[:3] + (1,)).astype(images.dtype)
        return np.concatenate([images, level_map], axis=-1)
    shape = tf.shape(images)
    level_map = tf.ones(tf.concat([shape[:3], [1]], 0), images.dtype) * tf.reshape(tf.cast(levels, images.dtype), [-1, 1, 1, 1])
    return tf.concat([images, level_map], axis=-1)


def add_noise(images, seed, spec: NoiseSpec):
    """Returns `images` with `spec`'s noise, clipped to [0, 1]."""
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    if spec.kind == "gaussian" and spec.std_range is None:
        noisy = images + tf.random.stateless_normal(shape, seed, mean=spec.mean, stddev=spec.std)
    elif spec.kind == "gaussian":
        noisy = images + spec.mean + tf.random.stateless_normal(shape, seed) * spec.std_per_image(shape, seed)
    elif spec.kind == "speckle":
        noisy = images + images * tf.random.stateless_normal(shape, seed) * spec.std_per_image(shape, seed)
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
