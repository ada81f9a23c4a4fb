"""The noise level of a photograph, estimated from the photograph alone, and `--sigma`.

`dae denoise --sigma auto` gives a model that takes the noise level (`noise_level_input`)
each image's own estimate. The estimator is the PCA method of Chen, Zhu and Heng, "An
Efficient Statistical Method for Image Noise Level Estimation" (ICCV 2015): the
covariance of the image's small patches has a few large eigenvalues that hold the
picture, and many small ones that hold only the noise, all equal to sigma^2 for white
noise. It finds the largest set of smallest eigenvalues whose mean is also their
median (as the noise's eigenvalues are, and the picture's are not) and takes that mean.
It was chosen over the wavelet median absolute deviation (Donoho) because the wavelet
estimate reads texture as noise, so it overestimates low noise on detailed photographs
by far more than 10%, where the PCA method stays close (tests/test_noise_level.py).

Example:
    >>> estimate_sigma(noisy_pixels)          # doctest: +SKIP
    0.0982
    >>> parse_sigma("15"), parse_sigma("15/255"), parse_sigma("auto")
    (0.058823529411764705, 0.058823529411764705, 'auto')
"""

from __future__ import annotations

import math

import numpy as np

from dae_cli.config import parse_std
from dae_cli.errors import UsageError

AUTO = "auto"
PATCH = 7  # pixels on a side: 49 dimensions a channel, enough small eigenvalues to tell noise
SMALL_PATCH = 5
STRONG = 20 / 255  # above this much noise, clipping matters (see `estimate_sigma`)
MAX_PATCHES = 40_000  # a strided sample of large images: the estimate settles well before
MIN_PATCHES = 1_000
CLIPPED = 0.5 / 255  # at 0 or 1 once quantised to 8 bits


def parse_sigma(text: str | float, name: str = "--sigma") -> str | float:
    """`auto`, or a noise std: on the 0-255 scale above 1 (`15`), or a fraction (`15/255`, `0.06`).

    A number is read as its text is. Raises `UsageError` naming `name` for anything else,
    a negative level included.
    """
    text = str(text).strip()
    if text.lower() == AUTO:
        return AUTO
    try:
        value = parse_std(text, name)  # the fraction syntax of --noise-std
    except UsageError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be auto or a noise level like 15 (0-255 scale), 15/255 or 0.06, got {text!r}")
    # A plain number above 1 cannot be a std on [0, 1]: it is on the 0-255 scale.
    return value / 255.0 if "/" not in text and value > 1 else value


def parse_strength(text: str | float, name: str = "--strength") -> float:
    """`--strength`: a finite number of at least 0 (0 gives the image back, 1 the model's
    own level). A number is read as its text is. Raises `UsageError` naming `name` for
    anything else."""
    text = str(text)
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a number of at least 0 (1 is the model's own level), got {text!r}")
    return value


def estimate_sigma(pixels: np.ndarray) -> float:
    """The std of the white noise in `pixels` (h, w, c) on [0, 1], by Chen et al.'s PCA method.

    First from 7x7 patches of all channels together, the most exact where little is
    clipped. Strong noise is clipped at black and white, which hides part of it; there
    the estimate is made again per channel from 5x5 patches, of which far more hold no
    clipped pixel (measured on public-domain photographs: within 8% at sigma 50, where
    the first estimate is up to 15% low).
    """
    pixels = np.asarray(pixels)  # not copied: only the sampled patches become float64
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    first = _pca_sigma(pixels, PATCH)
    if first < STRONG:
        return first
    per_channel = [_pca_sigma(pixels[..., c : c + 1], SMALL_PATCH) for c in range(pixels.shape[-1])]
    return float(math.sqrt(np.mean(np.square(per_channel))))


def _pca_sigma(pixels: np.ndarray, patch: int) -> float:
    height, width, channels = pixels.shape
    if height < patch or width < patch:
        return 0.0
    stride = max(1, math.ceil(math.sqrt((height - patch + 1) * (width - patch + 1) / MAX_PATCHES)))
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (patch, patch), axis=(0, 1))[::stride, ::stride]
    patches = windows.reshape(-1, channels * patch * patch).astype(np.float64)
    # A clipped pixel has lost part of its noise: patches with one would pull the
    # estimate down, so they are left out while enough remain.
    unclipped = (patches.min(axis=1) > CLIPPED) & (patches.max(axis=1) < 1 - CLIPPED)
    if np.count_nonzero(unclipped) >= MIN_PATCHES:
        patches = patches[unclipped]
    patches = patches - patches.mean(axis=0)
    covariance = patches.T @ patches / len(patches)
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance), 0.0, None)  # ascending
    for count in range(len(eigenvalues), 0, -1):
        smallest = eigenvalues[:count]
        mean = smallest.mean()
        if np.count_nonzero(smallest > mean) == np.count_nonzero(smallest < mean):
            return float(math.sqrt(mean))
    return float(math.sqrt(eigenvalues[0]))
