"""Fitting images of any size to a fixed-size model: exact, resized, or tiled.

The reference model has a Dense bottleneck, so it takes exactly one image size. An
image of another size is cut into overlapping windows of that size (padded by
reflection where it is smaller), every window goes through the model, and the
predictions are blended with a smooth raised-cosine weight that is highest at a
window's centre, so no seams show where windows meet.

Example:
    >>> plan = plan_tiles(pixels, (28, 28), overlap=14)      # doctest: +SKIP
    >>> outputs = model.denoise(plan.tiles)
    >>> restored = plan.assemble(outputs)                    # pixels.shape again
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dae_cli import image_io


@dataclasses.dataclass
class Plan:
    """The model-sized windows of one image and how to put their outputs back."""

    tiles: np.ndarray  # (k, h, w, c)
    assemble: Callable[[np.ndarray], np.ndarray]


def plan_exact(pixels: np.ndarray) -> Plan:
    return Plan(pixels[None], lambda outputs: outputs[0])


def plan_resize(pixels: np.ndarray, tile: tuple[int, int]) -> Plan:
    size = pixels.shape[:2]
    return Plan(image_io.resize(pixels, tile)[None], lambda outputs: image_io.resize(outputs[0], size))


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window offsets covering [0, length) with steps of at most `stride`."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_weights(tile: tuple[int, int]) -> np.ndarray:
    """A 2-D raised-cosine window, positive everywhere (edges included)."""

    def one_axis(n):
        return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2

    return np.outer(one_axis(tile[0]), one_axis(tile[1])).astype(np.float32)[..., None]


def plan_tiles(pixels: np.ndarray, tile: tuple[int, int], overlap: int | None = None) -> Plan:
    """Overlapping `tile`-sized windows over `pixels`; `overlap` defaults to half a tile."""
    height, width = pixels.shape[:2]
    if overlap is None:
        overlap = min(tile) // 2
    if not 0 <= overlap < min(tile):
        raise ValueError(f"overlap must be in [0, {min(tile)}), got {overlap}")
    padded = _pad_to(pixels, (max(height, tile[0]), max(width, tile[1])))
    ys = window_starts(padded.shape[0], tile[0], tile[0] - overlap)
    xs = window_starts(padded.shape[1], tile[1], tile[1] - overlap)
    corners = [(y, x) for y in ys for x in xs]
    tiles = np.stack([padded[y : y + tile[0], x : x + tile[1]] for y, x in corners])
    weights = blend_weights(tile)

    def assemble(outputs: np.ndarray) -> np.ndarray:
        total = np.zeros(padded.shape[:2] + (outputs.shape[-1],), np.float32)
        norm = np.zeros(padded.shape[:2] + (1,), np.float32)
        for (y, x), output in zip(corners, outputs):
            total[y : y + tile[0], x : x + tile[1]] += output * weights
            norm[y : y + tile[0], x : x + tile[1]] += weights
        return (total / norm)[:height, :width]

    return Plan(tiles, assemble)


def _pad_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    pad_y, pad_x = size[0] - pixels.shape[0], size[1] - pixels.shape[1]
    if not pad_y and not pad_x:
        return pixels
    # Reflection keeps the image's statistics; it needs the image to be larger than the pad.
    mode = "reflect" if pad_y < pixels.shape[0] and pad_x < pixels.shape[1] else "edge"
    return np.pad(pixels, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)
