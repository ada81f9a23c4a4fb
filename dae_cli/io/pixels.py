"""Images as NumPy arrays: the sample types dae takes and gives, and the model's floats.

A model works on float32 (height, width, channels) on [0, 1], in its own channels (1
gray, 3 RGB). Files and the Python API bring images as uint8, uint16 or floats on
[0, 1]; these functions take them to the model's form and back, the same way for a
file that `dae denoise` reads and for an array that `dae_cli.load(...).denoise` takes,
so the two give the same values.

- `to_model`: samples of any kind -> float32 on [0, 1] in the model's channels (a gray
  image repeated in three channels for a colour model; a colour image made gray with
  Pillow's ITU-R 601-2 luma, to the bit, for a gray model);
- `from_model`: float32 on [0, 1] -> samples of a given kind, rounded to the nearest;
- `own_channels`: 1 for an image that carries no colour (gray saved as RGB included).

Example:
    >>> import numpy as np
    >>> model_input = to_model(np.array([[[0, 255]]], np.uint8).reshape(1, 2, 1), channels=3)
    >>> model_input.shape, model_input.dtype
    ((1, 2, 3), dtype('float32'))
    >>> from_model(model_input[..., :1], np.uint16)[0, :, 0].tolist()
    [0, 65535]
"""

from __future__ import annotations

import numpy as np

# The largest sample of each integer kind: what 1.0 is.
FULL_SCALE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
# Pillow's integer luma (ITU-R 601-2, its `convert("L")`): (R, G, B) . LUMA + 0x8000 >> 16.
LUMA = np.array([19595, 38470, 7471], np.uint64)


def is_sample_type(dtype: np.dtype) -> bool:
    """Whether dae takes samples of `dtype`: uint8, uint16 or a float."""
    return np.dtype(dtype) in FULL_SCALE or np.issubdtype(dtype, np.floating)


def luma(samples: np.ndarray) -> np.ndarray:
    """(h, w, 3) -> (h, w, 1) of the same kind: Pillow's gray of an RGB image.

    Integers by Pillow's own integer formula, so uint8 gives exactly what
    `Image.convert("L")` gives; floats by the same weights.
    """
    if samples.dtype in FULL_SCALE:
        gray = (samples.astype(np.uint64) @ LUMA + 0x8000) >> 16
        return gray.astype(samples.dtype)[..., None]
    weights = (LUMA / 65536.0).astype(samples.dtype)
    return (samples @ weights)[..., None]


def to_model(samples: np.ndarray, channels: int) -> np.ndarray:
    """`samples` (h, w, 1 or 3) of uint8, uint16 or floats on [0, 1] as float32 (h, w,
    `channels`) on [0, 1]; floats outside [0, 1] are clipped, as the model takes them."""
    if samples.shape[-1] == 3 and channels == 1:
        samples = luma(samples)
    if samples.dtype in FULL_SCALE:
        pixels = samples.astype(np.float32)
        pixels /= FULL_SCALE[samples.dtype]
    else:
        pixels = np.clip(samples, 0.0, 1.0).astype(np.float32, copy=False)
    if pixels.shape[-1] == 1 and channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    return pixels


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Floats on [0, 1] -> uint8, to the nearest, clipped."""
    # One float temporary, worked in place: a 24-megapixel colour image is 288 MB a copy.
    scaled = np.multiply(pixels, 255.0, dtype=np.float32 if np.asarray(pixels).dtype != np.float64 else np.float64)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """Floats on [0, 1] -> uint16, to the nearest, clipped.

    float32 is exact enough: v / 65535 * 65535 is within 0.01 of v, so rint gives v back.
    """
    scaled = np.multiply(pixels, 65535.0, dtype=np.float32)
    np.rint(scaled, out=scaled)
    return np.clip(scaled, 0, 65535, out=scaled).astype(np.uint16)


def from_model(pixels: np.ndarray, dtype) -> np.ndarray:
    """Floats on [0, 1] as samples of `dtype`: uint8 and uint16 rounded to the nearest,
    floats clipped to [0, 1]."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return to_uint8(pixels)
    if dtype == np.uint16:
        return to_uint16(pixels)
    return np.clip(pixels, 0.0, 1.0).astype(dtype, copy=False)


def rescale(samples: np.ndarray, dtype) -> np.ndarray:
    """Integer samples as another integer kind: uint8 <-> uint16 (x 257, or to the nearest)."""
    dtype = np.dtype(dtype)
    if samples.dtype == dtype:
        return samples
    return from_model(samples.astype(np.float32) / FULL_SCALE[samples.dtype], dtype)


def own_channels(samples: np.ndarray) -> int:
    """1 for an (h, w, c) image that carries no colour (gray saved as RGB included), else c."""
    if samples.shape[-1] == 3 and np.array_equal(samples[..., 0], samples[..., 1]):
        return 1 if np.array_equal(samples[..., 1], samples[..., 2]) else 3
    return samples.shape[-1]
