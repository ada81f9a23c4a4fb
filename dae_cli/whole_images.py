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

Example:
    >>> plan = plan_whole(pixels, multiple=4, max_pixels=4_000_000, overlap=64)   # doctest: +SKIP
    >>> restored = plan.assemble(run_windows(model.denoise, plan.tiles, 4_000_000))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dae_cli import image_io
from dae_cli.errors import DaeError, UsageError
from dae_cli.files import OutputExistsError
from dae_cli.inference import Outcome, OutcomeLog, _write_png
from dae_cli.tiling import Plan, flat_top, window_starts

DEFAULT_MAX_PIXELS = 4_000_000  # about 2 GB of activations for the built-in photo model
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


def plan_whole(pixels: np.ndarray, multiple: int, max_pixels: int, overlap: int = DEFAULT_OVERLAP) -> Plan:
    """The whole image in one window when it fits `max_pixels`, else overlapping windows."""
    height, width = pixels.shape[:2]
    if height * width <= max_pixels:
        padded = pad_to_multiple(pixels, multiple)
        return Plan(padded[None], lambda outputs: outputs[0][:height, :width])
    side = max(multiple, int(np.sqrt(max_pixels)) // multiple * multiple)
    side = min(side, max(height, width) + -max(height, width) % multiple)
    overlap = min(overlap, side // 2)
    padded = pad_to_multiple(pixels, multiple)
    tile_y, tile_x = min(side, padded.shape[0]), min(side, padded.shape[1])
    ys = window_starts(padded.shape[0], tile_y, tile_y - overlap)
    xs = window_starts(padded.shape[1], tile_x, tile_x - overlap)
    corners = [(y, x) for y in ys for x in xs]  # all multiples of `multiple`, as the sizes are
    weight = np.outer(flat_top(tile_y, overlap), flat_top(tile_x, overlap))[..., None]
    tiles = np.stack([padded[y : y + tile_y, x : x + tile_x] for y, x in corners])

    def assemble(outputs: np.ndarray) -> np.ndarray:
        total = np.zeros(padded.shape[:2] + (outputs.shape[-1],), np.float32)
        norm = np.zeros(padded.shape[:2] + (1,), np.float32)
        for (y, x), output in zip(corners, outputs):
            total[y : y + tile_y, x : x + tile_x] += output * weight
            norm[y : y + tile_y, x : x + tile_x] += weight
        return (total / norm)[:height, :width]

    return Plan(tiles, assemble, corners)


def run_windows(function, tiles: np.ndarray, max_pixels: int) -> np.ndarray:
    """`function` over `tiles` (same-sized windows), as many per call as fit `max_pixels`."""
    per_call = max(1, max_pixels // (tiles.shape[1] * tiles.shape[2]))
    return np.concatenate([
        np.asarray(function(tiles[i : i + per_call].astype(np.float32))) for i in range(0, len(tiles), per_call)
    ])


def denoise_files(model, paths: list[Path], outputs: list[Path], *, overwrite: bool = False,
                  max_pixels: int = DEFAULT_MAX_PIXELS, overlap: int = DEFAULT_OVERLAP, log: OutcomeLog) -> None:
    """Denoises each image whole (or by windows beyond `max_pixels`), one image at a time."""
    channels, multiple = model.image_shape[-1], model.size_multiple
    for path, output in zip(paths, outputs):
        try:
            if output.exists() and not overwrite:
                raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
            pixels = image_io.load_image(path, channels)
        except DaeError as error:
            log.add(Outcome(str(path), error=str(error)))
            continue
        plan = plan_whole(pixels, multiple, max_pixels, overlap)
        result = plan.assemble(run_windows(model.denoise, plan.tiles, max_pixels))
        log.add(_write_png(str(path), np.clip(result, 0.0, 1.0), output, overwrite))


def encode_files(model, paths: list[Path], *, log: OutcomeLog) -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """The latent feature map of each image, with the image's own (height, width)."""
    channels, multiple = model.image_shape[-1], model.size_multiple
    encoded = []
    for path in paths:
        try:
            pixels = image_io.load_image(path, channels)
        except DaeError as error:
            log.add(Outcome(str(path), error=str(error)))
            continue
        latent = np.asarray(model.encode(pad_to_multiple(pixels, multiple)[None].astype(np.float32)))[0]
        encoded.append((str(path), latent, pixels.shape[:2]))
        log.add(Outcome(str(path)))
    return encoded


def decode_maps(model, maps: list, out_dir: Path, *, overwrite: bool = False, log: OutcomeLog) -> None:
    """One PNG per latent feature map, cropped to its recorded image size."""
    from dae_cli.inference import output_paths

    named = [m for m in maps if m.source]
    paths = output_paths([Path(m.source) for m in named], out_dir, ".decoded.png") if named else []
    targets = dict(zip((m.source for m in named), paths))
    for number, item in enumerate(maps):
        target = targets.get(item.source) or out_dir / f"latent_{number:05d}.png"
        try:
            if item.array.ndim != 3 or item.array.shape[-1] != model.latent_dim:
                raise DaeError(
                    f"{item.label}: latent map has shape {item.array.shape}, the model takes "
                    f"(h, w, {model.latent_dim})"
                )
            if target.exists() and not overwrite:
                raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
        except DaeError as error:
            log.add(Outcome(item.label, error=str(error)))
            continue
        image = np.asarray(model.decode(item.array[None].astype(np.float32)))[0]
        if item.size is not None:
            image = image[: item.size[0], : item.size[1]]
        log.add(_write_png(item.label, np.clip(image, 0.0, 1.0), target, overwrite))


def check_latent_format(out: Path | None) -> None:
    """Feature maps go to `.npz` (or `.npy` for one image), never to text formats."""
    if out is None or out.suffix.lower() not in (".npz", ".npy"):
        where = "JSON lines on stdout" if out is None else f"{out.suffix or out.name}"
        raise UsageError(
            f"this model's latent is a feature map, which {where} cannot hold; "
            "write it with -o FILE.npz (or -o FILE.npy for one image)"
        )
