"""How one image goes through a model: its windows, and how their outputs come back together.

A `Plan` holds the windows of one image, all of one shape, and puts the model's
outputs back into one image as they arrive (`put`), so memory is the image, its sum
and the windows in flight, whatever the number of windows. Every size policy is a plan:

- `Tiling.exact`: the image is the window (a dense model's own size);
- `Tiling.padded`: padded by reflection at the bottom and right to a multiple of the
  model's `size_multiple`, cropped back (a conv model's whole image);
- `Tiling.tiled`: overlapping windows of a fixed size, blended with one of two weightings;
- `Resized`: resized to the model's size and back (`--resize`);
- `Turned`: the 8 flips and rotations of the image, each planned, averaged back (`--tta`);
- `Collected`: windows whose outputs are kept as they are (latents);
- `Unchanged`: no window at all, the image as it is (`--strength 0`).

The two weightings:

- `LATTICE` (dense models). *Anchor* windows sit on the tile lattice (offsets that are
  multiples of the tile size, and the last window flush with the far edge) and are
  weighted flat, tapering only over their outer few pixels; the windows in between get a
  raised cosine scaled by `BETWEEN_WEIGHT`, so they mostly smooth the anchors' seams.
  Why: a model with a Dense bottleneck only knows objects where its training put them,
  so a window that cuts an object in half predicts it badly. When an image is a grid of
  model-sized cells (a page of digits) the anchors see whole cells, and the result is
  within 0.1 to 0.2 dB of denoising the cells one by one; with equal weights it was 0.6
  to 1.8 dB worse (measured on MNIST pages).
- `CROSS_FADE` (conv models): every window flat, falling linearly over the overlap, so
  neighbours cross-fade; a conv model is as good anywhere in a window.

Example:
    >>> plan = Tiling.tiled(pixels, (28, 28), overlap=14, weighting=LATTICE)   # doctest: +SKIP
    >>> for index in range(plan.count):
    ...     plan.put(index, model(plan.window(index)[None])[0])
    >>> restored = plan.result()                                               # pixels.shape again
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dae_cli.io import image_io

BETWEEN_WEIGHT = 0.2  # LATTICE, per axis, for windows off the tile lattice


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window offsets covering [0, length) with steps of at most `stride`."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def raised_cosine(n: int) -> np.ndarray:
    """Highest at the centre, small but positive at the edges."""
    return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2


def flat_top(n: int, taper: int) -> np.ndarray:
    """1 in the middle, falling linearly over the outer `taper` pixels, positive everywhere."""
    distance_to_edge = np.minimum(np.arange(n) + 1, n - np.arange(n))
    return np.minimum(1.0, distance_to_edge / max(1, taper))


@dataclasses.dataclass(frozen=True)
class Weighting:
    """How overlapping windows are blended: a 1-D profile per window start along one
    axis, and the precision of the sum."""

    profiles: Callable[[list[int], int, int], list[np.ndarray]]
    dtype: type


def _lattice_profiles(starts: list[int], tile: int, overlap: int) -> list[np.ndarray]:
    anchor, between = flat_top(tile, max(1, overlap // 4)), BETWEEN_WEIGHT * raised_cosine(tile)
    return [anchor if start % tile == 0 or start == starts[-1] else between for start in starts]


def _cross_fade_profiles(starts: list[int], tile: int, overlap: int) -> list[np.ndarray]:
    return [flat_top(tile, overlap)] * len(starts)


LATTICE = Weighting(_lattice_profiles, np.float64)
CROSS_FADE = Weighting(_cross_fade_profiles, np.float32)


def pad_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pads (h, w, c) at the bottom and right to `size`: by reflection, which keeps the
    image's statistics, or by repeating the edge where the image is smaller than the pad."""
    pad_y, pad_x = size[0] - pixels.shape[0], size[1] - pixels.shape[1]
    if not pad_y and not pad_x:
        return pixels
    mode = "reflect" if pad_y < pixels.shape[0] and pad_x < pixels.shape[1] else "edge"
    return np.pad(pixels, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)


def pad_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    """Pads (h, w, c) at the bottom and right to multiples of `multiple`."""
    height, width = pixels.shape[:2]
    return pad_to(pixels, (height + -height % multiple, width + -width % multiple))


class Plan:
    """The windows of one image, all of `shape`, and the image their outputs make.

    `level` is the noise level every window is given, for models that take one.
    """

    count: int
    shape: tuple[int, ...]
    level: float | None = None

    def window_shape(self, index: int) -> tuple[int, ...]:
        return self.shape

    def window(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def put(self, index: int, output: np.ndarray) -> None:
        raise NotImplementedError

    def result(self) -> np.ndarray:
        raise NotImplementedError

    def windows(self) -> np.ndarray:
        """All windows at once, (count, h, w, c): for plans of one window shape."""
        return np.stack([self.window(index) for index in range(self.count)])

    def apply(self, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The image after `function` (batch -> outputs) ran on every window, one call a window."""
        for index in range(self.count):
            self.put(index, np.asarray(function(self.window(index)[None].astype(np.float32)))[0])
        return self.result()


class Tiling(Plan):
    """Windows of `tile` at `corners` of the padded image, blended by `weighting`; a
    single window needs no blending, and its output is the image."""

    def __init__(self, pixels: np.ndarray, padded: np.ndarray, tile, corners, weighting: Weighting, overlap: int):
        self.size, self.padded, self.tile, self.corners = pixels.shape[:2], padded, tuple(tile), corners
        self.count, self.shape = len(corners), (*self.tile, padded.shape[-1])
        self.weighting, self.overlap = weighting, overlap
        self.total = self.norm = None

    @classmethod
    def exact(cls, pixels: np.ndarray) -> Tiling:
        return cls(pixels, pixels, pixels.shape[:2], [(0, 0)], CROSS_FADE, 0)

    @classmethod
    def padded(cls, pixels: np.ndarray, multiple: int) -> Tiling:
        padded = pad_to_multiple(pixels, multiple)
        return cls(pixels, padded, padded.shape[:2], [(0, 0)], CROSS_FADE, 0)

    @classmethod
    def tiled(
        cls, pixels: np.ndarray, tile: tuple[int, int], overlap: int, weighting: Weighting, multiple: int = 1
    ) -> Tiling:
        """Overlapping `tile`-sized windows that share `overlap` pixels at least, over
        `pixels` padded to at least one tile and to a multiple of `multiple`."""
        height, width = pixels.shape[:2]
        padded = pad_to(pixels, (max(height + -height % multiple, tile[0]), max(width + -width % multiple, tile[1])))
        ys = window_starts(padded.shape[0], tile[0], tile[0] - overlap)
        xs = window_starts(padded.shape[1], tile[1], tile[1] - overlap)
        return cls(pixels, padded, tile, [(y, x) for y in ys for x in xs], weighting, overlap)

    def window(self, index: int) -> np.ndarray:
        y, x = self.corners[index]
        return self.padded[y : y + self.tile[0], x : x + self.tile[1]]

    def put(self, index: int, output: np.ndarray) -> None:
        if self.count == 1:
            self.total = output
            return
        if self.total is None:
            self.total = np.zeros(self.padded.shape[:2] + (output.shape[-1],), self.weighting.dtype)
            self.norm = np.zeros(self.padded.shape[:2] + (1,), self.weighting.dtype)
            ys = sorted({y for y, _ in self.corners})
            xs = sorted({x for _, x in self.corners})
            self.profile_y = dict(zip(ys, self.weighting.profiles(ys, self.tile[0], self.overlap)))
            self.profile_x = dict(zip(xs, self.weighting.profiles(xs, self.tile[1], self.overlap)))
        y, x = self.corners[index]
        weight = np.outer(self.profile_y[y], self.profile_x[x])[..., None].astype(self.weighting.dtype)
        self.total[y : y + self.tile[0], x : x + self.tile[1]] += output * weight
        self.norm[y : y + self.tile[0], x : x + self.tile[1]] += weight

    def result(self) -> np.ndarray:
        height, width = self.size
        if self.count == 1:
            return self.total[:height, :width]
        self.total /= self.norm  # in place: a 24-megapixel colour sum is 288 MB a copy
        return self.total[:height, :width].astype(np.float32, copy=False)


class Resized(Plan):
    """The image resized to the model's `size`, and its output resized back."""

    def __init__(self, pixels: np.ndarray, size: tuple[int, int]):
        self.size, self.resized = pixels.shape[:2], image_io.resize(pixels, size)
        self.count, self.shape = 1, self.resized.shape

    def window(self, index: int) -> np.ndarray:
        return self.resized

    def put(self, index: int, output: np.ndarray) -> None:
        self.output = output

    def result(self) -> np.ndarray:
        return image_io.resize(self.output, self.size)


def _dihedral(k: int, flip: bool):
    def forward(x):
        return np.ascontiguousarray(np.rot90(x[:, ::-1] if flip else x, k))

    def inverse(y):
        y = np.rot90(y, -k)
        return y[:, ::-1] if flip else y

    return forward, inverse


# The 8 flips and rotations of a square (the dihedral group), each with its inverse.
DIHEDRAL = [_dihedral(k, flip) for flip in (False, True) for k in range(4)]


class Turned(Plan):
    """`--tta`: the image in each of the 8 flips and rotations, each planned by
    `plan_one`, and the mean of their results turned back.

    Its windows are the turned plans' windows one after another; a rotation swaps
    height and width, so they are of two shapes (`shape` is the first's; the batches
    of the pipeline follow each window's own shape, `window_shape`).
    """

    def __init__(self, pixels: np.ndarray, plan_one: Callable[[np.ndarray], Plan]):
        self.parts = [(inverse, plan_one(forward(pixels))) for forward, inverse in DIHEDRAL]
        self.starts = np.cumsum([0] + [part.count for _, part in self.parts])
        self.count, self.shape = int(self.starts[-1]), self.parts[0][1].shape

    def _locate(self, index: int) -> tuple[Plan, int]:
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part][1], index - int(self.starts[part])

    def window_shape(self, index: int) -> tuple[int, ...]:
        plan, _ = self._locate(index)
        return plan.shape

    def window(self, index: int) -> np.ndarray:
        plan, local = self._locate(index)
        return plan.window(local)

    def put(self, index: int, output: np.ndarray) -> None:
        plan, local = self._locate(index)
        plan.put(local, output)

    def result(self) -> np.ndarray:
        total = None
        for inverse, plan in self.parts:
            turned_back = inverse(plan.result())
            total = turned_back.astype(np.float32) if total is None else total + turned_back
        return total / len(self.parts)


class Unchanged(Plan):
    """No window: the image is its own result (`--strength 0`: nothing is taken away)."""

    count = 0

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels
        self.shape = pixels.shape

    def result(self) -> np.ndarray:
        return self.pixels


class Collected(Plan):
    """Windows whose outputs are kept one by one (latents), in window order."""

    def __init__(self, windows: list[np.ndarray]):
        self.windows, self.count, self.shape = windows, len(windows), windows[0].shape
        self.outputs: list = [None] * len(windows)

    def window(self, index: int) -> np.ndarray:
        return self.windows[index]

    def put(self, index: int, output: np.ndarray) -> None:
        self.outputs[index] = output

    def result(self) -> list:
        return self.outputs
