"""One pipeline for `denoise`, `encode` and `decode`, whatever the model.

Four stages run at the same time:

1. read (`reading`): each input decoded ahead of the model, and planned there: its
   windows (`Denoiser.plan_denoise`, `plan_encode`) and its noise level for a model that
   takes one;
2. batch (`run_plans`): consecutive windows of one shape go through the model together,
   as many as `Denoiser.batch_limit` allows, and each output is put back in its plan;
3. the model (`Denoiser.denoise`, `encode`, `decode`), whose TensorFlow work leaves the GIL;
4. write (`writer.Writer`): each finished image is encoded and written atomically in a
   thread of its own.

Every input gets its own outcome, in input order: a bad one is reported with its path
and reason while the good ones go on, unless `--fail-fast`. Memory stays flat: only a
few images and batches are in flight, whatever the number of files.

Example:
    >>> denoise_files(load_denoiser("photo"), paths, outputs, ApplyOptions(), log=log)   # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from dae_cli.apply import reading
from dae_cli.apply.outcomes import Outcome, OutcomeLog, decoded_paths
from dae_cli.apply.writer import ImageToWrite, Writer
from dae_cli.errors import DaeError
from dae_cli.io import image_io
from dae_cli.io.files import OutputExistsError
from dae_cli.io.latents import EncodedLatent
from dae_cli.models.denoiser import ApplyOptions, BatchLimit, Denoiser, NoiseLevel
from dae_cli.models.windows import Collected, Plan, Unchanged

Tell = Callable[[str], None]


def _silent(message: str) -> None:
    pass


@dataclasses.dataclass
class Work:
    """What one input needs from the model: its plan, the noise level its windows get, and
    (encode) the source each window's latent is named by."""

    plan: Plan
    level: NoiseLevel | None = None
    sources: list[str] | None = None
    pending: int = dataclasses.field(init=False)  # windows still to come back from the model

    def __post_init__(self):
        self.pending = self.plan.count


class _Batch:
    """Windows of one shape waiting for the model, within `limit`."""

    def __init__(self, call: Callable, limit: BatchLimit):
        self.call, self.limit = call, limit
        self.windows: list[tuple[Work, int]] = []
        self.shape, self.pixels = None, 0

    def takes(self, shape: tuple, cost: int) -> bool:
        if not self.windows:
            return True
        windows, pixels = self.limit.windows, self.limit.pixels
        return (
            shape == self.shape
            and (windows is None or len(self.windows) < windows)
            and (pixels is None or self.pixels + cost <= pixels)
        )

    def add(self, work: Work, index: int, shape: tuple, cost: int) -> None:
        self.windows.append((work, index))
        self.shape, self.pixels = shape, self.pixels + cost

    def run(self) -> None:
        """One model call on the windows; each output goes back to its plan (and the median
        of each window's level map to its `NoiseLevel`, when the call measures them)."""
        if not self.windows:
            return
        windows = np.stack([work.plan.window(index) for work, index in self.windows]).astype(np.float32, copy=False)
        levels = [None if work.level is None else work.level.model_input for work, _ in self.windows]
        outputs = self.call(windows, None if levels[0] is None else np.asarray(levels, np.float32))
        outputs, medians = outputs if isinstance(outputs, tuple) else (outputs, None)
        for number, (work, index) in enumerate(self.windows):
            work.plan.put(index, outputs[number])
            if medians is not None:
                work.level.measure(medians[number])
            work.pending -= 1
        self.windows, self.shape, self.pixels = [], None, 0


def run_plans(
    items: Iterable[tuple[Any, Work | None]], call: Callable, limit: BatchLimit
) -> Iterator[list[tuple[Any, Work | None]]]:
    """Runs every window of every (item, work) through `call(windows, levels)` in batches
    of equal-shape windows within `limit`; yields lists of finished pairs in input order.

    An item without work (it failed before the model) passes through in its place.
    """
    waiting: collections.deque = collections.deque()
    batch = _Batch(call, limit)

    def finished() -> list:
        done = []
        while waiting and (waiting[0][1] is None or waiting[0][1].pending == 0):
            done.append(waiting.popleft())
        return done

    for item, work in items:
        waiting.append((item, work))
        for index in range(work.plan.count if work is not None else 0):
            shape = work.plan.window_shape(index)
            cost = shape[0] * shape[1] if len(shape) == 3 else 1  # pixels of an image or map; a vector: 1
            if not batch.takes(shape, cost):
                batch.run()
                yield from filter(None, [finished()])
            batch.add(work, index, shape, cost)
        if work is None and len(waiting) == 1:
            yield finished()  # a failure at the front goes on at once
    batch.run()
    yield from filter(None, [finished()])


def _in_own_channels(pixels: np.ndarray, meta: image_io.ImageMeta | None) -> np.ndarray:
    """A gray input comes back gray: the mean of a colour model's three channels."""
    if meta is not None and meta.channels == 1 and pixels.shape[-1] == 3:
        return pixels.mean(axis=-1, keepdims=True)
    return pixels


def _noise_level(denoiser: Denoiser, item: reading.ReadImage, options: ApplyOptions) -> NoiseLevel | None:
    """The level one image is denoised by (`Denoiser.noise_level`)."""
    own_channels = item.meta.channels if item.meta is not None else denoiser.channels
    return denoiser.noise_level(item.pixels, own_channels, options.sigma, options.strength)


def _tell_level(path, level: NoiseLevel | None, detail: Tell) -> None:
    """Tells `detail` (`-v`) the level an image was denoised by, once it is known."""
    if level is not None and level.reported is not None:
        detail(f"{path}: sigma {level.reported * 255:.2f} ({'estimated' if level.estimated else 'given'})")


def _plan_denoise(denoiser: Denoiser, options: ApplyOptions) -> Callable:
    def prepare(item: reading.ReadImage) -> Work:
        level = _noise_level(denoiser, item, options)
        if options.strength == 0:  # nothing to take away: the image is its own result
            return Work(Unchanged(item.pixels), level)
        return Work(denoiser.plan_denoise(item.pixels, options, item.path), level)

    return prepare


def _counted(prepare: Callable, call: Callable, tell: Callable[[int, int], None]) -> tuple[Callable, Callable]:
    """`prepare` and the model `call`, counting the windows planned (in the reader thread)
    and denoised, told to `tell(done, planned)` after each call."""
    counts = {"done": 0, "planned": 0}

    def counted_prepare(item: reading.ReadImage) -> Work:
        work = prepare(item)
        counts["planned"] += work.plan.count
        return work

    def counted_call(windows: np.ndarray, levels):
        outputs = call(windows, levels)
        counts["done"] += len(windows)
        tell(counts["done"], counts["planned"])
        return outputs

    return counted_prepare, counted_call


def _denoised_pixels(item: reading.ReadImage, work: Work) -> np.ndarray:
    """One image's denoised pixels: in its own channels, clipped to [0, 1]."""
    result = _in_own_channels(work.plan.result(), item.meta)
    item.pixels = work.plan = None  # the input's memory goes before the output is encoded
    # In place where it can be: a 24-megapixel colour image is 288 MB a copy.
    return np.clip(result, 0.0, 1.0, out=result if result.flags.writeable and result.dtype == np.float32 else None)


def _reported(level: NoiseLevel | None) -> tuple[float | None, bool]:
    """(the level an image was denoised by, as reported; whether it was estimated)."""
    return (None, False) if level is None else (level.reported, level.estimated)


def _plan_encode(denoiser: Denoiser, options: ApplyOptions, detail: Tell) -> Callable:
    def prepare(item: reading.ReadImage) -> Work:
        level = _noise_level(denoiser, item, options)
        _tell_level(item.path, level, detail)
        plan, sources = denoiser.plan_encode(item.pixels, options, item.path)
        return Work(plan, level, sources)

    return prepare


def _finished_image(item: reading.ReadImage, work: Work | None, detail: Tell) -> Outcome | ImageToWrite:
    if work is None:
        return Outcome(str(item.path), error=item.error)
    _tell_level(item.path, work.level, detail)
    result = _denoised_pixels(item, work)
    return ImageToWrite(str(item.path), result, item.output, item.meta, *_reported(work.level))


def denoise_files(
    denoiser: Denoiser,
    paths: list[Path],
    outputs: list[Path],
    options: ApplyOptions,
    *,
    log: OutcomeLog,
    overwrite: bool = False,
    output_options: image_io.OutputOptions = image_io.OutputOptions(),
    warn: Tell = _silent,
    detail: Tell = _silent,
    windows: Callable[[int, int], None] | None = None,
) -> None:
    """Denoises every image in `paths` into `outputs`; outcomes reach `log` in input order.

    Each output is written in the format its name says, with its source's channels, bit
    depth, alpha and metadata where that format holds them (`image_io.encode_image`).
    `windows(done, planned)`, if given, is told after each model call how many windows
    are done of those planned so far (the web page's progress within a large image).
    """
    prepare, call = _plan_denoise(denoiser, options), denoiser.denoise_and_measure
    if windows is not None:
        prepare, call = _counted(prepare, call, windows)
    limit = denoiser.batch_limit(options)
    read = reading.read_all(
        paths,
        outputs,
        denoiser.channels,
        overwrite=overwrite,
        warn=warn,
        prepare=prepare,
        plain_png_shape=None if denoiser.any_size else denoiser.image_shape,
        batch_size=limit.windows or reading.PIPELINE_MIN_FILES,
    )
    writer = Writer(log, overwrite, output_options)
    try:
        for finished in run_plans(((item, item.prepared) for item in read), call, limit):
            writer.submit([_finished_image(item, work, detail) for item, work in finished])
        writer.finish()
    finally:
        writer.close()


def encode_files(
    denoiser: Denoiser,
    paths: list[Path],
    options: ApplyOptions,
    *,
    log: OutcomeLog,
    warn: Tell = _silent,
    detail: Tell = _silent,
) -> list[EncodedLatent]:
    """The latents of every image (one per window for a tiled dense model, its source
    `<path>#<y>,<x>`, the window's top-left corner); outcomes reach `log` in input order."""
    prepare = _plan_encode(denoiser, options, detail)
    read = reading.read_images(
        [(i, path, None) for i, path in enumerate(paths)], denoiser.channels, warn=warn, prepare=prepare
    )
    encoded = []
    for finished in run_plans(((item, item.prepared) for item in read), denoiser.encode, denoiser.batch_limit(options)):
        for item, work in finished:
            if work is None:
                log.add(Outcome(str(item.path), error=item.error))
                continue
            kind = image_io.source_kind(item.meta)
            for number, (source, latent) in enumerate(zip(work.sources, work.plan.result())):
                encoded.append(EncodedLatent(source, latent, item.pixels.shape[:2], kind))
                level = work.level or NoiseLevel(None)
                outcome = Outcome(
                    source, latent=latent, kind=kind, sigma=level.reported, sigma_estimated=level.estimated
                )
                log.add(outcome, finishes_input=number == len(work.sources) - 1)
    return encoded


def decode_files(
    denoiser: Denoiser,
    items: list,
    out_dir: Path,
    options: ApplyOptions,
    *,
    log: OutcomeLog,
    overwrite: bool = False,
    output_options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """One image per latent read from a file (`Denoiser.latents.read`), named after its
    source image when it is known, of the kind its source was when `encode` recorded it,
    cropped to the source's size when that was recorded."""
    targets = decoded_paths(items, out_dir, output_options.format)

    def planned():
        for item, target in zip(items, targets):
            try:
                latent = denoiser.latent_array(item)
                if target.exists() and not overwrite:
                    raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
            except DaeError as error:
                yield (item, target, str(error)), None
                continue
            yield (item, target, None), Work(Collected([latent]))

    limit = denoiser.batch_limit(options, decoding=True)
    writer = Writer(log, overwrite, output_options)
    try:
        for finished in run_plans(planned(), _decoder(denoiser), limit):
            writer.submit([_decoded_image(*item, work) for item, work in finished])
        writer.finish()
    finally:
        writer.close()


def _decoder(denoiser: Denoiser) -> Callable:
    """The model call of `run_plans` for latents: the decoder alone (no noise level)."""
    return lambda latents, levels: denoiser.decode(latents)


def _decoded_pixels(work: Work, size: tuple[int, int] | None, meta: image_io.ImageMeta | None) -> np.ndarray:
    """One decoded image: cropped to its source's `size`, in its own channels, clipped to [0, 1]."""
    image = work.plan.result()[0]
    if size is not None:
        image = image[: size[0], : size[1]]
    return np.clip(_in_own_channels(image, meta), 0.0, 1.0)


def _decoded_image(item, target: Path, error: str | None, work: Work | None) -> Outcome | ImageToWrite:
    if work is None:
        return Outcome(item.label, error=error)
    meta = image_io.meta_of_kind(item.kind)
    return ImageToWrite(item.label, _decoded_pixels(work, item.size, meta), target, meta)


# --- Images in memory: the Python API (`dae_cli.api`) and `dae evaluate` -------------------


def _in_memory(images: list[np.ndarray], own_channels: list[int]) -> list[reading.ReadImage]:
    """Images in memory as the read stage gives files: (h, w, model channels) float32."""
    return [
        reading.ReadImage(index, Path(f"image {index}"), None, pixels, image_io.ImageMeta(channels=own))
        for index, (pixels, own) in enumerate(zip(images, own_channels))
    ]


def denoise_arrays(
    denoiser: Denoiser, images: list[np.ndarray], own_channels: list[int], options: ApplyOptions = ApplyOptions()
) -> list[tuple[np.ndarray, float | None, bool]]:
    """Images in memory, each (h, w, model channels) float32 on [0, 1], denoised as
    `denoise_files` denoises files, through the same planning, batches and model calls:
    for each, (the result in its `own_channels`, clipped to [0, 1]; the noise level the
    model was given; whether it was estimated). A bad image raises (`InputError`)."""
    prepare = _plan_denoise(denoiser, options)
    planned = ((item, prepare(item)) for item in _in_memory(images, own_channels))
    results = []
    for finished in run_plans(planned, denoiser.denoise_and_measure, denoiser.batch_limit(options)):
        results += [(_denoised_pixels(item, work), *_reported(work.level)) for item, work in finished]
    return results


def denoise_array(
    denoiser: Denoiser, pixels: np.ndarray, own_channels: int, options: ApplyOptions = ApplyOptions()
) -> tuple[np.ndarray, float | None, bool]:
    """`denoise_arrays` of one image."""
    return denoise_arrays(denoiser, [pixels], [own_channels], options)[0]


def encode_arrays(
    denoiser: Denoiser, images: list[np.ndarray], options: ApplyOptions = ApplyOptions()
) -> list[np.ndarray]:
    """The latent of each image in memory ((h, w, model channels) float32 on [0, 1]) as
    `encode_files` encodes a file (one window each: no tiles)."""
    prepare = _plan_encode(denoiser, options, _silent)
    planned = ((item, prepare(item)) for item in _in_memory(images, [denoiser.channels] * len(images)))
    latents = []
    for finished in run_plans(planned, denoiser.encode, denoiser.batch_limit(options)):
        latents += [work.plan.result()[0] for _, work in finished]
    return latents


def decode_arrays(denoiser: Denoiser, latents: list[np.ndarray], options: ApplyOptions = ApplyOptions()) -> list:
    """The image of each latent (float32), as `decode_files` decodes a file's: (h, w,
    model channels) on [0, 1], at the size the latent covers."""
    planned = ((None, Work(Collected([latent]))) for latent in latents)
    images = []
    for finished in run_plans(planned, _decoder(denoiser), denoiser.batch_limit(options, decoding=True)):
        images += [_decoded_pixels(work, None, None) for _, work in finished]
    return images
