"""Reading and writing images with Pillow, and turning input arguments into files.

Images load as float32 arrays of shape (height, width, channels) in [0, 1]. Whatever
the file's mode, it is converted to the channels asked for: EXIF rotation is applied,
palette and CMYK images become RGB, alpha is split off (not composited), 16-bit images
are scaled from [0, 65535] (exactly: float32 holds every 16-bit value), float images
from Pillow's 0-255 scale, and RGB becomes grayscale with Pillow's ITU-R 601-2 luma
when one channel is wanted. Images over Pillow's decompression-bomb limit are refused
before their pixels are decoded.

What a written image needs from its source travels beside the pixels as an
`ImageMeta` (`read_for_model`): the format, bit depth, own channels, the alpha plane,
the ICC profile and EXIF. `encode_image` turns pixels and that back into a file of a
given format, keeping what the format can hold.

Example:
    >>> pixels, meta = read_for_model("scan.tif", channels=1)   # doctest: +SKIP
    >>> data, written = encode_image(denoise(pixels), meta, "TIFF")  # doctest: +SKIP
    >>> written.bit_depth                                         # doctest: +SKIP
    16
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dae_cli.errors import InputError, UsageError
from dae_cli.io.files import write_bytes_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# The formats dae writes, by file extension, and the extension each one gets by default.
WRITABLE = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
FORMAT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
FORMAT_CHOICES = ("png", "jpeg", "tiff", "webp", "bmp")  # --format, as users type them
DEEP_FORMATS = {"PNG", "TIFF"}  # hold 16-bit gray (and TIFF 32-bit float)
ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}
METADATA_FORMATS = {"PNG", "JPEG", "TIFF", "WEBP"}  # ICC profile and EXIF, as Pillow writes them
DEFAULT_QUALITY = 95  # JPEG and WebP: visually lossless; a denoiser must not add artefacts
# What `dae` itself writes, `<stem>.<tag>.<any image extension>`: skipped when a directory
# is searched, so a second run over the same folder does not take its outputs for inputs.
OUTPUT_TAGS = ("denoised", "decoded", "noisy")
OUTPUT_SUFFIXES = tuple(f".{tag}{suffix}" for tag in OUTPUT_TAGS for suffix in sorted(IMAGE_SUFFIXES))
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
        patterns = ", ".join(f"*.{tag}.*" for tag in OUTPUT_TAGS)
        note(f"skipped {skipped} file(s) named like dae's outputs ({patterns}); name them to use them")
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
                source_format = image.format
                tiff_exif = _tiff_exif(image) if source_format == "TIFF" else None
                image = ImageOps.exif_transpose(image)
                image.load()
                image.format = source_format  # a transposed copy has none of its own
                if tiff_exif and "exif" not in image.info:
                    image.info["exif"] = tiff_exif  # a copy loses a TIFF's tags: keep its EXIF
                _check_finite(image, path)
                return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{path}: refused: more pixels than Pillow's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS})"
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


def _check_finite(image: Image.Image, path: Path) -> None:
    """Refuses a float image holding NaN or infinity: no model output of it would mean
    anything, and the noise estimate fails on it. One bad input, not a silent guess."""
    if image.mode != "F":
        return
    finite = np.isfinite(np.asarray(image, dtype=np.float32))
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise InputError(
            f"{path}: {bad} of {finite.size} pixels are NaN or infinite; replace them with numbers and try again"
        )


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
    pixels, meta = read_for_model(path, channels, warn)
    return pixels, meta.channels


def read_for_model(path: str | Path, channels: int, warn=lambda message: None) -> tuple[np.ndarray, "ImageMeta"]:
    """`load_for_model`, with what a written output needs from the source (`ImageMeta`)."""
    image = open_image(path)
    meta = image_meta(image)
    if meta.channels == 3 and channels == 1:
        warn(
            f"{path} is in colour and this model denoises gray images only: its output is gray "
            "(use a colour model, such as -m photo, to keep the colour)"
        )
    return to_array(image, channels), meta


def load_image(path: str | Path, channels: int) -> np.ndarray:
    """Reads `path` as float32 (height, width, channels) in [0, 1]."""
    return to_array(open_image(path), channels)


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a float (h, w, c) array to `size` = (height, width), bicubic."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    planes = [
        np.asarray(Image.fromarray(pixels[..., c], mode="F").resize((size[1], size[0]), Image.Resampling.BICUBIC))
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


# --- Keeping what came in: bit depth, format, colour profile, EXIF and alpha ---------

# TIFF tags that describe a file's own layout: Pillow lists them among a TIFF's EXIF,
# but copied into another file they would describe the wrong pixels.
_TIFF_LAYOUT_TAGS = {
    254,
    255,
    256,
    257,
    258,
    259,
    262,
    266,
    273,
    277,
    278,
    279,
    280,
    281,
    284,
    317,
    320,
    322,
    323,
    324,
    325,
    338,
    339,
    340,
    341,
    530,
    531,
    532,
    34675,
}
_ORIENTATION = 0x0112


@dataclasses.dataclass
class ImageMeta:
    """What an output needs from its source image to be the same kind of file."""

    format: str | None = None  # Pillow's name for the source's format ("PNG", "JPEG", ...)
    bit_depth: int = 8  # of the colour channels: 8, 16 (gray) or 32 (float gray)
    channels: int = 1  # the source's own colour channels, 1 or 3
    alpha: np.ndarray | None = None  # the alpha plane, (h, w) uint8, carried over unchanged
    icc_profile: bytes | None = None
    exif: bytes | None = None  # with Orientation reset to 1: the pixels are already turned

    @property
    def mode(self) -> str:
        """The Pillow mode an output of this kind has (in a format that holds it)."""
        if self.bit_depth == 16:
            return "I;16"
        if self.bit_depth == 32:
            return "F"
        return ("L" if self.channels == 1 else "RGB") + ("A" if self.alpha is not None else "")


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """How outputs are written: `--format`, `--bit-depth`, `--quality`, `--strip-metadata`."""

    format: str | None = None  # "PNG", "JPEG", ...; None: each output's extension says
    bit_depth: int | None = None  # None: the source's
    quality: int = DEFAULT_QUALITY
    strip_metadata: bool = False


@dataclasses.dataclass(frozen=True)
class Written:
    """What an encoded output is, for the JSON record, and what it could not keep."""

    format: str
    bit_depth: int
    notes: tuple[str, ...] = ()


def image_meta(image: Image.Image) -> ImageMeta:
    """The `ImageMeta` of an image opened by `open_image`."""
    mode = image.mode
    bit_depth = 16 if mode in _SIXTEEN_BIT_MODES else 32 if mode == "F" else 8
    alpha = None
    if mode in ("LA", "RGBA"):
        alpha = np.asarray(image.getchannel("A"))
    elif mode in ("La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA" if mode != "La" else "LA").getchannel("A"))
    return ImageMeta(
        format=image.format,
        bit_depth=bit_depth,
        channels=image_channels(image),
        alpha=alpha,
        icc_profile=image.info.get("icc_profile") or None,
        exif=_exif_bytes(image),
    )


def _tiff_exif(image: Image.Image) -> bytes | None:
    """A TIFF's EXIF as bytes, without the tags that describe the TIFF's own layout."""
    try:
        exif = image.getexif()
        for tag in _TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
        return exif.tobytes() if len(exif) else None
    except Exception:  # unreadable EXIF is dropped, as Pillow drops it when it reads the pixels
        return None


def _exif_bytes(image: Image.Image) -> bytes | None:
    try:
        exif = image.getexif()
        if not len(exif):
            return None
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return exif.tobytes()
    except Exception:  # unreadable EXIF is dropped, as Pillow drops it when it reads the pixels
        return None


def source_kind(meta: ImageMeta) -> dict:
    """What `decode` needs to know of a source image to write the same kind of file:
    recorded by `encode` beside each latent."""
    return {"format": meta.format, "bit_depth": meta.bit_depth, "channels": meta.channels, "mode": meta.mode}


def meta_of_kind(kind: dict | None) -> ImageMeta | None:
    """The `ImageMeta` a decoded image is written with (no alpha, profile nor EXIF: a
    latent holds none of them), or None where no kind was recorded (older files, CSV)."""
    if not isinstance(kind, dict):
        return None
    bit_depth = kind.get("bit_depth") if kind.get("bit_depth") in (8, 16, 32) else 8
    channels = kind.get("channels") if kind.get("channels") in (1, 3) else 3
    return ImageMeta(format=kind.get("format"), bit_depth=bit_depth, channels=channels)


def format_of(path: str | Path) -> str:
    """The format an output named `path` is written in (PNG for any other extension)."""
    return WRITABLE.get(Path(path).suffix.lower(), "PNG")


def output_extension(source: Path, format: str | None = None) -> str:
    """The extension of `source`'s output: `format`'s, else its own when dae writes it, else .png."""
    if format is not None:
        return FORMAT_EXTENSIONS[format]
    return source.suffix if source.suffix.lower() in WRITABLE else ".png"


def check_output_options(outputs: list[Path], options: OutputOptions) -> None:
    """Usage errors found before any work: 16 bits into a format that cannot hold them."""
    if options.bit_depth == 16:
        shallow = sorted({format_of(path) for path in outputs} - DEEP_FORMATS)
        if shallow:
            raise UsageError(f"--bit-depth 16: {', '.join(shallow)} holds 8 bits per channel; use --format png or tiff")


def encode_image(
    pixels: np.ndarray, meta: ImageMeta | None, format: str, options: OutputOptions = OutputOptions()
) -> tuple[bytes, Written]:
    """The file bytes of `pixels` ((h, w, 1 or 3) floats on [0, 1], or uint8) in `format`.

    The bit depth is `options.bit_depth` or the source's, where the format and Pillow can
    hold it (16 bits and float are gray only); the source's alpha plane is re-attached
    unchanged, and its ICC profile (when it matches the output's channels) and EXIF copied,
    where the format takes them and `options.strip_metadata` is off. What had to go is
    in `Written.notes`, one line each.
    """
    meta = meta or ImageMeta(channels=pixels.shape[-1])
    notes = []
    if format == "WEBP" and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)  # WebP has no gray
    channels = pixels.shape[-1]
    alpha = meta.alpha if meta.alpha is not None and meta.alpha.shape == pixels.shape[:2] else None
    if alpha is not None and format not in ALPHA_FORMATS:
        alpha = None
        notes.append(f"{format} has no alpha channel: the alpha of such inputs is dropped")
    depth = options.bit_depth or meta.bit_depth
    if depth == 32 and format != "TIFF":
        depth = 16
    if depth > 8 and format not in DEEP_FORMATS:
        depth = 8
    if depth > 8 and (channels == 3 or alpha is not None):
        depth = 8
        notes.append("Pillow writes 16-bit and float images in gray only: colour and alpha outputs are 8-bit")
    keep_metadata = not options.strip_metadata and format in METADATA_FORMATS
    icc = meta.icc_profile if keep_metadata and _icc_fits(meta.icc_profile, channels) else None
    exif = meta.exif if keep_metadata else None
    if format == "PNG" and depth == 8 and alpha is None and icc is None and exif is None:
        return png_bytes(pixels if pixels.dtype == np.uint8 else to_uint8(pixels)), Written("PNG", 8, tuple(notes))
    image = Image.fromarray(_samples(pixels, depth, alpha))
    settings = {}
    if icc is not None:
        settings["icc_profile"] = icc
    if exif is not None:
        settings["exif"] = exif
    if format in ("JPEG", "WEBP"):
        settings["quality"] = options.quality
    if format == "TIFF":
        settings["compression"] = "tiff_adobe_deflate"
    buffer = io.BytesIO()
    image.save(buffer, format, **settings)
    return buffer.getvalue(), Written(format, depth, tuple(notes))


def _samples(pixels: np.ndarray, depth: int, alpha: np.ndarray | None) -> np.ndarray:
    """The array Pillow makes the output's mode of: L, LA, RGB, RGBA (uint8), I;16 or F."""
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.float32) / 255.0 if depth > 8 else pixels
    if depth == 16:
        # float32 is exact enough: v / 65535 * 65535 is within 0.01 of v, so rint gives v back.
        scaled = np.multiply(pixels[..., 0], 65535.0, dtype=np.float32)
        np.rint(scaled, out=scaled)
        return np.clip(scaled, 0, 65535, out=scaled).astype(np.uint16)
    if depth == 32:
        return np.multiply(pixels[..., 0], 255.0, dtype=np.float32)  # Pillow's 0-255 float scale
    samples = pixels if pixels.dtype == np.uint8 else to_uint8(pixels)
    if alpha is not None:
        samples = np.concatenate([samples, alpha.astype(np.uint8)[..., None]], axis=-1)
    return samples[..., 0] if samples.shape[-1] == 1 else samples


def _icc_fits(profile: bytes | None, channels: int) -> bool:
    """A profile describes the output's pixels only for its colour space: GRAY or RGB."""
    if not profile or len(profile) < 20:
        return False
    return profile[16:20] == (b"GRAY" if channels == 1 else b"RGB ")


def write_image(
    pixels: np.ndarray,
    meta: ImageMeta | None,
    path: str | Path,
    options: OutputOptions = OutputOptions(),
    overwrite: bool = False,
) -> Written:
    """Writes `pixels` to `path` in the format its extension names, atomically; never
    replaces an existing file unless `overwrite`."""
    data, written = encode_image(pixels, meta, format_of(path), options)
    write_bytes_atomic(path, data, overwrite=overwrite, durable=False)
    return written
