"""What the web page of `dae ui` does with an upload, without Gradio.

`Models` are the models the page offers: the built-in ones and each `--model` of the
command line, by name (a name from the page is looked up, never opened as a path), each
loaded once, when first used. `denoise_upload` denoises one uploaded image as
`dae denoise FILE -m MODEL` does, through the very function that command calls
(`jobs.denoise`) and through files: the upload is copied into a private folder
(`Workspace`) under a name made here (its own name cleaned to letters, digits, `.`, `_`
and `-`), the result is written beside it, and the page offers that file, byte for byte
what the command writes, with 8-bit PNG previews of both for the browser.

Example:
    >>> result = denoise_upload(path, uploads, models, "photo", "auto", 1.0, workspace)  # doctest: +SKIP
    >>> result.output.name                                                         # doctest: +SKIP
    'noisy.denoised.png'
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dae_cli.apply import jobs
from dae_cli.errors import DaeError, InputError, UsageError
from dae_cli.io import image_io
from dae_cli.models.builtin_models import SHIPPED_MODELS, builtin_path, resolve_model
from dae_cli.models.denoiser import ApplyOptions, Denoiser, open_model
from dae_cli.noise_level import AUTO, estimate_sigma, parse_sigma, parse_strength

# An upload larger than the largest image dae decodes is refused before it is stored:
# Pillow's decompression-bomb limit of pixels at 8 bytes each (16 bits a channel, RGBA,
# uncompressed), and this much room for an ICC profile, EXIF and other metadata.
BYTES_PER_PIXEL = 8
METADATA_ALLOWANCE = 16 << 20
KEPT_REQUESTS = 8  # the request folders kept; the page has taken the files of older ones
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

Windows = Callable[[int, int], None]  # told (windows done, windows planned) after each model call


def upload_limit() -> int | None:
    """The largest upload taken, in bytes (None where Pillow's pixel limit is off): no
    image within the decompression-bomb limit, which dae applies to every file, is larger."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is None:
        return None
    return int(Image.MAX_IMAGE_PIXELS) * BYTES_PER_PIXEL + METADATA_ALLOWANCE


class Models:
    """The models the page offers, by name: the built-in ones, then each `--model` given
    (a built-in name, or a directory shown by the path as given). The first `--model`
    is the page's default, else `photo`. Each directory's manifest is read here, so a
    bad one stops `dae ui` before the page is served."""

    def __init__(self, given: list[str] | tuple[str, ...] = ()):
        self.directories = {name: builtin_path(name) for name in SHIPPED_MODELS}
        self.default = "photo"
        for number, spec in enumerate(given):
            directory = resolve_model(spec)
            builtin = [name for name in SHIPPED_MODELS if builtin_path(name) == directory]
            name = builtin[0] if builtin else str(spec) if str(spec) not in SHIPPED_MODELS else os.path.join(".", spec)
            self.directories[name] = directory
            self.default = name if number == 0 else self.default
        self._opened = {name: open_model(directory) for name, directory in self.directories.items()}
        self._loaded: dict[str, Denoiser] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.directories)

    def opened(self, name: str) -> Denoiser:
        """The model called `name`, its manifest read, nothing loaded."""
        if name not in self._opened:
            raise UsageError(f"no model called {name!r} on this page; choose one of: {', '.join(self.names)}")
        return self._opened[name]

    def uses_noise_level(self, name: str) -> bool:
        """Whether the model denoises by a noise level (given to it or its own estimate),
        which `--strength` scales and `--sigma` sets."""
        return self.opened(name).uses_noise_level

    def loaded(self, name: str) -> Denoiser:
        """The model called `name` with its SavedModels loaded (sha256 checked), once."""
        directory = self.opened(name).directory
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = open_model(directory).load()
            return self._loaded[name]


class Workspace:
    """The private folder of a running page (mode 0700, under the system's temporary
    folder): one folder per request, the last `KEPT_REQUESTS` kept, all removed by `close`."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="dae-ui-"))
        self._requests: collections.deque[Path] = collections.deque()
        self._lock = threading.Lock()

    def folder(self) -> Path:
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.root))
            self._requests.append(folder)
            while len(self._requests) > KEPT_REQUESTS:
                shutil.rmtree(self._requests.popleft(), ignore_errors=True)
            return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def private_copy(upload: str | Path, uploads: Path, folder: Path) -> Path:
    """A copy in `folder` of the uploaded file at `upload`, named here from its name.

    `upload` must lie under `uploads`, where the web server keeps what the page sent:
    nothing else on this machine is read. Its extension must be one dae reads.
    """
    source = Path(upload).resolve()
    stem = _UNSAFE.sub("_", source.stem).lstrip(".")[:100] or "image"
    if source.suffix.lower() not in image_io.IMAGE_SUFFIXES:
        readable = ", ".join(sorted(image_io.IMAGE_SUFFIXES))
        raise InputError(f"{stem}{_UNSAFE.sub('_', source.suffix)}: not an image file dae reads ({readable})")
    target = folder / f"{stem}{source.suffix}"
    if not source.is_relative_to(Path(uploads).resolve()):
        raise InputError(f"{target.name}: not an upload of this page")
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError:
        raise InputError(f"{target.name}: the upload is gone (uploads are kept for an hour); drop it again") from None
    return target


@dataclasses.dataclass(frozen=True)
class Result:
    """One upload denoised: the file `dae denoise` writes, previews, and what happened."""

    model: str
    output: Path  # the file as `dae denoise` writes it
    noisy_preview: Path  # 8-bit PNGs for the browser
    denoised_preview: Path
    size: tuple[int, int]  # height, width
    seconds: float  # the time `jobs.denoise` took
    estimate: float  # the noise level estimated from the image (std, 0-255 scale), as --sigma auto does
    level: float | None  # the level it was denoised by (0-255), as `dae denoise --json` reports it
    strength: float  # --strength
    sigma: float | None  # --sigma, where a level was given (0-255)
    own_estimate: bool = False  # the model estimates its own level map (`level`: the map's median)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """What the page says of the result, in Markdown."""
        lines = [
            f"**{self.output.name}**: {self.size[1]}x{self.size[0]}, model `{self.model}`, "
            f"denoised in **{self.seconds:.2f} s**",
            f"noise level estimated from the image: **{self.estimate:.1f}** (0-255 scale)",
        ]
        if self.level is None:
            lines.append("this model is blind: it denoises by no level, so strength and sigma do not apply")
        else:
            estimate = "the model's own estimate (its map's median)" if self.own_estimate else "the estimate"
            basis = estimate if self.sigma is None else f"the level given, {self.sigma:g}"
            lines.append(f"denoised by level **{self.level:.1f}**: strength {self.strength:g} x {basis}")
        return "\n\n".join(lines + [f"warning: {note}" for note in self.notes])


class _Told:
    """The `jobs.Listener` of one upload: what `jobs.denoise` says, kept for the page,
    with the private folder's path taken out of every message."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.notes: list[str] = []
        self.outcomes: list = []

    def clean(self, message: str) -> str:
        return message.replace(f"{self.folder}{os.sep}", "")

    def info(self, message: str) -> None:
        self.notes.append(self.clean(message))

    warn = info

    def detail(self, message: str) -> None:
        pass  # the level each image was given: the page says it from the outcome

    def progress(self, label: str, total: int | None = None, unit: str = "images") -> _Uncounted:
        return _Uncounted()

    def outcome(self, outcome, show: bool = True) -> None:
        self.outcomes.append(outcome)
        self.notes.extend(self.clean(note) for note in outcome.notes)

    def record(self, record: dict, text: str | None = None) -> None:
        pass

    def failure(self, error: DaeError) -> DaeError:
        """The one line to show for `error`: the input's own reason where it failed."""
        reasons = [outcome.error for outcome in self.outcomes if not outcome.ok]
        return DaeError(self.clean(reasons[0] if reasons else str(error)), error.exit_code)


class _Uncounted:
    """Images counted by nobody: one image, whose progress is its windows (`Windows`)."""

    def advance(self, count: int = 1) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


def _sigma(text: str | None) -> float | str | None:
    """`--sigma` as the page or the API gives it: `auto` (or nothing) is the default, as
    when the flag is not given (a model without a level input refuses any other)."""
    text = (text or AUTO).strip()
    if text.lower() == AUTO:
        return None
    return parse_sigma(text)


def _strength(value: float | None) -> float | None:
    """`--strength` as the page or the API gives it: 1 (or nothing) is the default, as when
    the flag is not given (a model that uses no level refuses any other)."""
    if value is None or float(value) == 1:
        return None
    return parse_strength(repr(float(value)))


def _preview(path: Path, target: Path) -> np.ndarray:
    """An 8-bit PNG at `target` of the image at `path` in its own channels (what a browser
    shows of any format dae reads); returns its pixels on [0, 1] before rounding."""
    pixels, meta = image_io.read_for_model(path, 3)  # a gray image comes in three equal channels
    pixels = pixels[..., : meta.channels]
    image_io.save_png(pixels, target)
    return pixels


def denoise_upload(
    upload: str | Path,
    uploads: Path,
    models: Models,
    model: str,
    sigma: str | None,
    strength: float | None,
    workspace: Workspace,
    windows: Windows | None = None,
) -> Result:
    """Denoises the uploaded file at `upload` (under `uploads`) with the model called
    `model`, as `dae denoise FILE -m MODEL [--sigma SIGMA] [--strength STRENGTH]` does;
    raises `DaeError` with one line for the page."""
    options = ApplyOptions(sigma=_sigma(sigma), strength=_strength(strength))
    folder = workspace.folder()
    source = private_copy(upload, uploads, folder)
    denoiser = models.loaded(model)
    told = _Told(folder)
    started = time.monotonic()
    try:
        jobs.denoise([str(source)], denoiser, None, options, jobs.Files(), told, windows=windows)
    except DaeError as error:
        raise told.failure(error) from None
    seconds = time.monotonic() - started
    outcome = told.outcomes[-1]
    (folder / "preview").mkdir()
    noisy = _preview(source, folder / "preview" / "noisy.png")
    _preview(Path(outcome.output), folder / "preview" / "denoised.png")
    return Result(
        model=model,
        output=Path(outcome.output),
        noisy_preview=folder / "preview" / "noisy.png",
        denoised_preview=folder / "preview" / "denoised.png",
        size=noisy.shape[:2],
        seconds=seconds,
        estimate=estimate_sigma(noisy) * 255,
        level=None if outcome.sigma is None else outcome.sigma * 255,
        strength=1.0 if options.strength is None else options.strength,
        sigma=None if options.sigma is None else options.sigma * 255,
        own_estimate=denoiser.estimates_noise,
        notes=tuple(dict.fromkeys(told.notes)),
    )
