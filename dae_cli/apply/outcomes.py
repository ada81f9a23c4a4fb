"""What becomes of each input of `denoise`, `encode`, `decode` and `noise`, and where it goes.

`Outcome` is one input's result (its output, or the error that stopped it), `OutcomeLog`
collects them in input order and turns them into the exit code, `output_paths` names
each input's output, and `write_image` writes one image atomically and reports it as
an outcome. The pipeline (`pipeline`) and `dae noise` (`noisy_copies`) share them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from dae_cli.errors import DaeError, ExitCode, UsageError
from dae_cli.io import image_io
from dae_cli.io.files import write_bytes_atomic


@dataclasses.dataclass
class Outcome:
    """What became of one input."""

    input: str
    output: str | None = None
    error: str | None = None
    latent: np.ndarray | None = None  # float32, as the encoder gave it
    kind: dict | None = None  # what `encode`'s source was (`image_io.source_kind`), for decode
    # The noise level the model was given (std on [0, 1]), for models that take one,
    # and whether it was estimated from the image (`--sigma auto`).
    sigma: float | None = None
    sigma_estimated: bool = False
    # What was written: its format ("PNG", "JPEG", ...) and bits per channel (8, 16, 32),
    # and what the output could not keep (one line each, warned once per run).
    format: str | None = None
    bit_depth: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> dict:
        record = {"input": self.input, "status": "ok" if self.ok else "error"}
        if self.output is not None:
            record["output"] = self.output
        if self.format is not None:
            record["format"], record["bit_depth"] = self.format, self.bit_depth
        if self.sigma is not None:  # on the 0-255 scale, as users give it
            record["sigma"] = round(self.sigma * 255, 3)
            record["sigma_estimated"] = self.sigma_estimated
        if self.error is not None:
            record["error"] = self.error
        return record


class OutcomeLog:
    """Collects outcomes, passes each to `on_outcome`, counts finished inputs on
    `progress` (an `output.Progress`), and enforces `--fail-fast`."""

    def __init__(self, on_outcome: Callable[[Outcome], None], fail_fast: bool = False, progress=None):
        self.on_outcome = on_outcome
        self.fail_fast = fail_fast
        self.progress = progress
        self.outcomes: list[Outcome] = []

    def add(self, outcome: Outcome, finishes_input: bool = True) -> None:
        """Records `outcome`; `finishes_input=False` for all but the last tile of an image."""
        self.outcomes.append(outcome)
        self.on_outcome(outcome)
        if finishes_input and self.progress is not None:
            self.progress.advance()
        if self.fail_fast and not outcome.ok:
            raise DaeError(f"stopped at the first failure (--fail-fast): {outcome.error}", self.exit_code())

    def exit_code(self) -> ExitCode:
        """0 if all went well, 3 if only some inputs failed, 1 if none succeeded."""
        failed = sum(not outcome.ok for outcome in self.outcomes)
        if not failed:
            return ExitCode.OK
        return ExitCode.FAILURE if failed == len(self.outcomes) else ExitCode.PARTIAL_FAILURE


def output_paths(
    inputs: list[Path], out: Path | None, tag: str, format: str | None = None, directory_only: bool = False
) -> list[Path]:
    """Where each input's result goes: beside it, into `out` as one file, or under `out`.

    An output is named `<stem>.<tag><extension>`, the extension the input's own (when
    dae writes that format) or `format`'s. `-o FILE.EXT` with one input names the file
    itself when EXT is a format dae writes; `-o` with another extension that is no
    existing directory is a usage error (unless `directory_only`, where `out` is always
    a directory). Under a directory, inputs keep their paths relative to their deepest
    common folder, so two `a.png` from different folders stay apart and nothing lands
    outside `out`.
    """
    if out is not None and not directory_only and not out.is_dir():
        if out.suffix.lower() in image_io.WRITABLE:
            named = image_io.WRITABLE[out.suffix.lower()]
            if format is not None and format != named:
                raise UsageError(f"-o {out} is a {named} file name, but --format says {format.lower()}")
            if len(inputs) == 1:
                return [out]
        elif out.suffix:
            writable = ", ".join(sorted({s.lstrip(".") for s in image_io.WRITABLE}))
            raise UsageError(f"-o {out}: not an image format dae writes ({writable}) nor an existing directory")
    suffixes = [f".{tag}{image_io.output_extension(path, format)}" for path in inputs]
    if out is None:
        targets = [path.with_name(path.stem + suffix) for path, suffix in zip(inputs, suffixes)]
    else:
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {out} is a file; with several inputs it must be a directory")
        resolved = _resolved(inputs)  # (folder, name) pairs
        folders = {folder for folder, _ in resolved}
        base = Path(os.path.commonpath([str(folder) for folder in folders]))
        under = {folder: out / folder.relative_to(base) for folder in folders}
        targets = [under[folder] / (_stem(name) + suffix) for (folder, name), suffix in zip(resolved, suffixes)]
    # a.png and a.jpg in one folder both become a.denoised.png with --format png: keep the suffix.
    seen: dict[Path, int] = {}
    for target in targets:
        seen[target] = seen.get(target, 0) + 1
    return [
        target.with_name(source.name + suffix) if seen[target] > 1 else target
        for source, target, suffix in zip(inputs, targets, suffixes)
    ]


def write_image(
    label: str,
    pixels: np.ndarray,
    output: Path,
    meta: image_io.ImageMeta | None,
    overwrite: bool,
    options: image_io.OutputOptions = image_io.OutputOptions(),
    made_directories: set[Path] | None = None,
) -> Outcome:
    """Writes one output image in the format its name says (`image_io.encode_image`);
    a failure becomes the input's outcome, not an exception. `made_directories`, kept
    by the caller for one run, saves a `mkdir` per file in a folder already made."""
    try:
        if made_directories is None or output.parent not in made_directories:
            output.parent.mkdir(parents=True, exist_ok=True)
            if made_directories is not None:
                made_directories.add(output.parent)
        data, written = image_io.encode_image(pixels, meta, image_io.format_of(output), options)
        write_bytes_atomic(output, data, overwrite=overwrite, durable=False)
        return Outcome(
            label, output=str(output), format=written.format, bit_depth=written.bit_depth, notes=written.notes
        )
    except DaeError as error:
        return Outcome(label, error=str(error))
    except OSError as error:
        return Outcome(label, error=f"{output}: cannot write ({error.strerror or error})")


def _stem(name: str) -> str:
    """`Path(name).stem`, without making a path."""
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _resolved(paths: list[Path]) -> list[tuple[Path, str]]:
    """(folder, name) of `path.resolve()` for each path, each folder resolved once: a file
    that is no symbolic link resolves to its resolved folder and its name (thousands of
    files in a folder took 0.6-1.3 ms each to resolve one by one on 2 shared cores)."""
    folders: dict[str, Path] = {}
    resolved = []
    for path in paths:
        if path.is_symlink():
            target = path.resolve()
            resolved.append((target.parent, target.name))
            continue
        head, slash, name = str(path).rpartition("/")
        folder = folders.get(head + slash)  # "/" for "/a.png", "" for "a.png"
        if folder is None:
            folder = folders[head + slash] = path.parent.resolve()
        resolved.append((folder, name))
    return resolved


def decoded_paths(items: list, out_dir: Path, format: str | None = None) -> list[Path]:
    """Where each decoded latent goes under `out_dir`.

    `<stem>.decoded.<ext>` for a vector with a source image (kept apart as `output_paths`
    does; the source's extension or `format`'s), `<stem>.tile<y>-<x>.decoded.<ext>` for a
    tile of one, else `latent_<n>.png` (or `format`'s extension).
    """
    sources = {i: split_tile(item.source) for i, item in enumerate(items) if item.source}
    images = list(dict.fromkeys(image for image, _ in sources.values()))
    paths = (
        output_paths([Path(image) for image in images], out_dir, "decoded", format, directory_only=True)
        if images
        else []
    )
    named = dict(zip(images, paths))
    targets = []
    for i in range(len(items)):
        if i not in sources:
            targets.append(out_dir / f"latent_{i:05d}{image_io.FORMAT_EXTENSIONS[format or 'PNG']}")
            continue
        image, tile = sources[i]
        target = named[image]
        if tile:
            stem, _, extension = target.name.rpartition(".decoded")
            target = target.with_name(f"{stem}.tile{tile[0]}-{tile[1]}.decoded{extension}")
        targets.append(target)
    return targets


def split_tile(source: str) -> tuple[str, tuple[int, int] | None]:
    """`"a.png#14,0"` -> `("a.png", (14, 0))`; a plain path has no tile."""
    image, _, corner = source.rpartition("#")
    y, _, x = corner.partition(",")
    if image and y.isdigit() and x.isdigit():
        return image, (int(y), int(x))
    return source, None
