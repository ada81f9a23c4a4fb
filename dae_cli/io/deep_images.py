"""What Pillow cannot do: 16-bit colour and alpha files, and the TIFF layouts dae refuses.

Pillow holds 16 bits per sample in gray only: it reads a 48-bit RGB or 64-bit RGBA PNG
or TIFF as 8 bits and cannot write one. Those files (and 16-bit gray with alpha) go
through two libraries made for it instead: `tifffile` for TIFF and `imagecodecs` (its
companion, libpng inside) for PNG. Every other file stays with Pillow (`image_io`).

- `probe(path)` says whether a file is one of these ("PNG" or "TIFF", else None), from
  its header alone, and refuses what dae would read wrong: a TIFF of several pages
  (thumbnails aside) or of more than four channels, and 16-bit TIFF layouts other than
  gray, gray+alpha, RGB and RGBA. The message is one line naming the file.
- `read_samples(path, format)`: (height, width, channels) uint16, as stored.
- `encode(samples, format, icc, exif)`: the file's bytes, the ICC profile and EXIF kept
  (in a TIFF, the EXIF tags of its main directory: tifffile writes no EXIF sub-directory).

Example:
    >>> probe("lightroom-export.tif")                               # doctest: +SKIP
    'TIFF'
    >>> samples = read_samples("lightroom-export.tif", "TIFF")      # doctest: +SKIP
    >>> samples.dtype, samples.shape                                # doctest: +SKIP
    (dtype('uint16'), (4000, 6000, 3))
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from dae_cli.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DEEP_COLOUR_TYPES = {2: 3, 4: 2, 6: 4}  # PNG colour type -> channels: RGB, gray+alpha, RGBA
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
MAX_CHANNELS = 4
_MINISBLACK, _RGB = 1, 2  # TIFF photometric interpretations dae reads at 16 bits
# EXIF tags a TIFF's main directory may not take from another file: the sub-directory
# pointers (Exif, GPS, Interoperability), which tifffile cannot write, and what tifffile
# writes itself (resolution from `resolution`, the profile from `iccprofile`).
_NOT_COPIED = {34665, 34853, 40965, 282, 283, 296, 34675}


def probe(path: str | Path) -> str | None:
    """ "PNG" or "TIFF" for a file that needs this module, None for the others (and for a
    file that cannot be read at all: Pillow words that error). Raises `InputError` for
    a TIFF layout dae does not read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(33)
    except OSError:
        return None
    if len(head) >= 26 and head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        return "PNG" if head[24] == 16 and head[25] in PNG_DEEP_COLOUR_TYPES else None
    if head.startswith(TIFF_SIGNATURES):
        return _probe_tiff(Path(path))
    return None


def _probe_tiff(path: Path) -> str | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            pages = [page for page in tiff.pages if not getattr(page, "is_reduced", False)]
            page = pages[0]
            samples, bits, photometric = page.samplesperpixel, page.bitspersample, int(page.photometric)
    except Exception:  # not a TIFF tifffile reads: Pillow says what is wrong with it
        return None
    if len(pages) > 1:
        raise InputError(
            f"{path}: a TIFF of {len(pages)} pages; dae reads one image per file (split it first, say with tiffsplit)"
        )
    if samples > MAX_CHANNELS:
        raise InputError(f"{path}: a TIFF of {samples} channels; dae reads gray, gray+alpha, RGB and RGBA (1 to 4)")
    if bits != 16 or samples == 1:
        return None
    if (photometric, samples) not in {(_MINISBLACK, 2), (_RGB, 3), (_RGB, 4)}:
        raise InputError(
            f"{path}: a 16-bit TIFF of {samples} channels with photometric interpretation {photometric}; "
            "dae reads 16-bit gray, gray+alpha, RGB and RGBA"
        )
    return "TIFF"


def size_of(path: str | Path, format: str) -> tuple[int, int]:
    """(height, width) of a file `probe` named, from its header."""
    if format == "PNG":
        with open(path, "rb") as handle:
            width, height = struct.unpack(">II", handle.read(24)[16:24])
        return height, width
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        return int(page.imagelength), int(page.imagewidth)


def read_samples(path: str | Path, format: str) -> np.ndarray:
    """The samples of a file `probe` named, (height, width, channels) uint16 as stored."""
    try:
        if format == "PNG":
            import imagecodecs

            samples = imagecodecs.png_decode(Path(path).read_bytes())
        else:
            samples = _tiff_samples(Path(path))
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None
    except Exception as error:  # the libraries' own errors for a damaged file
        raise InputError(f"{path}: corrupt or truncated image ({error})") from None
    if samples.dtype != np.uint16 or samples.ndim != 3:
        raise InputError(f"{path}: corrupt image (read as {samples.dtype} {samples.shape})")
    return samples


def _tiff_samples(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        samples = page.asarray()
        if int(page.planarconfig) == 2:  # separate planes: (channels, height, width)
            samples = np.moveaxis(samples, 0, -1)
    return np.ascontiguousarray(samples)


def encode(samples: np.ndarray, format: str, icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A PNG or TIFF of uint16 `samples` (h, w, 2, 3 or 4; the last of 2 or 4 is alpha),
    with the ICC profile and EXIF given."""
    if format == "PNG":
        import imagecodecs

        return with_png_chunks(imagecodecs.png_encode(samples, level=6), _png_metadata(icc, exif))
    return _tiff_bytes(samples, icc, exif)


def _png_metadata(icc: bytes | None, exif: bytes | None) -> list[tuple[bytes, bytes]]:
    chunks = []
    if icc:
        chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        chunks.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    return chunks


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def with_png_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """`png` with `chunks` (kind, body) put right after its header (IHDR), before the pixels."""
    end_of_header = len(PNG_SIGNATURE) + 8 + 13 + 4  # length, "IHDR", 13 bytes, CRC
    return png[:end_of_header] + b"".join(png_chunk(*chunk) for chunk in chunks) + png[end_of_header:]


def _tiff_bytes(samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    import io

    import tifffile

    tags, resolution = exif_tags(exif)
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        samples,
        photometric="rgb" if samples.shape[-1] >= 3 else "minisblack",
        extrasamples=("unassalpha",) if samples.shape[-1] in (2, 4) else None,
        compression="zlib",
        iccprofile=icc,
        extratags=tags,
        metadata=None,  # no JSON description of its own
        software=False,
        **resolution,
    )
    return buffer.getvalue()


def exif_tags(exif: bytes | None) -> tuple[list[tuple], dict]:
    """The tags of EXIF's main directory as tifffile's `extratags`, and its resolution
    as tifffile's `resolution` and `resolutionunit`; tags of a type that cannot be
    written are left out."""
    if not exif:
        return [], {}
    from PIL import Image, TiffTags

    loaded = Image.Exif()
    loaded.load(exif)
    tags = []
    for code, value in loaded.items():
        tag = _extratag(code, value, TiffTags.lookup(code).type)
        if code not in _NOT_COPIED and tag is not None:
            tags.append(tag)
    resolution = {}
    if 282 in loaded and 283 in loaded:
        resolution = {"resolution": (float(loaded[282]), float(loaded[283])), "resolutionunit": loaded.get(296, 2)}
    return tags, resolution


def _extratag(code: int, value, known_type: int | None) -> tuple | None:
    """(code, dtype, count, value, writeonce) for tifffile, or None."""
    values = value if isinstance(value, tuple) else (value,)
    if isinstance(value, str):
        return (code, 2, 0, value, True)
    if isinstance(value, bytes):
        return (code, 7, len(value), value, True)
    if all(hasattr(v, "numerator") and not isinstance(v, int) for v in values):  # rationals
        pairs = [part for v in values for part in (v.numerator, v.denominator)]
        return (code, 5, len(values), pairs, True) if all(p >= 0 for p in pairs) else None
    if all(isinstance(v, int) and 0 <= v < 2**32 for v in values):
        dtype = known_type if known_type in (1, 3, 4) else (3 if max(values, default=0) < 2**16 else 4)
        return (code, dtype, len(values), values, True)
    return None
