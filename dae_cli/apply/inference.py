"""Applying a trained model to many files: `denoise`, `encode` and `decode`.

Inputs are streamed in batches (never the whole folder in memory). Every input gets
its own outcome: a bad one is reported with its path and reason while the good ones
go on, unless `fail_fast` is set. Outputs are written atomically and never replace an
existing file unless `overwrite` is set.
"""

from __future__ import annotations

import collections
import struct
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from dae_cli.apply import tiling
from dae_cli.apply.outcomes import Outcome, OutcomeLog, output_paths, write_image
from dae_cli.errors import DaeError, InputError
from dae_cli.io import image_io
from dae_cli.io.files import OutputExistsError


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan_image(
    pixels: np.ndarray, model_size: tuple[int, int], mode: str, overlap: int | None, path: Path
) -> tiling.Plan:
    """How one image goes through the model: as it is, resized, or tiled."""
    if pixels.shape[:2] == model_size:
        return tiling.plan_exact(pixels)
    if mode == "resize":
        return tiling.plan_resize(pixels, model_size)
    if mode == "tile":
        return tiling.plan_tiles(pixels, model_size, overlap)
    raise InputError(
        f"{path}: image is {pixels.shape[0]}x{pixels.shape[1]}, the model takes "
        f"{model_size[0]}x{model_size[1]}; tile it (denoise: --tile, encode: --tiles) or pass --resize"
    )


def _run_batched(function: Callable[[np.ndarray], np.ndarray], arrays: np.ndarray, batch_size: int) -> np.ndarray:
    """`function` (a model call) over `arrays` in batches of at most `batch_size`: the one
    batch runner of denoise, encode and decode."""
    arrays = np.asarray(arrays, dtype=np.float32)
    return np.concatenate([function(arrays[i : i + batch_size]) for i in range(0, len(arrays), batch_size)])


# Fewer PNGs than this go through Pillow alone: tf.data's set-up (about 0.1-0.3 s)
# is paid back only over a few hundred files.
PIPELINE_MIN_FILES = 256


def denoise_files(
    model,
    paths: list[Path],
    outputs: list[Path],
    *,
    size_mode: str = "error",
    overlap: int | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    log: OutcomeLog,
    warn: Callable[[str], None] = lambda message: None,
    options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """Denoises every image in `paths` into `outputs`; outcomes are reported in input order.

    A colour image given to a gray model comes back gray, and `warn` says so. Each output
    is written in the format its name says, with the source's bit depth, alpha and
    metadata where that format holds them (`image_io.encode_image`, `options`).

    The work is split into stages that run at the same time:
    1. read and decode: PNGs that decode the same in TensorFlow as in Pillow (8-bit, the
       model's channels and size, no EXIF nor ICC profile) are read and decoded by
       `tf.data` on all cores, outside Python's GIL (`_plain_png_batches`); any other input, and any
       that fails there, goes through Pillow (`image_io.load_image`), which also words
       the error of a bad one;
    2. batches of same-shape arrays (a Pillow-read image of another size becomes its
       tiles or its resized copy, `plan_image`);
    3. the model (`model.denoise`, whose TensorFlow work leaves the GIL), while
       `tf.data` decodes the batches after and the writer writes the one before;
    4. encoding and the atomic write (`outcomes.write_image`), in a thread of its own
       (`_Writer`).
    Memory stays flat: only a few batches are in flight whatever the number of files.
    """
    jobs = list(zip(paths, outputs))
    plain = [
        index
        for index, (path, output) in enumerate(jobs)
        if path.suffix.lower() == ".png" and (overwrite or not output.exists())
    ]
    if len(plain) < PIPELINE_MIN_FILES:
        plain = []  # setting up tf.data costs more than it saves
    stream = _plain_png_batches([str(jobs[i][0]) for i in plain], model.image_shape, batch_size) if plain else ()
    writer = _Writer(log, overwrite, options)
    try:
        others: list[int] = []  # jobs for the Pillow path, in input order
        next_job = 0
        for positions, pixels_batch in stream:
            # The same arithmetic as the Pillow path: x / 255 in float32 in, to_uint8 out.
            denoised = image_io.to_uint8(model.denoise(pixels_batch.astype(np.float32) / 255.0))
            items = []
            for position, pixels in zip(positions, denoised):
                index = plain[position]
                others.extend(range(next_job, index))  # left out by tf.data: not plain, or failed
                next_job = index + 1
                if others:  # they come first, to keep the input order
                    writer.submit(items)
                    for done in _pillow_chunk(
                        model, [jobs[i] for i in others], size_mode, overlap, overwrite, batch_size, warn
                    ):
                        writer.submit(done)
                    items, others = [], []
                path, output = jobs[index]
                items.append((str(path), pixels, output, None))
            writer.submit(items)
        others.extend(range(next_job, len(jobs)))
        for done in _pillow_chunk(model, [jobs[i] for i in others], size_mode, overlap, overwrite, batch_size, warn):
            writer.submit(done)
        writer.finish()
    finally:
        writer.close()


def _pillow_chunk(model, chunk, size_mode, overlap, overwrite, batch_size, warn=lambda message: None) -> Iterator[list]:
    """The Pillow path for a list of (path, output): decode, plan and model.

    Yields lists, in input order, of an `Outcome` for each input that failed and
    (label, pixels, output, `ImageMeta`) for each one to write. A list is yielded as soon as its
    images hold `batch_size` model windows, so memory is bounded by the windows in
    flight (and the largest single image), never by the number of large images.
    """
    height, width, channels = model.image_shape
    items: list = []
    plans = []
    windows = 0
    for path, output in chunk:
        try:
            if output.exists() and not overwrite:
                raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
            pixels, meta = image_io.read_for_model(path, channels, warn)
            plan = plan_image(pixels, (height, width), size_mode, overlap, path)
            plans.append((len(items), plan))
            items.append((str(path), None, output, meta))
            windows += len(plan.tiles)
        except DaeError as error:
            items.append(Outcome(str(path), error=str(error)))
        if windows >= batch_size:
            yield _assemble_chunk(model, items, plans, batch_size)
            items, plans, windows = [], [], 0
    if items:
        yield _assemble_chunk(model, items, plans, batch_size)


def _assemble_chunk(model, items: list, plans: list, batch_size: int) -> list:
    """Runs the model over the planned windows of `items` and puts each image together."""
    if plans:
        tiles = np.concatenate([plan.tiles for _, plan in plans]).astype(np.float32)
        predicted = _run_batched(model.denoise, tiles, batch_size)
        offsets = np.cumsum([0] + [len(plan.tiles) for _, plan in plans])
        for i, (slot, plan) in enumerate(plans):
            label, _, output, meta = items[slot]
            pixels = plan.assemble(predicted[offsets[i] : offsets[i + 1]])
            if meta.channels == 1 and pixels.shape[-1] == 3:
                pixels = pixels.mean(axis=-1, keepdims=True)  # gray in, gray out
            items[slot] = (label, pixels, output, meta)
    return items


class _Writer:
    """Encodes and writes outputs in a thread of its own, so the next batch is read and
    denoised meanwhile; passes the outcomes to the log in input order, from the caller's
    thread. At most `DEPTH` lists of items wait, so memory stays flat.

    With `--fail-fast`, nothing after the first failure is written.
    """

    DEPTH = 2

    def __init__(self, log: OutcomeLog, overwrite: bool, options: image_io.OutputOptions = image_io.OutputOptions()):
        from concurrent.futures import ThreadPoolExecutor

        self.log, self.overwrite, self.options = log, overwrite, options
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dae-write")
        self.waiting: collections.deque = collections.deque()
        self.stopped = False

    def submit(self, items: list) -> None:
        """`items`: an `Outcome` (a failure found earlier) or (label, pixels, output, meta) each."""
        if items:
            self.waiting.append(self.executor.submit(self._write, items))
        while len(self.waiting) > self.DEPTH:
            self._report(self.waiting.popleft().result())

    def finish(self) -> None:
        while self.waiting:
            self._report(self.waiting.popleft().result())

    def close(self) -> None:
        self.stopped = True  # after an error (or --fail-fast): write nothing more
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _report(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.log.add(outcome)

    def _write(self, items: list) -> list[Outcome]:
        outcomes = []
        for item in items:
            if self.stopped:
                break
            outcome = item if isinstance(item, Outcome) else write_image(*item, self.overwrite, self.options)
            outcomes.append(outcome)
            if self.log.fail_fast and not outcome.ok:
                self.stopped = True
        return outcomes


_METADATA_MARKS = "(?s).*(eXIf|Raw profile type exif|iCCP).*"


def _plain_png_batches(paths: list[str], shape: tuple[int, int, int], batch_size: int):
    """Yields (positions in `paths`, uint8 images) batches, in order, decoded on all cores.

    Only PNGs whose header says 8-bit gray (one-channel model) or RGB (three) of exactly
    `shape`, and that carry no EXIF nor ICC profile, are decoded here: for those
    TensorFlow's decoder gives the very pixels Pillow does, and there is nothing to
    keep. Any other file, and one that fails to read or decode, is left out without a
    word; the caller sends it down the Pillow path.
    """
    from dae_cli.backend import tf

    height, width, channels = shape
    header = image_io.PNG_SIGNATURE + struct.pack(">I4sIIBB", 13, b"IHDR", width, height, 8, 0 if channels == 1 else 2)

    # Plain graph code: without autograph, which would spend about a second rewriting it.
    plain_graph = tf.autograph.experimental.do_not_convert

    def has_metadata(data):
        # RE2 wants UTF-8; read as Latin-1, any bytes are.
        text = tf.strings.unicode_transcode(data, input_encoding="ISO-8859-1", output_encoding="UTF-8")
        return tf.strings.regex_full_match(text, _METADATA_MARKS)

    @plain_graph
    def read(position, path):
        data = tf.io.read_file(path)
        plain = tf.equal(tf.strings.substr(data, 0, len(header)), header)
        plain = tf.cond(plain, lambda: tf.logical_not(has_metadata(data)), lambda: plain)
        pixels = tf.cond(plain, lambda: tf.io.decode_png(data, channels=channels), lambda: tf.zeros(shape, tf.uint8))
        return position, plain, tf.ensure_shape(pixels, shape)

    dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), tf.constant(paths)))
    dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors(log_warning=False).filter(plain_graph(lambda position, plain, pixels: plain))
    dataset = dataset.map(plain_graph(lambda position, plain, pixels: (position, pixels))).batch(batch_size)
    yield from dataset.prefetch(2).as_numpy_iterator()


def encode_files(
    model,
    paths: list[Path],
    *,
    size_mode: str = "error",
    overlap: int | None = None,
    batch_size: int = 256,
    log: OutcomeLog,
) -> None:
    """One latent vector per image, or per tile with `size_mode="tile"`.

    A tile's source is `<path>#<y>,<x>`, its top-left corner in the image.
    """
    height, width, channels = model.image_shape
    report = log.add

    for chunk in chunks(paths, batch_size):
        ready = []
        for path in chunk:
            try:
                pixels, meta = image_io.read_for_model(path, channels)
                plan = plan_image(pixels, (height, width), size_mode, overlap, path)
                tiled = len(plan.tiles) > 1 or plan.tiles.shape[1:3] != pixels.shape[:2]
                kind = image_io.source_kind(meta)
                for k, ((y, x), tile) in enumerate(zip(plan.corners, plan.tiles)):
                    source = f"{path}#{y},{x}" if tiled and size_mode == "tile" else str(path)
                    ready.append((source, tile, k == len(plan.tiles) - 1, kind))
            except DaeError as error:
                report(Outcome(str(path), error=str(error)))
        if ready:
            latents = _run_batched(
                model.encode, np.stack([tile for _, tile, _, _ in ready]).astype(np.float32), batch_size
            )
            for (source, _, last_tile, kind), latent in zip(ready, latents):
                report(Outcome(source, latent=latent, kind=kind), finishes_input=last_tile)


def decode_latents(
    model,
    items: list,
    out_dir: Path,
    *,
    overwrite: bool = False,
    batch_size: int = 256,
    log: OutcomeLog,
    options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """One image per latent vector, named after its source image when it is known, in
    its source's format (or `options.format`) and, where `encode` recorded it, its
    source's channels and bit depth."""
    from dae_cli.io.latents import check_vector

    report = log.add

    targets = decode_targets(items, out_dir, options.format)
    for chunk in chunks(list(zip(items, targets)), batch_size):
        ready = []
        for item, target in chunk:
            try:
                vector = check_vector(item, model.latent_dim)
                if target.exists() and not overwrite:
                    raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
                ready.append((item, target, vector))
            except DaeError as error:
                report(Outcome(item.label, error=str(error)))
        if not ready:
            continue
        images = _run_batched(model.decode, np.stack([vector for _, _, vector in ready]), batch_size)
        for (item, target, _), image in zip(ready, images):
            meta = image_io.meta_of_kind(item.kind)
            if meta is not None and meta.channels == 1 and image.shape[-1] == 3:
                image = image.mean(axis=-1, keepdims=True)  # gray in, gray out
            report(write_image(item.label, image, target, meta, overwrite, options))


def decode_targets(items: list, out_dir: Path, format: str | None = None) -> list[Path]:
    """Where each decoded vector goes under `out_dir`.

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


def noise_files(
    paths: list[Path],
    outputs: list[Path],
    noise,
    seed: int,
    *,
    overwrite: bool = False,
    log: OutcomeLog,
    options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """Writes a noisy copy of each clean image, each in its own channels, with the
    source's format, bit depth, alpha and metadata as `denoise_files` keeps them.

    Image i gets the stateless seed (seed, i), so its noise does not depend on which
    other images are in the run or in what batches they go.
    """
    from dae_cli.backend import tf
    from dae_cli.noise import add_noise

    for index, (path, output) in enumerate(zip(paths, outputs)):
        try:
            if output.exists() and not overwrite:
                raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
            image = image_io.open_image(path)
        except DaeError as error:
            log.add(Outcome(str(path), error=str(error)))
            continue
        meta = image_io.image_meta(image)
        pixels = image_io.to_array(image, meta.channels)
        image = None
        noisy = add_noise(pixels, tf.constant([seed, index], tf.int64), noise).numpy()
        log.add(write_image(str(path), noisy, output, meta, overwrite, options))
