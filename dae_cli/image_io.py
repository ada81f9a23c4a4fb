"""Reading and writing images with Pillow, and turning input arguments into files.

Images load as float32 arrays of shape (height, width, channels) in [0, 1]. Whatever
the file's mode, it is converted to the channels asked for: EXIF rotation is applied,
palette and CMYK images become RGB, alpha is dropped (not composited), 16-bit images
are scaled from [0, 65535], and RGB becomes grayscale with Pillow's ITU-R 601-2 luma
when one channel is wanted. Images over Pillow's decompression-bomb limit are refused
before their pixels are decoded.

Example:
    >>> pixels = load_image("digit.png", channels=1)   # doctest: +SKIP
    >>> pixels.shape, pixels.dtype
    ((28, 28, 1), dtype('float32'))
"""

from __future__ import annotations

import glob
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dae_cli.errors import InputError, UsageError
from dae_cli.files import write_bytes_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
# What `dae` itself writes: skipped when a directory is searched, so a second run over
# the same folder does not take the first run's outputs for inputs.
OUTPUT_SUFFIXES = (".denoised.png", ".decoded.png", ".noisy.png")
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def expand_inputs(inputs: list[str], note=None) -> list[Path]:
    """Image files named by `inputs`: files, directories (recursive) and globs, in order.

    Under a directory, dae's own outputs (`OUTPUT_SUFFIXES`) are skipped, and `note`
    (if given) is told how many; a file named explicitly is always taken. An argument
    that names nothing, a directory without images and a glob that matches nothing are
    usage errors, raised before any work is done.
    """
    paths: list[Path] = []
    skipped = 0
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and _is_image_name(p))
            found = [p for p in images if not is_dae_output(p)]
            skipped += len(images) - len(found)
            if not found:
                what = "images other than dae's outputs" if images else "images"
                raise UsageError(f"no {what} ({', '.join(sorted(IMAGE_SUFFIXES))}) in directory {spec}")
            paths.extend(found)
        elif path.exists() or path.is_symlink():
            paths.append(path)
        elif glob.has_magic(spec):
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not found:
                raise UsageError(f"no files match {spec}")
            paths.extend(found)
        else:
            raise UsageError(f"no such file or directory: {spec}")
    if skipped and note is not None:
        note(f"skipped {skipped} file(s) named like dae's outputs ({', '.join('*' + s for s in OUTPUT_SUFFIXES)}); name them to use them")
    # The same file named twice (say by a directory and a glob) is processed once.
    return list(dict.fromkeys(paths))


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_dae_output(path: Path) -> bool:
    return path.name.lower().endswith(OUTPUT_SUFFIXES)


def open_image(path: str | Path) -> Image.Image:
    """Opens and fully decodes `path`, raising `InputError` with the reason if it can't."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Corrupt-metadata chatter is not the user's business; a bomb is. Pillow
            # only warns between its limit and twice its limit: refuse both.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)
                image.load()
                return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{path}: refused: more pixels than Pillow's decompression-bomb limit "
            f"({Image.MAX_IMAGE_PIXELS})"
        ) from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except UnidentifiedImageError:
        size = path.stat().st_size if path.exists() else 0
        reason = "empty file" if size == 0 else "not an image Pillow can read"
        raise InputError(f"{path}: {reason}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: corrupt or truncated image ({error})") from None


def to_array(image: Image.Image, channels: int) -> np.ndarray:
    """Converts a Pillow image to float32 (height, width, channels) in [0, 1]."""
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float32) / 65535.0
        pixels = np.clip(pixels, 0.0, 1.0)[..., None]
        return np.repeat(pixels, channels, axis=-1) if channels == 3 else pixels
    if image.mode == "F":
        pixels = np.clip(np.asarray(image, dtype=np.float32) / 255.0, 0.0, 1.0)[..., None]
        return np.repeat(pixels, channels, axis=-1) if channels == 3 else pixels
    if image.mode not in ("L", "RGB"):  # palette, CMYK, alpha...: alpha is dropped
        image = image.convert("L" if image.mode in ("1", "LA", "La") else "RGB")
    image = image.convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[..., None] if channels == 1 else pixels


def image_channels(image: Image.Image) -> int:
    """1 for images that carry no colour (gray saved as RGB included), 3 otherwise."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("1", "L", "LA", "La", "F"):
        return 1
    rgb = np.asarray(image.convert("RGB"))
    return 1 if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]) else 3


def load_for_model(path: str | Path, channels: int, warn=lambda message: None) -> tuple[np.ndarray, int]:
    """The image at `path` in a model's `channels`, and its own channels (1 or 3).

    A colour image given to a gray model can only come back gray: `warn` says so.
    """
    image = open_image(path)
    own = image_channels(image)
    if own == 3 and channels == 1:
        warn(f"{path} is in colour and this model denoises gray images only: its output is gray "
             "(use a colour model, such as -m photo, to keep the colour)")
    return to_array(image, channels), own


def load_image(path: str | Path, channels: int) -> np.ndarray:
    """Reads `path` as float32 (height, width, channels) in [0, 1]."""
    return to_array(open_image(path), channels)


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a float (h, w, c) array to `size` = (height, width), bicubic."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    planes = [
        np.asarray(
            Image.fromarray(pixels[..., c], mode="F").resize(
                (size[1], size[0]), Image.Resampling.BICUBIC
            )
        )
        for c in range(pixels.shape[-1])
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    # One float temporary, worked in place: a 24-megapixel colour image is 288 MB a copy.
    scaled = np.multiply(pixels, 255.0, dtype=np.float32 if np.asarray(pixels).dtype != np.float64 else np.float64)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a float (h, w, 1 or 3) array in [0, 1]."""
    return png_bytes(to_uint8(pixels))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IDAT_PIECE = 1 << 24  # IDAT chunks of at most 16 MiB; any split of the stream is valid


def png_bytes(array: np.ndarray) -> bytes:
    """A PNG file of a uint8 (h, w, 1 or 3) array: 8-bit gray or RGB, unfiltered, zlib level 1.

    Written here rather than through Pillow because `denoise` writes small images by
    the thousand: Pillow's encoder cost 130-240 µs per 28x28 image against 35-70 µs for
    this (measured side by side, BENCHMARKS.md), at nearly the same file size.
    """
    height, width, channels = array.shape
    rows = np.empty((height, width * channels + 1), np.uint8)
    rows[:, 0] = 0  # each scanline's filter type: None
    rows[:, 1:] = array.reshape(height, width * channels)
    compressed = zlib.compress(rows.tobytes(), 1)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    pieces = [_png_chunk(b"IHDR", header)]
    pieces += [_png_chunk(b"IDAT", compressed[i : i + _IDAT_PIECE]) for i in range(0, len(compressed), _IDAT_PIECE)]
    return b"".join([PNG_SIGNATURE, *pieces, _png_chunk(b"IEND", b"")])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def save_png(pixels: np.ndarray, path: str | Path, overwrite: bool = False) -> None:
    """Writes a PNG atomically; never replaces an existing file unless `overwrite`."""
    write_bytes_atomic(path, encode_png(pixels), overwrite=overwrite, durable=False)


def grid_png(rows: list[np.ndarray], gap: int = 2) -> bytes:
    """One PNG of image rows (each (n, h, w, c) in [0, 1]) on a white background."""
    return encode_png(grid_image(rows, gap))


def grid_image(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Image rows (each (n, h, w, c) in [0, 1]) as one (H, W, c) image on white."""
    n = max(len(row) for row in rows)
    height, width, channels = rows[0].shape[1:]
    canvas = np.ones(((height + gap) * len(rows) - gap, (width + gap) * n - gap, channels), np.float32)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = r * (height + gap), c * (width + gap)
            canvas[y : y + height, x : x + width] = image
    return canvas
