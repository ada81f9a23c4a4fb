"""Latent-vector files: what `dae encode` writes and `dae decode` reads.

Formats, by suffix:
- `.npy`: float32 array (N, latent_dim); no sources.
- `.npz`: `latents` (N, latent_dim), `sources` (N,) strings and `images`, a JSON list of
  each source's kind (or null).
- `.csv`: header `source,z0,z1,...`, one row per vector.
- `.json`: a list of `{"source": ..., "latent": [...], "image": {...}}` objects (or of
  bare lists).
- JSON lines (stdout of `encode`, `-` for `decode`): one such object per line.

`image` (optional) is what the source image was, `{"format", "bit_depth", "channels",
"mode"}` (`image_io.source_kind`), so that `decode` writes the same kind of file.

Reading never stops at a bad vector: each item carries either a vector or the reason
it is unusable, so `decode` can report it and go on.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np

from dae_cli.errors import InputError, UsageError
from dae_cli.io.files import write_bytes_atomic

SUFFIXES = (".npy", ".npz", ".csv", ".json")


@dataclasses.dataclass
class LatentItem:
    """One vector read from a file, or the reason it could not be read."""

    label: str  # where it came from, for messages: "file.csv:3" or the source image
    source: str | None
    vector: list | None
    error: str | None = None
    kind: dict | None = None  # the source image's kind, when recorded
    size = None  # a vector decodes to the model's own size: nothing to crop


@dataclasses.dataclass
class EncodedLatent:
    """One latent that `encode` made: of `source` (a path, or `path#y,x` for a tile), with
    the size of the image it covers and what the source was (`image_io.source_kind`)."""

    source: str
    latent: np.ndarray
    size: tuple[int, int]
    kind: dict | None = None


def check_vector(item: LatentItem, latent_dim: int) -> np.ndarray:
    """The item's vector as float32, or `InputError` saying why it cannot be decoded."""
    if item.error:
        raise InputError(item.error)
    values = item.vector
    if not isinstance(values, (list, tuple, np.ndarray)) or not all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values
    ):
        raise InputError(f"{item.label}: latent must be a list of numbers")
    if len(values) != latent_dim:
        raise InputError(f"{item.label}: latent has {len(values)} values, the model takes {latent_dim}")
    vector = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(vector)):
        raise InputError(f"{item.label}: latent holds NaN or infinity")
    return vector


def write_latents(
    path: Path, sources: list[str], latents: np.ndarray, overwrite: bool = False, kinds: list | None = None
) -> None:
    """Writes vectors in the format `path`'s suffix names, atomically, with each source's
    kind (`kinds`) where the format holds it (.npz, .json)."""
    suffix = path.suffix.lower()
    latents = np.asarray(latents, dtype=np.float32).reshape(len(sources), -1)
    kinds = list(kinds) if kinds is not None else [None] * len(sources)
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, latents)
    elif suffix == ".npz":
        np.savez(buffer, latents=latents, sources=np.asarray(sources, dtype=str), images=np.asarray(json.dumps(kinds)))
    elif suffix == ".csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["source"] + [f"z{i}" for i in range(latents.shape[1])])
        for source, vector in zip(sources, latents):
            writer.writerow([source] + [repr(float(v)) for v in vector])
        buffer.write(text.getvalue().encode())
    elif suffix == ".json":
        records = [
            {"source": s, "latent": [float(v) for v in vector], **({"image": kind} if kind else {})}
            for s, vector, kind in zip(sources, latents, kinds)
        ]
        buffer.write((json.dumps(records, indent=1) + "\n").encode())
    else:
        raise UsageError(f"-o {path}: unknown latent format; use one of {', '.join(SUFFIXES)}")
    write_bytes_atomic(path, buffer.getvalue(), overwrite=overwrite)


def read_latents(spec: str) -> list[LatentItem]:
    """Every vector in `spec`: a latent file, or `-` for JSON lines on stdin."""
    if spec == "-":
        return _from_json_lines(sys.stdin.read(), "<stdin>")
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"no such latent file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _from_arrays(np.load(path, allow_pickle=False), None, str(path))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "latents" not in archive.files:
                    raise InputError(f"{path}: no 'latents' array")
                sources = archive["sources"] if "sources" in archive.files else None
                items = _from_arrays(archive["latents"], sources, str(path))
                kinds = json.loads(str(archive["images"])) if "images" in archive.files else []
                if isinstance(kinds, list) and len(kinds) == len(items):
                    for item, kind in zip(items, kinds):
                        item.kind = kind if isinstance(kind, dict) else None
                return items
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: cannot read latents ({error})") from None
    if not text.strip():
        raise InputError(f"{path}: empty file, no latents")
    if suffix == ".csv":
        return _from_csv(text, str(path))
    if suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return _from_json_lines(text, str(path))
        if not isinstance(document, list):
            raise InputError(f"{path}: expected a JSON list of latents")
        return [_from_json_value(value, f"{path}:{i + 1}") for i, value in enumerate(document)]
    if suffix in (".jsonl", ".ndjson"):
        return _from_json_lines(text, str(path))
    raise UsageError(f"{path}: unknown latent format; use one of {', '.join(SUFFIXES)}, .jsonl")


def _from_arrays(latents: np.ndarray, sources, label: str) -> list[LatentItem]:
    if latents.ndim == 1:
        latents = latents[None]
    if latents.ndim != 2 or len(latents) == 0:
        raise InputError(f"{label}: expected a non-empty (N, latent_dim) array, got shape {latents.shape}")
    if not np.issubdtype(latents.dtype, np.number):
        raise InputError(f"{label}: latents must be numbers, got {latents.dtype}")
    return [
        LatentItem(f"{label}:{i + 1}", str(sources[i]) if sources is not None else None, [float(v) for v in row])
        for i, row in enumerate(latents)
    ]


def _from_csv(text: str, label: str) -> list[LatentItem]:
    rows = list(csv.reader(io.StringIO(text)))
    header, rows = rows[0], [row for row in rows[1:] if row]
    if not header or header[0] != "source":
        raise InputError(f"{label}: expected a header row starting with 'source'")
    if not rows:
        raise InputError(f"{label}: no latents after the header")
    items = []
    for number, row in enumerate(rows, start=2):
        where = f"{label}:{number}"
        try:
            items.append(LatentItem(where, row[0] or None, [float(cell) for cell in row[1:]]))
        except ValueError:
            bad = next(cell for cell in row[1:] if not _is_float(cell))
            items.append(LatentItem(where, row[0] or None, None, f"{where}: not a number: {bad!r}"))
    return items


def _is_float(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _from_json_lines(text: str, label: str) -> list[LatentItem]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            items.append(LatentItem(where, None, None, f"{where}: invalid JSON ({error.msg})"))
            continue
        items.append(_from_json_value(value, where))
    if not items:
        raise InputError(f"{label}: empty input, no latents")
    return items


def _from_json_value(value, where: str) -> LatentItem:
    if isinstance(value, dict):
        source = value.get("source") if isinstance(value.get("source"), str) else None
        latent = value.get("latent")
        if latent is None:
            return LatentItem(where, source, None, f"{where}: object has no 'latent' list")
        kind = value.get("image") if isinstance(value.get("image"), dict) else None
        return LatentItem(
            source or where,
            source,
            latent if isinstance(latent, list) else None,
            None if isinstance(latent, list) else f"{where}: 'latent' is not a list of numbers",
            kind,
        )
    if isinstance(value, list):
        return LatentItem(where, None, value)
    return LatentItem(where, None, None, f"{where}: not a list of numbers")


class VectorCodec:
    """Latent vectors: written in any of the formats above, or as JSON lines on stdout."""

    def check_output(self, out: Path | None, count: int, overwrite: bool) -> None:
        if out is not None and out.suffix.lower() not in SUFFIXES:
            raise UsageError(f"-o {out}: unknown latent format; use one of {', '.join(SUFFIXES)}")
        if out is not None and out.exists() and not overwrite:
            raise UsageError(f"{out} exists; pass --overwrite to replace it")

    def write(self, out: Path, encoded: list[EncodedLatent], overwrite: bool) -> None:
        latents = np.stack([item.latent for item in encoded])
        write_latents(out, [item.source for item in encoded], latents, overwrite, kinds=[i.kind for i in encoded])

    def record(self, source: str, latent: np.ndarray, kind: dict | None) -> dict:
        """One JSON line of stdout: what `decode -` reads back."""
        record = {"source": source, "latent": latent.tolist()}
        if kind:
            record["image"] = kind  # what decode needs to write the same kind of file
        return record

    def read(self, spec: str) -> list[LatentItem]:
        return read_latents(spec)

    def array_for(self, item: LatentItem, latent_dim: int) -> np.ndarray:
        return check_vector(item, latent_dim)


VECTORS = VectorCodec()
