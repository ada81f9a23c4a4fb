"""The read stage: input images decoded ahead of the model, in input order.

Two readers share the work:
- Pillow (`image_io.read_for_model`), in a thread a few images ahead of the model, with
  whatever else an image needs before the model (`prepare`: its plan, its noise level);
  Pillow's decoders and NumPy leave the GIL, so this runs beside the model;
- `tf.data` on all cores, for many plain PNGs of a fixed-size model (`plain_png_batches`):
  8-bit, the model's channels and size, no EXIF nor ICC profile, where TensorFlow's
  decoder gives the very pixels Pillow does and there is nothing to keep. Any other
  file, and one that fails there, goes to Pillow, which also words a bad one's error.
"""

from __future__ import annotations

import collections
import dataclasses
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from dae_cli.errors import DaeError
from dae_cli.io import image_io
from dae_cli.io.files import OutputExistsError

READ_AHEAD = 4  # images decoded (and planned) ahead of the model
LARGE_PIXELS = 2_000_000  # past this, none ahead: a 24-megapixel photo is 288 MB a copy
# Fewer PNGs than this go through Pillow alone: tf.data's set-up (about 0.1-0.3 s)
# is paid back only over a few hundred files.
PIPELINE_MIN_FILES = 256


@dataclasses.dataclass
class ReadImage:
    """One input, read: its pixels in the model's channels and what to restore on writing,
    or the error that stopped it; `prepared` is what `prepare` made of it."""

    index: int
    path: Path
    output: Path | None
    pixels: np.ndarray | None = None
    meta: image_io.ImageMeta | None = None
    error: str | None = None
    prepared: Any = None


def prepared(item: ReadImage, prepare: Callable[[ReadImage], Any] | None) -> ReadImage:
    """`item` with what `prepare` makes of it, or with the error that stopped it."""
    if prepare is not None and item.error is None:
        try:
            item.prepared = prepare(item)
        except DaeError as error:
            item.pixels, item.error = None, str(error)
    return item


def prefetched(function: Callable, items: list, depth: int = READ_AHEAD, large: Callable = lambda result: False):
    """`function(item)` for each item, in order, computed in a thread up to `depth` items
    ahead of the caller; after a `large` result, the next is read only once the caller
    asks for it: a large photograph takes the model far longer than reading the next,
    and reading it ahead measured no faster and 410 MB more (12-megapixel photos)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dae-read") as executor:
        waiting: collections.deque = collections.deque()
        following = 0

        def fill(limit: int) -> None:
            nonlocal following
            while following < len(items) and len(waiting) < limit:
                waiting.append(executor.submit(function, items[following]))
                following += 1

        fill(1)
        while waiting:
            result = waiting.popleft().result()
            if not large(result):
                fill(depth)
            yield result
            fill(1)  # the caller is back for the next one


def read_images(
    jobs: list[tuple[int, Path, Path | None]],
    channels: int,
    *,
    overwrite: bool = True,
    warn: Callable[[str], None] = lambda message: None,
    prepare: Callable[[ReadImage], Any] | None = None,
) -> Iterator[ReadImage]:
    """(index, path, output) jobs read with Pillow ahead of the caller, each `prepare`d
    in the reader thread; an output that exists (without `overwrite`) is an error."""

    def read(job) -> ReadImage:
        index, path, output = job
        item = ReadImage(index, path, output)
        try:
            if output is not None and output.exists() and not overwrite:
                raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
            item.pixels, item.meta = image_io.read_for_model(path, channels, warn)
        except DaeError as error:
            item.error = str(error)
        return prepared(item, prepare)

    yield from prefetched(read, jobs, large=_large)


def _large(item: ReadImage) -> bool:
    return item.pixels is not None and item.pixels.shape[0] * item.pixels.shape[1] > LARGE_PIXELS


def read_all(
    paths: list[Path],
    outputs: list[Path | None],
    channels: int,
    *,
    overwrite: bool = True,
    warn: Callable[[str], None] = lambda message: None,
    prepare: Callable[[ReadImage], Any] | None = None,
    plain_png_shape: tuple[int, int, int] | None = None,
    batch_size: int = 256,
) -> Iterator[ReadImage]:
    """Every input in order: plain PNGs of `plain_png_shape` by `tf.data` when there are
    many (prepared in the caller's thread), the others by Pillow (`read_images`)."""
    jobs = list(zip(range(len(paths)), paths, outputs))

    def pillow(some: list) -> Iterator[ReadImage]:
        return read_images(some, channels, overwrite=overwrite, warn=warn, prepare=prepare)

    plain = []
    if plain_png_shape is not None:
        plain = [job for job in jobs if job[1].suffix.lower() == ".png" and (overwrite or not job[2].exists())]
    if len(plain) < PIPELINE_MIN_FILES:
        yield from pillow(jobs)
        return
    next_job = 0
    for positions, pixels_batch in plain_png_batches([str(job[1]) for job in plain], plain_png_shape, batch_size):
        pixels_batch = pixels_batch.astype(np.float32)
        pixels_batch /= 255.0  # the same arithmetic as Pillow's path: x / 255 in float32
        for position, pixels in zip(positions, pixels_batch):
            index = plain[position][0]
            if index > next_job:  # left out by tf.data (not plain, or failed): Pillow's
                yield from pillow(jobs[next_job:index])
            next_job = index + 1
            yield prepared(ReadImage(index, *jobs[index][1:], pixels=pixels), prepare)
    yield from pillow(jobs[next_job:])


_METADATA_MARKS = "(?s).*(eXIf|Raw profile type exif|iCCP).*"


def plain_png_batches(paths: list[str], shape: tuple[int, int, int], batch_size: int):
    """Yields (positions in `paths`, uint8 images) batches, in order, decoded on all cores.

    Only PNGs whose header says 8-bit gray (one channel) or RGB (three) of exactly
    `shape`, and that carry no EXIF nor ICC profile, are decoded here. Any other file,
    and one that fails to read or decode, is left out without a word.
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
