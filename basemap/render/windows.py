"""The global window grid and tapered blending (pure numpy).

Windows live on the global pixel grid, not on the block being computed: window (ky, kx) covers
global pixels ``[k*stride, k*stride + window)`` on each axis, with ``stride = window - overlap``.
Each window's output is weighted by a separable taper that ramps from ~0 at the window edge to 1
over ``overlap`` pixels; the ramps of two neighbouring windows are complementary, so the weights of
all windows covering a pixel sum to 1. A pixel's value therefore depends only on the windows that
cover it, never on how the work was split into regions (docs/design.md, invariants 2-4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from basemap import config
from basemap.errors import InputError
from basemap.grid import Region


class Window(NamedTuple):
    """A window of the global grid, named by its top-left global pixel."""

    x: int
    y: int


@dataclass(frozen=True)
class WindowGrid:
    """A window size and overlap; window k starts at global pixel ``k * stride`` on each axis."""

    window: int = config.WINDOW
    overlap: int = config.OVERLAP

    def __post_init__(self) -> None:
        if self.window <= 0 or self.overlap < 0:
            raise InputError(
                f"window ({self.window}) must be > 0 and overlap ({self.overlap}) >= 0"
            )
        if 2 * self.overlap > self.window:
            raise InputError(
                f"overlap {self.overlap} is more than half the window {self.window}: at most two "
                "windows may overlap per axis; use an overlap <= window/2"
            )

    @property
    def stride(self) -> int:
        """Distance between the starts of neighbouring windows."""
        return self.window - self.overlap

    def index_range(self, a0: int, a1: int) -> range:
        """Indices k of the windows on one axis whose span touches global pixels ``[a0, a1)``."""
        first = math.floor((a0 - self.window) / self.stride) + 1
        last = math.floor((a1 - 1) / self.stride)
        return range(first, last + 1)

    def windows(self, region: Region) -> Iterator[Window]:
        """Every window touching ``region``, in row-major order."""
        for ky in self.index_range(region.y0, region.y1):
            for kx in self.index_range(region.x0, region.x1):
                yield Window(kx * self.stride, ky * self.stride)

    def input_region(self, region: Region) -> Region:
        """The global pixels the windows touching ``region`` read."""
        kx, ky = self.index_range(region.x0, region.x1), self.index_range(region.y0, region.y1)
        s, w = self.stride, self.window
        return Region(kx[0] * s, ky[0] * s, kx[-1] * s + w, ky[-1] * s + w)

    def extent(self, window: Window) -> Region:
        """The global pixels ``window`` covers."""
        return Region(window.x, window.y, window.x + self.window, window.y + self.window)

    def taper(self) -> np.ndarray:
        """The 2-D blend weights of one window, float64 (window, window)."""
        return np.outer(self.ramp(), self.ramp())

    def ramp(self) -> np.ndarray:
        """1-D taper: sin^2 ramps over ``overlap`` px at both ends, 1 between.

        ``up[j] = sin^2(pi/2 * (j + 0.5) / overlap)``, so ``up[j] + up[overlap-1-j] == 1``: the
        rising ramp of one window and the falling ramp of its neighbour sum to one.
        """
        r = np.ones(self.window, dtype=np.float64)
        if self.overlap:
            j = np.arange(self.overlap, dtype=np.float64)
            up = np.sin(0.5 * np.pi * (j + 0.5) / self.overlap) ** 2
            r[: self.overlap] = up
            r[-self.overlap :] = up[::-1]
        return r


def blend(
    tiles: Iterable[tuple[Window, np.ndarray]],
    grid: WindowGrid,
    region: Region,
    channels: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Accumulate window outputs with taper weights over a region.

    Args:
        tiles: (window, out) with out float (channels, window, window), in the order given by
            ``grid.windows`` (a fixed order keeps the floating-point sums identical whatever the
            region).
        grid: the window grid.
        region: global pixels.
        channels: number of channels of each output.

    Returns:
        (acc, wsum): float64 (channels, h, w) weighted sum and (h, w) sum of weights of the windows
        that were given (windows that were skipped contribute nothing).
    """
    x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
    h, w = y1 - y0, x1 - x0
    acc = np.zeros((channels, h, w), dtype=np.float64)
    wsum = np.zeros((h, w), dtype=np.float64)
    taper = grid.taper()
    for (wx, wy), out in tiles:
        ax0, ay0 = max(wx, x0), max(wy, y0)
        ax1, ay1 = min(wx + grid.window, x1), min(wy + grid.window, y1)
        if ax0 >= ax1 or ay0 >= ay1:
            continue
        _accumulate(acc[:, ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0],
                    wsum[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0],
                    out[:, ay0 - wy : ay1 - wy, ax0 - wx : ax1 - wx],
                    taper[ay0 - wy : ay1 - wy, ax0 - wx : ax1 - wx])
    return acc, wsum


@njit(cache=True, nogil=True)
def _accumulate(acc: np.ndarray, wsum: np.ndarray, out: np.ndarray, taper: np.ndarray) -> None:
    """``acc += out * taper`` and ``wsum += taper`` in one pass (float64, the products and sums
    numpy's ``acc += out * taper`` computes, in the same order)."""
    for y in range(taper.shape[0]):
        for x in range(taper.shape[1]):
            t = taper[y, x]
            for c in range(acc.shape[0]):
                acc[c, y, x] += np.float64(out[c, y, x]) * t
            wsum[y, x] += t


@njit(cache=True, nogil=True)
def to_uint8(acc: np.ndarray, wsum: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The blend's uint8 (c, h, w): ``clip(rint(acc / wsum), 0, 255)`` where ``keep`` (and
    ``wsum > 0``), else 0; one pass instead of numpy's five."""
    out = np.zeros(acc.shape, np.uint8)
    for y in range(acc.shape[1]):
        for x in range(acc.shape[2]):
            w = wsum[y, x]
            if keep[y, x] and w > 0:
                for c in range(acc.shape[0]):
                    out[c, y, x] = np.uint8(min(max(np.rint(acc[c, y, x] / w), 0.0), 255.0))
    return out
