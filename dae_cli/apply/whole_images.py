"""Fully convolutional models on whole images of any size: `denoise`, `encode`, `decode`.

A `conv` model takes any height and width divisible by its `size_multiple` (one halving
per level). Each image is padded by reflection to that multiple, run, and cropped back.
An image over the pixel budget (`max_pixels`) is cut into overlapping windows that go
through the model a few at a time and are blended with linear cross-fades over the
overlap, so memory is bounded by the pixels in flight, never by the image or the
number of files.

The latent of an image is one feature map, (h/m, w/m, channels) for the padded size;
`encode` records the image's own size beside it so that `decode` crops back to it and
gives exactly `denoise`'s image.

A model that takes the noise level (`noise_level_input`) gets each image's level:
given, or estimated from the image (`dae_cli.apply.noise_level`). A gray image given to a
colour model goes through as gray in all three channels and comes back gray.

Example:
    >>> denoised = denoise_image(model, pixels, level=25 / 255)      # doctest: +SKIP
    >>> same = apply_whole(model.denoise, pixels, model.size_multiple, 4_000_000)  # a model without a level
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dae_cli.apply.outcomes import Outcome, OutcomeLog, output_paths, write_image
from dae_cli.apply.tiling import flat_top, window_starts
from dae_cli.errors import DaeError, UsageError
from dae_cli.io import image_io
from dae_cli.io.files import OutputExistsError

DEFAULT_MAX_PIXELS = 1_000_000  # the default --max-megapixels: a 24-megapixel photo in 2.4 GB (BENCHMARKS.md)
DEFAULT_OVERLAP = 64  # more than the built-in model's reach across a window's edge


def pad_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    """Pads (h, w, c) at the bottom and right by reflection to multiples of `multiple`."""
    height, width = pixels.shape[:2]
    pad_y, pad_x = -height % multiple, -width % multiple
    if not pad_y and not pad_x:
        return pixels
    # Reflection needs the image to be larger than the pad; a 1-pixel image repeats its edge.
    mode = "reflect" if pad_y < height and pad_x < width else "edge"
    return np.pad(pixels, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)


def _window_layout(pixels: np.ndarray, multiple: int, max_pixels: int, overlap: int):
    """(padded image, tile height, tile width, window corners, blend weight or None)."""
    height, width = pixels.shape[:2]
    padded = pad_to_multiple(pixels, multiple)
    if height * width <= max_pixels:
        return padded, padded.shape[0], padded.shape[1], [(0, 0)], None
    side = max(multiple, int(np.sqrt(max_pixels)) // multiple * multiple)
    side = min(side, max(height, width) + -max(height, width) % multiple)
    overlap = min(overlap, side // 2)
    tile_y, tile_x = min(side, padded.shape[0]), min(side, padded.shape[1])
    ys = window_starts(padded.shape[0], tile_y, tile_y - overlap)
    xs = window_starts(padded.shape[1], tile_x, tile_x - overlap)
    corners = [(y, x) for y in ys for x in xs]  # all multiples of `multiple`, as the sizes are
    weight = np.outer(flat_top(tile_y, overlap), flat_top(tile_x, overlap))[..., None].astype(np.float32)
    return padded, tile_y, tile_x, corners, weight


def _blend(placed, size, tile, weight) -> np.ndarray:
    """Adds each (corner, output) window into one image with `weight`, and normalises."""
    total, norm = None, np.zeros(size + (1,), np.float32)
    for (y, x), output in placed:
        if total is None:
            total = np.zeros(size + (output.shape[-1],), np.float32)
        total[y : y + tile[0], x : x + tile[1]] += output * weight
        norm[y : y + tile[0], x : x + tile[1]] += weight
    total /= norm
    return total


def apply_whole(
    function, pixels: np.ndarray, multiple: int, max_pixels: int, overlap: int = DEFAULT_OVERLAP
) -> np.ndarray:
    """`function` (batch -> batch of the same height and width) over one image of any size.

    The image goes through whole when it fits `max_pixels`; else by overlapping windows
    of that size, as many per call as fit it, each blended in as it comes back, so memory
    is the image, its sum and the windows of one call, whatever the image's size.
    """
    height, width = pixels.shape[:2]
    padded, tile_y, tile_x, corners, weight = _window_layout(pixels, multiple, max_pixels, overlap)
    if weight is None:
        return np.asarray(function(padded[None].astype(np.float32)))[0][:height, :width]
    per_call = max(1, max_pixels // (tile_y * tile_x))

    def placed():
        for start in range(0, len(corners), per_call):
            group = corners[start : start + per_call]
            batch = np.stack([padded[y : y + tile_y, x : x + tile_x] for y, x in group]).astype(np.float32)
            yield from zip(group, np.asarray(function(batch)))

    return _blend(placed(), padded.shape[:2], (tile_y, tile_x), weight)[:height, :width]


# The 8 flips and rotations of a square (the dihedral group), each with its inverse:
# `--tta` denoises every one and averages them back in the image's own orientation.
def _dihedral(k: int, flip: bool):
    def forward(x):
        return np.rot90(x[:, ::-1] if flip else x, k)

    def inverse(y):
        y = np.rot90(y, -k)
        return y[:, ::-1] if flip else y

    return forward, inverse


DIHEDRAL = [_dihedral(k, flip) for flip in (False, True) for k in range(4)]


def denoise_image(
    model,
    pixels: np.ndarray,
    *,
    level: float | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overlap: int = DEFAULT_OVERLAP,
    tta: bool = False,
) -> np.ndarray:
    """One image (h, w, model channels) on [0, 1], denoised whole (or by windows).

    `level` is the noise std on [0, 1] for a model that takes one. With `tta` the
    result is the mean of the 8 flips and rotations, each denoised and turned back.
    """
    if model.takes_noise_level:
        function = lambda batch: model.denoise(batch, np.full(len(batch), level, np.float32))  # noqa: E731
    else:
        function = model.denoise
    transforms = DIHEDRAL if tta else DIHEDRAL[:1]
    total = None
    for forward, inverse in transforms:
        result = inverse(
            apply_whole(function, np.ascontiguousarray(forward(pixels)), model.size_multiple, max_pixels, overlap)
        )
        total = result if total is None else total + result
    return total / len(transforms) if len(transforms) > 1 else total


def noise_level_for(model, pixels: np.ndarray, own_channels: int, sigma) -> tuple[float | None, bool]:
    """(the noise std to give the model, whether it was estimated) for `pixels` in the
    model's channels: `sigma` is `auto` (estimated from the image in its own channels),
    a std on [0, 1], or None for a model without a level input."""
    if not model.takes_noise_level:
        return None, False
    from dae_cli.apply.noise_level import AUTO, estimate_sigma

    if sigma is None or sigma == AUTO:
        return estimate_sigma(pixels[..., :own_channels]), True
    return float(sigma), False


def _tell_level(detail, path: Path, level: float | None, estimated: bool) -> None:
    if level is not None:
        detail(f"{path}: sigma {level * 255:.2f} ({'estimated' if estimated else 'given'})")


def denoise_as_own(
    model, pixels: np.ndarray, own_channels: int, sigma, **options
) -> tuple[np.ndarray, float | None, bool]:
    """(denoised image in its own channels, clipped to [0, 1]; the level given; whether it
    was estimated) for `pixels` in the model's channels, as `dae denoise` writes it."""
    level, estimated = noise_level_for(model, pixels, own_channels, sigma)
    result = denoise_image(model, pixels, level=level, **options)
    if own_channels == 1 and result.shape[-1] == 3:
        result = result.mean(axis=-1, keepdims=True)  # gray in, gray out
    # In place where it can be: a 24-megapixel colour image is 288 MB a copy.
    return np.clip(result, 0.0, 1.0, out=result if result.flags.writeable else None), level, estimated


def denoise_files(
    model,
    paths: list[Path],
    outputs: list[Path],
    *,
    overwrite: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overlap: int = DEFAULT_OVERLAP,
    sigma=None,
    tta: bool = False,
    log: OutcomeLog,
    warn=lambda message: None,
    detail=lambda message: None,
    options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """Denoises each image whole (or by windows beyond `max_pixels`), one image at a time.

    `sigma` is the noise level for a model that takes one (`auto`, the default, or a
    std on [0, 1]); the level each image was given is in its outcome and told to `detail`.
    Each output keeps its source's bit depth, alpha and metadata where its format holds
    them (`image_io.encode_image`, `options`).
    """
    for path, output in zip(paths, outputs):
        try:
            if output.exists() and not overwrite:
                raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
            pixels, meta = image_io.read_for_model(path, model.channels, warn)
        except DaeError as error:
            log.add(Outcome(str(path), error=str(error)))
            continue
        result, level, estimated = denoise_as_own(
            model, pixels, meta.channels, sigma, max_pixels=max_pixels, overlap=overlap, tta=tta
        )
        pixels = None  # the input's memory goes before the output is encoded
        _tell_level(detail, path, level, estimated)
        outcome = write_image(str(path), result, output, meta, overwrite, options)
        outcome.sigma, outcome.sigma_estimated = level, estimated
        log.add(outcome)


def encode_files(
    model, paths: list[Path], *, sigma=None, log: OutcomeLog, warn=lambda message: None, detail=lambda message: None
) -> list[tuple[str, np.ndarray, tuple[int, int], dict]]:
    """The latent feature map of each image, with the image's own (height, width) and
    what `decode` needs to write the same kind of file (`image_io.source_kind`)."""

    multiple = model.size_multiple
    encoded = []
    for path in paths:
        try:
            pixels, meta = image_io.read_for_model(path, model.channels, warn)
        except DaeError as error:
            log.add(Outcome(str(path), error=str(error)))
            continue
        level, estimated = noise_level_for(model, pixels, meta.channels, sigma)
        _tell_level(detail, path, level, estimated)
        padded = pad_to_multiple(pixels, multiple)[None].astype(np.float32)
        latent = np.asarray(model.encode(padded, None if level is None else np.array([level], np.float32)))[0]
        encoded.append((str(path), latent, pixels.shape[:2], image_io.source_kind(meta)))
        log.add(Outcome(str(path), sigma=level, sigma_estimated=estimated))
    return encoded


def decode_maps(
    model,
    maps: list,
    out_dir: Path,
    *,
    overwrite: bool = False,
    log: OutcomeLog,
    options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """One image per latent feature map, cropped to its recorded image size, of the kind
    its source was (format, gray or colour, bit depth) when `encode` recorded it."""

    named = [m for m in maps if m.source]
    paths = (
        output_paths([Path(m.source) for m in named], out_dir, "decoded", options.format, directory_only=True)
        if named
        else []
    )
    targets = dict(zip((m.source for m in named), paths))
    for number, item in enumerate(maps):
        extension = image_io.FORMAT_EXTENSIONS[options.format or "PNG"]
        target = targets.get(item.source) or out_dir / f"latent_{number:05d}{extension}"
        try:
            if item.array.ndim != 3 or item.array.shape[-1] != model.latent_dim:
                raise DaeError(
                    f"{item.label}: latent map has shape {item.array.shape}, the model takes (h, w, {model.latent_dim})"
                )
            if target.exists() and not overwrite:
                raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
        except DaeError as error:
            log.add(Outcome(item.label, error=str(error)))
            continue
        image = np.asarray(model.decode(item.array[None].astype(np.float32)))[0]
        if item.size is not None:
            image = image[: item.size[0], : item.size[1]]
        meta = image_io.meta_of_kind(item.kind)
        if meta is not None and meta.channels == 1 and image.shape[-1] == 3:
            image = image.mean(axis=-1, keepdims=True)  # gray in, gray out, as denoise gives it
        log.add(write_image(item.label, np.clip(image, 0.0, 1.0), target, meta, overwrite, options))


def check_latent_format(out: Path | None) -> None:
    """Feature maps go to `.npz` (or `.npy` for one image), never to text formats."""
    if out is None or out.suffix.lower() not in (".npz", ".npy"):
        where = "JSON lines on stdout" if out is None else f"{out.suffix or out.name}"
        raise UsageError(
            f"this model's latent is a feature map, which {where} cannot hold; "
            "write it with -o FILE.npz (or -o FILE.npy for one image)"
        )
