"""Feature-map latent files: what `dae encode` writes for a `conv` model, and `decode` reads.

- `.npz`: one float32 array (h, w, channels) per image, keyed by the image's path as
  `encode` was given it, and `dae:image_sizes`, a JSON object {path: [height, width]}
  of the images' own sizes, so that `decode` crops its output to them, and
  `dae:image_kinds`, a JSON object {path: {"format", "bit_depth", "channels", "mode"}}
  of what each source was (`image_io.source_kind`), so that `decode` writes the same kind of file (files
  written before it was recorded decode as 8-bit images of the model's channels).
- `.npy`: the array of one image; with no size beside it, `decode` gives the image at
  the padded size the latent covers (the image's own size when that is a multiple of
  the model's `size_multiple`).

Example:
    >>> write_maps(Path("latents.npz"), [("a.png", latent, (321, 481))])   # doctest: +SKIP
    >>> [item.size for item in read_maps("latents.npz")]                    # doctest: +SKIP
    [(321, 481)]
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from dae_cli.errors import InputError, UsageError
from dae_cli.io.files import write_bytes_atomic
from dae_cli.io.latents import EncodedLatent

SIZES_KEY = "dae:image_sizes"
KINDS_KEY = "dae:image_kinds"


@dataclasses.dataclass
class MapItem:
    """One latent feature map read from a file."""

    label: str  # for messages: the source path, or "file.npy"
    source: str | None
    array: np.ndarray
    size: tuple[int, int] | None = None  # the image's own (height, width)
    kind: dict | None = None  # what the source was (`image_io.source_kind`), when recorded


def write_maps(path: Path, encoded: list[tuple], overwrite: bool = False) -> None:
    """Writes (source, latent map, image size[, source kind]) tuples to `.npz`, or one map to `.npy`."""
    buffer = io.BytesIO()
    if path.suffix.lower() == ".npy":
        if len(encoded) != 1:
            raise UsageError(f"-o {path}: .npy holds the latent of one image, got {len(encoded)}; use .npz")
        np.save(buffer, np.asarray(encoded[0][1], np.float32))
    else:
        arrays = {source: np.asarray(latent, np.float32) for source, latent, *_ in encoded}
        sizes = {source: [int(size[0]), int(size[1])] for source, _, size, *_ in encoded}
        kinds = {source: rest[0] for source, _, _, *rest in encoded if rest}
        np.savez(
            buffer, **arrays, **{SIZES_KEY: np.asarray(json.dumps(sizes)), KINDS_KEY: np.asarray(json.dumps(kinds))}
        )
    write_bytes_atomic(path, buffer.getvalue(), overwrite=overwrite)


def read_maps(spec: str) -> list[MapItem]:
    """Every feature map in a `.npz` or `.npy` file written by `write_maps`."""
    path = Path(spec)
    if spec == "-" or path.suffix.lower() not in (".npz", ".npy"):
        raise UsageError(f"{spec}: this model's latents are feature maps; decode reads them from .npz or .npy")
    if not path.exists():
        raise UsageError(f"no such latent file: {path}")
    try:
        if path.suffix.lower() == ".npy":
            return [MapItem(str(path), None, _checked(np.load(path, allow_pickle=False), str(path)))]
        with np.load(path, allow_pickle=False) as archive:
            sizes = json.loads(str(archive[SIZES_KEY])) if SIZES_KEY in archive.files else {}
            kinds = json.loads(str(archive[KINDS_KEY])) if KINDS_KEY in archive.files else {}
            items = [
                MapItem(
                    key,
                    key,
                    _checked(archive[key], f"{path}:{key}"),
                    tuple(sizes[key]) if key in sizes else None,
                    kinds.get(key) if isinstance(kinds, dict) else None,
                )
                for key in archive.files
                if key not in (SIZES_KEY, KINDS_KEY)
            ]
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read latent maps ({error})") from None
    if not items:
        raise InputError(f"{path}: no latent maps")
    return items


def _checked(array: np.ndarray, label: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{label}: latent maps must be numbers, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{label}: latent map holds NaN or infinity")
    return array.astype(np.float32)


class MapCodec:
    """Latent feature maps: `.npz` (any number of images) or `.npy` (one), never text."""

    def check_output(self, out: Path | None, count: int, overwrite: bool) -> None:
        if out is None or out.suffix.lower() not in (".npz", ".npy"):
            where = "JSON lines on stdout" if out is None else f"{out.suffix or out.name}"
            raise UsageError(
                f"this model's latent is a feature map, which {where} cannot hold; "
                "write it with -o FILE.npz (or -o FILE.npy for one image)"
            )
        if out.suffix.lower() == ".npy" and count != 1:
            raise UsageError(f"-o {out}: .npy holds the latent of one image, got {count}; use .npz")
        if out.exists() and not overwrite:
            raise UsageError(f"{out} exists; pass --overwrite to replace it")

    def write(self, out: Path, encoded: list[EncodedLatent], overwrite: bool) -> None:
        write_maps(out, [(item.source, item.latent, item.size, item.kind) for item in encoded], overwrite)

    def record(self, source: str, latent: np.ndarray, kind: dict | None) -> dict:
        raise UsageError("a feature map is written to -o FILE.npz, not to stdout")

    def read(self, spec: str) -> list[MapItem]:
        return read_maps(spec)

    def array_for(self, item: MapItem, latent_dim: int) -> np.ndarray:
        if item.array.ndim != 3 or item.array.shape[-1] != latent_dim:
            raise InputError(
                f"{item.label}: latent map has shape {item.array.shape}, the model takes (h, w, {latent_dim})"
            )
        return item.array


MAPS = MapCodec()
