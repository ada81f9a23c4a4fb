"""Reading and writing images, and turning input arguments into files.

`read_image` gives a file's samples as stored, upright (EXIF rotation applied), alpha
split off (not composited): (height, width, 1 or 3) of uint8, uint16 or float32 on
[0, 1]. Pillow reads most files: palette and CMYK images become RGB, float images come
from Pillow's 0-255 scale. What Pillow cannot read, 16-bit colour and alpha (48-bit RGB,
64-bit RGBA), goes through `deep_images` (tifffile, imagecodecs), which also refuses
TIFFs of several pages or more than four channels. `read_for_model` takes the samples
to a model's float32 on [0, 1] in its channels (`pixels.to_model`: exactly, float32
holds every 16-bit value; RGB to gray by Pillow's ITU-R 601-2 luma). Images over
Pillow's decompression-bomb limit are refused before their pixels are decoded.

What a written image needs from its source travels beside the pixels as an
`ImageMeta` (`read_for_model`): the format, bit depth, own channels, the alpha plane,
the ICC profile and EXIF. `encode_image` turns pixels and that back into a file of a
given format, keeping what the format can hold: 16 bits in PNG and TIFF, gray or colour,
with or without alpha (written by `deep_images` where Pillow cannot).

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
from dae_cli.io import deep_images, pixels
from dae_cli.io.deep_images import PNG_SIGNATURE
from dae_cli.io.deep_images import png_chunk as _png_chunk
from dae_cli.io.files import write_bytes_atomic
from dae_cli.io.pixels import to_uint8

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
DEEP_FORMATS = {"PNG", "TIFF"}  # hold 16 bits, gray or colour (and TIFF 32-bit float gray)
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
            # Sorted by parts, as paths compare, without pathlib's slow comparisons.
            images = sorted((p for p in path.rglob("*") if _is_image_name(p) and p.is_file()), key=_parts)
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


def _parts(path: Path) -> tuple[str, ...]:
    return path.parts


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_dae_output(path: Path) -> bool:
    return path.name.lower().endswith(OUTPUT_SUFFIXES)


def open_image(path: str | Path) -> Image.Image:
    """Opens and fully decodes `path` with Pillow, raising `InputError` with the reason if
    it can't, or if it is a TIFF layout that dae refuses (`deep_images.probe`)."""
    deep_images.probe(path)
    return _open_with_pillow(Path(path))


def _open_with_pillow(path: Path) -> Image.Image:
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


def samples_of(image: Image.Image) -> np.ndarray:
    """A Pillow image's samples, (h, w, 1 or 3): uint8 of L or RGB (palette, CMYK...
    converted; alpha dropped), uint16 of a 16-bit image, float32 on [0, 1] of a float one."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)[..., None]  # mode I holds int32
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32) / 255.0, 0.0, 1.0)[..., None]
    gray = image.mode in ("1", "L", "LA", "La")
    samples = np.asarray(image.convert("L" if gray else "RGB"))
    return samples[..., None] if gray else samples


def to_array(image: Image.Image, channels: int) -> np.ndarray:
    """Converts a Pillow image to float32 (height, width, channels) in [0, 1]."""
    return pixels.to_model(samples_of(image), channels)


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
    samples, meta = read_image(path)
    if meta.channels == 3 and channels == 1:
        warn(
            f"{path} is in colour and this model denoises gray images only: its output is gray "
            "(use a colour model, such as -m photo, to keep the colour)"
        )
    return pixels.to_model(samples, channels), meta


def read_image(path: str | Path) -> tuple[np.ndarray, "ImageMeta"]:
    """The image at `path` as stored, upright: (h, w, 1 or 3) samples of uint8, uint16 or
    float32 on [0, 1], and its `ImageMeta` (the alpha plane, profile, EXIF...).

    Example:
        >>> samples, meta = read_image("lightroom-export.tif")      # doctest: +SKIP
        >>> samples.dtype, meta.bit_depth, meta.channels              # doctest: +SKIP
        (dtype('uint16'), 16, 3)
    """
    deep = deep_images.probe(path)
    if deep is not None:
        return _read_deep(Path(path), deep)
    image = _open_with_pillow(Path(path))
    return samples_of(image), image_meta(image)


def load_image(path: str | Path, channels: int) -> np.ndarray:
    """Reads `path` as float32 (height, width, channels) in [0, 1]."""
    return read_for_model(path, channels)[0]


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a float (h, w, c) array to `size` = (height, width), bicubic."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    planes = [
        np.asarray(Image.fromarray(pixels[..., c], mode="F").resize((size[1], size[0]), Image.Resampling.BICUBIC))
        for c in range(pixels.shape[-1])
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a float (h, w, 1 or 3) array in [0, 1]."""
    return png_bytes(to_uint8(pixels))


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
    bit_depth: int = 8  # of the colour channels: 8, 16 or 32 (float gray)
    channels: int = 1  # the source's own colour channels, 1 or 3
    alpha: np.ndarray | None = None  # the alpha plane, (h, w) uint8 or uint16, carried over unchanged
    icc_profile: bytes | None = None
    exif: bytes | None = None  # with Orientation reset to 1: the pixels are already turned

    @property
    def mode(self) -> str:
        """The Pillow mode an output of this kind has (in a format that holds it)."""
        if self.bit_depth == 32:
            return "F"
        mode = ("L" if self.channels == 1 else "RGB") + ("A" if self.alpha is not None else "")
        if self.bit_depth == 16:  # "RGB;16" and the like: modes Pillow has no name for
            return "I;16" if mode == "L" else f"{mode};16"
        return mode


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


def _read_deep(path: Path, format: str) -> tuple[np.ndarray, ImageMeta]:
    """`read_image` of a file `deep_images.probe` named: 16-bit colour or alpha."""
    height, width = deep_images.size_of(path, format)
    if height * width > Image.MAX_IMAGE_PIXELS:
        raise InputError(
            f"{path}: refused: more pixels than Pillow's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS})"
        )
    samples = deep_images.read_samples(path, format)
    icc, exif = _deep_metadata(path, format)
    orientation = exif.get(_ORIENTATION, 1) if exif is not None else 1
    samples = upright(samples, orientation)
    if exif is not None and _ORIENTATION in exif:
        exif[_ORIENTATION] = 1  # the samples are turned already
    alpha = samples[..., -1] if samples.shape[-1] in (2, 4) else None
    colour = samples[..., :-1] if alpha is not None else samples
    meta = ImageMeta(format, 16, pixels.own_channels(colour), alpha, icc, exif.tobytes() if exif else None)
    return colour, meta


def _deep_metadata(path: Path, format: str) -> tuple[bytes | None, Image.Exif | None]:
    """The ICC profile and EXIF of a 16-bit colour file, as Pillow reads them from its
    header (its pixels Pillow would cut to 8 bits); for a TIFF Pillow cannot open, the
    profile alone, by tifffile."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                icc = image.info.get("icc_profile") or None
                if format == "TIFF":
                    exif_bytes = _tiff_exif(image)
                else:  # an eXIf after the pixels would need them decoded: Pillow writes it before
                    exif_bytes = image.info.get("exif")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return _tifffile_metadata(path)
    exif = None
    if exif_bytes:
        exif = Image.Exif()
        exif.load(exif_bytes)
    return icc, exif


def _tifffile_metadata(path: Path) -> tuple[bytes | None, Image.Exif | None]:
    """The ICC profile and the text tags (camera, date, author...) of a TIFF Pillow cannot
    open, as tifffile reads them."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        exif = Image.Exif()
        for tag in page.tags.values():
            if isinstance(tag.value, str) and tag.code not in _TIFF_LAYOUT_TAGS:
                exif[tag.code] = tag.value
        return page.iccprofile, exif if len(exif) else None


# Pillow's `ImageOps.exif_transpose`, for arrays: EXIF orientation -> the turn that makes it upright.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def upright(samples: np.ndarray, orientation: int) -> np.ndarray:
    """(h, w, c) `samples` turned as EXIF `orientation` says, as Pillow turns an image."""
    turn = _UPRIGHT.get(orientation)
    return samples if turn is None else np.ascontiguousarray(turn(samples))


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

    The bit depth is `options.bit_depth` or the source's, where the format can hold it
    (16 bits in PNG and TIFF, gray or colour; float in TIFF, gray only); the source's
    alpha plane is re-attached unchanged, and its ICC profile (when it matches the
    output's channels) and EXIF copied, where the format takes them and
    `options.strip_metadata` is off. What had to go is in `Written.notes`, one line each.
    """
    meta = meta or ImageMeta(channels=pixels.shape[-1])
    notes: list[str] = []
    if format == "WEBP" and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)  # WebP has no gray
    channels = pixels.shape[-1]
    alpha = meta.alpha if meta.alpha is not None and meta.alpha.shape == pixels.shape[:2] else None
    if alpha is not None and format not in ALPHA_FORMATS:
        alpha = None
        notes.append(f"{format} has no alpha channel: the alpha of such inputs is dropped")
    depth = _output_depth(options.bit_depth or meta.bit_depth, format, channels == 3 or alpha is not None)
    keep_metadata = not options.strip_metadata and format in METADATA_FORMATS
    icc = meta.icc_profile if keep_metadata and _icc_fits(meta.icc_profile, channels) else None
    exif = meta.exif if keep_metadata else None
    if format == "TIFF" and exif is not None:
        exif = _tiff_main_exif(exif, notes)
    if format == "PNG" and depth == 8 and alpha is None and icc is None and exif is None:
        return png_bytes(pixels if pixels.dtype == np.uint8 else to_uint8(pixels)), Written("PNG", 8, tuple(notes))
    samples = _samples(pixels, depth, alpha)
    if depth == 16 and samples.ndim == 3:  # 16-bit colour or alpha: what Pillow cannot write
        return deep_images.encode(samples, format, icc, exif), Written(format, depth, tuple(notes))
    return _pillow_bytes(samples, format, icc, exif, options.quality), Written(format, depth, tuple(notes))


def _output_depth(depth: int, format: str, colour_or_alpha: bool) -> int:
    """The bits per sample an output gets: float (32) is for gray TIFF, 16 bits for PNG
    and TIFF; otherwise 8."""
    if depth == 32 and (format != "TIFF" or colour_or_alpha):
        depth = 16
    return depth if format in DEEP_FORMATS else 8


def _tiff_main_exif(exif: bytes, notes: list[str]) -> bytes | None:
    """EXIF without its sub-directories (exposure, GPS), for a TIFF: neither Pillow's
    libtiff writer nor tifffile writes them into a TIFF. Notes what went."""
    loaded = Image.Exif()
    loaded.load(exif)
    pointers = [tag for tag in (0x8769, 0x8825, 0xA005) if tag in loaded]  # Exif, GPS, Interoperability
    if not pointers:
        return exif
    for tag in pointers:
        del loaded[tag]
    notes.append("TIFF outputs keep the main EXIF tags (camera, date, ...) but not the Exif and GPS sub-directories")
    return loaded.tobytes() if len(loaded) else None


def _pillow_bytes(samples: np.ndarray, format: str, icc: bytes | None, exif: bytes | None, quality: int) -> bytes:
    image = Image.fromarray(samples)
    settings: dict = {}
    if icc is not None:
        settings["icc_profile"] = icc
    if exif is not None:
        settings["exif"] = exif
    if format in ("JPEG", "WEBP"):
        settings["quality"] = quality
    if format == "TIFF":
        settings["compression"] = "tiff_adobe_deflate"
    buffer = io.BytesIO()
    image.save(buffer, format, **settings)
    return buffer.getvalue()


def _samples(values: np.ndarray, depth: int, alpha: np.ndarray | None) -> np.ndarray:
    """The output's samples: (h, w) of one channel, else (h, w, channels + alpha); uint8,
    uint16 (16 bits) or float32 on Pillow's 0-255 scale (32, gray)."""
    if values.dtype == np.uint8 and depth > 8:
        values = values.astype(np.float32) / 255.0
    if depth == 32:
        return np.multiply(values[..., 0], 255.0, dtype=np.float32)  # Pillow's 0-255 float scale
    dtype = np.uint16 if depth == 16 else np.uint8
    samples = values if values.dtype == dtype else pixels.from_model(values, dtype)
    if alpha is not None:
        samples = np.concatenate([samples, pixels.rescale(alpha, dtype)[..., None]], axis=-1)
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
