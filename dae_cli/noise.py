"""Noise models that turn clean images into training inputs, as TensorFlow ops.

Every function takes float images in [0, 1] and a stateless seed (two int32/int64s), so
the same seed gives the same noise on any run, inside a `tf.data` pipeline or out of it.

Besides the simple models (Gaussian, salt-and-pepper, speckle, Poisson, mask) there are
two of a real camera's noise, each image with parameters of its own:
- `poisson-gaussian`: signal-dependent, variance `a * x + b**2` (shot noise `a` drawn
  log-uniformly from `shot_range`, read noise std `b` uniformly from `read_range`), each
  channel's std scaled by a factor from [1 - channel_spread, 1 + channel_spread].
- `camera`: the same noise where a camera makes it, on the raw sensor data, then
  processed as a camera does (after Brooks et al., "Unprocessing Images for Learned Raw
  Denoising", CVPR 2019, and CBDNet): the image is taken back to linear light (inverse
  tone curve and gamma, inverse white balance), the noise is drawn on the Bayer (RGGB)
  sites and interpolated to the other channels as bilinear demosaicing does (so it is
  correlated across neighbouring pixels and channels), then white balance, gamma and
  tone curve are applied again, and, with `jpeg_range`, JPEG at a random quality.
For `poisson-gaussian` the level a `noise_level_input` model is given is each image's
RMS noise (`noise_levels`), which `dae denoise --sigma auto` estimates. `camera` noise
trains blind models only: the estimate cannot read correlated, JPEG-compressed noise.

`mixture` is what the photographs users have hold, for a model that estimates its own
level map (`noise_estimator`): each batch is cut into fixed shares (`MIXTURE`) of
Gaussian noise, Gaussian noise saved as JPEG, Poisson-Gaussian, camera noise with and
without JPEG, and clean images. `level_map` is the target of its estimator: the local
RMS of the noise, per channel, which every kind of noise has, JPEG's artefacts included.

Example:
    >>> spec = NoiseSpec("gaussian", mean=0.5, std=0.5)
    >>> noisy = add_noise(clean, tf.constant([0, 1]), spec)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from dae_cli.backend import tf

if TYPE_CHECKING:
    from dae_cli.config import Config


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
    # Camera noise (poisson-gaussian, camera): shot gain a (log-uniform), read std b
    # (uniform), per-channel spread of the std, and the JPEG quality range (camera; None: no JPEG)
    shot_range: tuple[float, float] = (0.0001, 0.012)
    read_range: tuple[float, float] = (0.0, 0.03)
    channel_spread: float = 0.0
    jpeg_range: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, config: Config) -> NoiseSpec:
        return cls(
            kind=config.noise,
            mean=config.noise_mean,
            std=config.noise_std,
            amount=config.noise_amount,
            peak=config.noise_peak,
            std_range=tuple(config.noise_std_range) if config.noise_std_range else None,
            shot_range=tuple(config.noise_shot_range),
            read_range=tuple(config.noise_read_range),
            channel_spread=config.noise_channel_spread,
            jpeg_range=tuple(config.noise_jpeg_range) if config.noise_jpeg_range else None,
        )

    @property
    def level_is_measured(self) -> bool:
        """Whether a model's level input is the image's measured RMS noise (camera noises),
        rather than the std the noise was drawn with."""
        return self.kind in CAMERA_NOISES

    def std_per_image(self, shape: tf.Tensor, seed: tf.Tensor) -> float | tf.Tensor:
        """The std for each image of a batch of `shape` (a scalar unless blind)."""
        if self.std_range is None:
            return self.std
        low, high = self.std_range
        # (n, 1, 1, 1) for a batch, () for one image; its own seed stream (seed + 7).
        per_image = tf.concat([shape[:1], [1, 1, 1]], axis=0) if shape.shape[0] == 4 else []
        return tf.random.stateless_uniform(per_image, seed + 7, minval=low, maxval=high)


CAMERA_NOISES = ("poisson-gaussian", "camera")

# `mixture`'s shares of each batch, in order: (kind, share). Camera noise is the most
# common input (phones and cameras), Gaussian the benchmarks'; clean images teach the
# model to leave a photograph without noise alone (level 0).
MIXTURE = (
    ("gaussian", 0.25),
    ("gaussian-jpeg", 0.125),
    ("poisson-gaussian", 0.125),
    ("camera", 0.125),
    ("camera-jpeg", 0.25),
    ("clean", 0.125),
)
LEVEL_WINDOW = 15  # pixels on a side of the window `level_map` measures the noise over
# Raise it whenever the noise a spec and seed give changes, so that the noisy figures a
# model's manifest caches (`evaluation.noisy_fingerprint`) are made again, not reused.
# 2: `mixture` draws its shares by systematic sampling. 3: JPEG rounds, and decodes as
# Pillow does.
NOISE_REVISION = 3


def noise_levels(
    images: tf.Tensor | np.ndarray, seed: tf.Tensor, spec: NoiseSpec, noisy: tf.Tensor | np.ndarray | None = None
) -> tf.Tensor:
    """The std that `add_noise(images, seed, spec)` gives each image: shape (n,) for a batch.

    For the camera noises, whose std varies over the image, it is each image's RMS noise,
    measured on `noisy` (which must then be given).
    """
    if spec.level_is_measured:
        error = tf.convert_to_tensor(noisy, tf.float32) - tf.convert_to_tensor(images, tf.float32)
        axes = [-3, -2, -1]
        return tf.reshape(tf.sqrt(tf.reduce_mean(tf.square(error), axis=axes)), [-1])
    shape = tf.shape(images)
    levels = spec.std_per_image(shape, seed)
    return tf.reshape(tf.broadcast_to(tf.cast(levels, tf.float32), tf.concat([shape[:1], [1, 1, 1]], 0)), [-1])


def with_level_map(images: np.ndarray | tf.Tensor, levels: np.ndarray | tf.Tensor) -> np.ndarray | tf.Tensor:
    """(n, h, w, c) images and (n,) noise levels -> (n, h, w, c + 1): the level as a last channel.

    What a model with `noise_level_input` takes; NumPy in, NumPy out, tensors likewise.
    """
    if isinstance(images, np.ndarray):
        levels = np.asarray(levels, np.float32).reshape(-1, 1, 1, 1)
        level_map = np.broadcast_to(levels, images.shape[:3] + (1,)).astype(images.dtype)
        return np.concatenate([images, level_map], axis=-1)
    shape = tf.shape(images)
    level_map = tf.ones(tf.concat([shape[:3], [1]], 0), images.dtype) * tf.reshape(
        tf.cast(levels, images.dtype), [-1, 1, 1, 1]
    )
    return tf.concat([images, level_map], axis=-1)


def add_noise(images: tf.Tensor | np.ndarray, seed: tf.Tensor, spec: NoiseSpec) -> tf.Tensor:
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
    elif spec.kind == "mixture":
        batch = images if images.shape.rank == 4 else images[None]
        noisy = mixture_noise(batch, seed, spec)
        noisy = noisy if images.shape.rank == 4 else noisy[0]
    elif spec.kind in CAMERA_NOISES:
        batch = images if images.shape.rank == 4 else images[None]
        noisy = (poisson_gaussian if spec.kind == "poisson-gaussian" else camera_noise)(batch, seed, spec)
        noisy = noisy if images.shape.rank == 4 else noisy[0]
    else:
        raise ValueError(f"unknown noise {spec.kind!r}")
    return tf.clip_by_value(noisy, 0.0, 1.0)


def _per_image(batch, seed, low: float, high: float, log: bool = False, channels: int = 1):
    """One value per image (and channel) of `batch`, shape (n, 1, 1, channels), uniform on
    [low, high], or log-uniform with `log`."""
    shape = tf.stack([tf.shape(batch)[0], 1, 1, channels])
    if log:
        draw = tf.random.stateless_uniform(shape, seed, minval=np.log(low), maxval=np.log(high))
        return tf.exp(draw)
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _signal_dependent_std(linear, seed, spec: NoiseSpec, channels: int):
    """The std of Poisson-Gaussian noise on `linear` (n, h, w, c): sqrt(a x + b^2), times
    a per-channel factor; a, b and the factors drawn per image from the seed."""
    shot = _per_image(linear, seed + 21, *spec.shot_range, log=True)
    read = _per_image(linear, seed + 22, *spec.read_range)
    spread = spec.channel_spread
    factor = _per_image(linear, seed + 23, 1 - spread, 1 + spread, channels=channels) if spread else 1.0
    return tf.sqrt(shot * tf.maximum(linear, 0.0) + tf.square(read)) * factor


def poisson_gaussian(batch: tf.Tensor, seed: tf.Tensor, spec: NoiseSpec) -> tf.Tensor:
    """(n, h, w, c) images with signal-dependent noise of variance a x + b^2 (not clipped)."""
    std = _signal_dependent_std(batch, seed, spec, channels=batch.shape[-1] or 1)
    return batch + tf.random.stateless_normal(tf.shape(batch), seed) * std


# The tone curve and gamma a camera applies, and their inverses (Brooks et al. 2019).
def _tone_curve(x):
    return 3.0 * tf.square(x) - 2.0 * x * tf.square(x)


def _inverse_tone_curve(y):
    y = tf.clip_by_value(y, 0.0, 1.0)
    return 0.5 - tf.sin(tf.asin(1.0 - 2.0 * y) / 3.0)


GAMMA = 2.2


def _bayer_masks(height, width):
    """(h, w, 3) 0/1 masks of the RGGB sites: R at even rows and columns, B at odd ones."""
    rows = tf.range(height)[:, None] % 2
    cols = tf.range(width)[None, :] % 2
    red = tf.cast((rows == 0) & (cols == 0), tf.float32)
    blue = tf.cast((rows == 1) & (cols == 1), tf.float32)
    return tf.stack([red, 1.0 - red - blue, blue], axis=-1)


def _bilinear_demosaic(mosaic_planes):
    """Bilinear demosaicing of (n, h, w, 3) planes, each zero away from its Bayer sites."""
    red_blue = tf.constant([[1, 2, 1], [2, 4, 2], [1, 2, 1]], tf.float32) / 4.0
    green = tf.constant([[0, 1, 0], [1, 4, 1], [0, 1, 0]], tf.float32) / 4.0
    kernel = tf.stack([red_blue, green, red_blue], axis=-1)[..., None]  # (3, 3, 3, 1)
    # Reflection keeps the Bayer phase at the border (pixel -1 mirrors pixel 1). Built by
    # hand, as `tf.pad(mode="REFLECT")` is, because MirrorPad refuses an empty batch (a
    # mixture's share of a lone image).
    rows = tf.concat([mosaic_planes[:, 1:2], mosaic_planes, mosaic_planes[:, -2:-1]], axis=1)
    padded = tf.concat([rows[:, :, 1:2], rows, rows[:, :, -2:-1]], axis=2)
    demosaiced = tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")
    # The input's shape again: on some CPUs (AVX-512, oneDNN) the convolution of an empty
    # batch comes back with the padded shape, which the noise cannot be added to.
    return tf.reshape(demosaiced, tf.shape(mosaic_planes))


def camera_noise(batch: tf.Tensor, seed: tf.Tensor, spec: NoiseSpec) -> tf.Tensor:
    """(n, h, w, c) sRGB-like images with a camera's noise: see the module's docstring.

    Gray images (c = 1) are taken as from a monochrome sensor: no mosaic, no white balance.
    """
    channels = batch.shape[-1] or 1
    linear = tf.pow(tf.maximum(_inverse_tone_curve(batch), 1e-8), GAMMA)
    if channels == 3:
        red_gain = _per_image(batch, seed + 31, 1.9, 2.4)
        blue_gain = _per_image(batch, seed + 32, 1.5, 1.9)
        gains = tf.concat([red_gain, tf.ones_like(red_gain), blue_gain], axis=-1)
        linear = linear / gains
    std = _signal_dependent_std(linear, seed, spec, channels)
    noise = tf.random.stateless_normal(tf.shape(batch), seed) * std
    if channels == 3:
        masks = _bayer_masks(tf.shape(batch)[1], tf.shape(batch)[2])
        noise = _bilinear_demosaic(noise * masks)  # drawn at the sites, interpolated between
        linear = (linear + noise) * gains
    else:
        linear = linear + noise
    noisy = _tone_curve(tf.pow(tf.clip_by_value(linear, 1e-8, 1.0), 1.0 / GAMMA))
    if spec.jpeg_range is not None:
        noisy = _jpeg(noisy, seed + 41, spec.jpeg_range)
    return noisy


def _jpeg(batch, seed, quality_range):
    """Each image of `batch` through JPEG at a quality drawn from `quality_range`."""
    low, high = quality_range
    qualities = tf.random.stateless_uniform(tf.shape(batch)[:1], seed, minval=low, maxval=high + 1, dtype=tf.int32)

    channels = batch.shape[-1] or 0

    def one(args):
        image, quality = args
        pixels = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
        # Not `tf.image.adjust_jpeg_quality`: its decoder's fast integer IDCT shifts red
        # and blue by about a level down and doubles the JPEG's error, where Pillow and
        # every viewer decode with the accurate one; and it truncates instead of rounding.
        encoded = tf.raw_ops.EncodeJpegVariableQuality(images=pixels, quality=quality)
        decoded = tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE")
        return tf.cast(decoded, tf.float32) / 255.0

    return tf.map_fn(one, (batch, qualities), fn_output_signature=tf.float32)


def mixture_noise(batch: tf.Tensor, seed: tf.Tensor, spec: NoiseSpec) -> tf.Tensor:
    """(n, h, w, c) images cut into `MIXTURE`'s shares, each with its kind of noise
    (not clipped). Gaussian levels come from `std_range`, JPEG qualities from `jpeg_range`."""
    count = tf.shape(batch)[0]
    bounds = [0.0]
    for _, share in MIXTURE:
        bounds.append(bounds[-1] + share)
    # Systematic sampling: image i stands at (i + offset) / count on [0, 1), the offset
    # drawn once a batch. A batch of 32 (or any multiple of 8) is cut exactly by the
    # shares, and a lone image (`dae evaluate` of one file) gets each kind as often as
    # its share, not always the same one.
    offset = tf.random.stateless_uniform([], seed + 7)
    edges = [
        tf.clip_by_value(tf.cast(tf.math.ceil(bound * tf.cast(count, tf.float32) - offset), tf.int32), 0, count)
        for bound in bounds
    ]
    jpeg = spec.jpeg_range or (60, 100)
    parts = []
    for index, (kind, _) in enumerate(MIXTURE):
        part = batch[edges[index] : edges[index + 1]]
        part_seed = seed + 100 * (index + 1)
        # Every kind keeps the part's shape; the reshape restores it where `tf.map_fn`
        # (JPEG) loses it for an empty part.
        parts.append(tf.reshape(_one_kind(part, part_seed, spec, kind, jpeg), tf.shape(part)))
    return tf.concat(parts, axis=0)


def _one_kind(part, seed, spec: NoiseSpec, kind: str, jpeg: tuple[int, int]):
    if kind == "clean":
        return part
    if kind.startswith("gaussian"):
        low, high = spec.std_range or (spec.std, spec.std)
        std = _per_image(part, seed + 1, low, high)
        noisy = part + tf.random.stateless_normal(tf.shape(part), seed) * std
    elif kind == "poisson-gaussian":
        noisy = poisson_gaussian(part, seed, spec)
    else:
        noisy = camera_noise(part, seed, dataclasses.replace(spec, jpeg_range=None))
    if kind.endswith("jpeg"):
        noisy = _jpeg(tf.clip_by_value(noisy, 0.0, 1.0), seed + 41, jpeg)
    return noisy


def level_map(noisy: tf.Tensor, clean: tf.Tensor) -> tf.Tensor:
    """The noise level map of (n, h, w, c) `noisy` images: per pixel and channel, the RMS
    of `noisy - clean` over a `LEVEL_WINDOW` square around it (what a noise-estimating
    model learns to read from the noisy image alone). Uniform Gaussian noise of std s
    gives about s everywhere; a camera's noise is higher where the image is brighter."""
    error = tf.square(tf.cast(noisy, tf.float32) - tf.cast(clean, tf.float32))
    # The square's mean is the mean of its columns' means: two passes of 15 instead of
    # one of 225 pixels, which made this most of the photo model's data pipeline.
    local = _window_mean(_window_mean(error, axis=1), axis=2)
    return tf.sqrt(local + 1e-12)


def _window_mean(values: tf.Tensor, axis: int) -> tf.Tensor:
    """The mean of (n, h, w, c) `values` over `LEVEL_WINDOW` pixels along `axis` centred
    on each pixel, of the pixels inside the image only (as avg_pool's SAME padding).

    Each window's sum is the difference of two running sums: about a quarter of
    `tf.nn.avg_pool2d`'s CPU time for the same figures (BENCHMARKS.md, issue 24).
    """
    length = tf.shape(values)[axis]
    padding = [[0, 0]] * 4
    padding[axis] = [1, 0]
    running = tf.pad(tf.cumsum(values, axis=axis), padding)  # running[i]: the sum of the first i
    position = tf.range(length)
    end = tf.minimum(position + LEVEL_WINDOW // 2 + 1, length)
    start = tf.maximum(position - LEVEL_WINDOW // 2, 0)
    # Rounding can leave a window of (near) zero error a hair below zero.
    sums = tf.maximum(tf.gather(running, end, axis=axis) - tf.gather(running, start, axis=axis), 0.0)
    counts = tf.cast(end - start, values.dtype)
    return sums / tf.reshape(counts, [-1 if dim == axis else 1 for dim in range(4)])


def with_level_controls(images, scale, offset=0.0):
    """(n, h, w, c) images -> (n, h, w, 2c + 1): what a `noise_estimator` model takes,
    the image, then a scale channel and c offset channels (`networks.LevelMap`).

    `scale` (n,) or a number multiplies the model's own estimate; `offset`, a number, (n,)
    or an (n, h, w, c) map, is added to it. NumPy in, NumPy out; tensors likewise.
    """
    if isinstance(images, np.ndarray):
        shape = images.shape
        scale_map = np.broadcast_to(np.asarray(scale, np.float32).reshape(-1, 1, 1, 1), shape[:3] + (1,))
        offset = np.asarray(offset, np.float32)
        offset_map = np.broadcast_to(offset if offset.ndim == 4 else offset.reshape(-1, 1, 1, 1), shape)
        return np.concatenate([images, scale_map.astype(images.dtype), offset_map.astype(images.dtype)], axis=-1)
    shape = tf.shape(images)
    scale = tf.reshape(tf.cast(scale, images.dtype), [-1, 1, 1, 1])
    offset = tf.cast(offset, images.dtype)
    offset = offset if offset.shape.rank == 4 else tf.reshape(offset, [-1, 1, 1, 1])
    scale_map = tf.ones(tf.concat([shape[:3], [1]], 0), images.dtype) * scale
    offset_map = tf.ones_like(images) * offset
    return tf.concat([images, scale_map, offset_map], axis=-1)
