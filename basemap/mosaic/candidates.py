"""The best few observations of each pixel, kept as the scenes stream in.

A compositor that needs several observations of a pixel at once (``best``'s agreement and haze
rank, the quantiles, the medoid, the no-holes fill of :mod:`basemap.mosaic.composite`) keeps per
pixel at most :data:`MAX_CANDIDATES`: the best by quality seen so far, in the order they came
(manifest order). Of equal quality (clear interiors score exactly 1) the later in manifest
order, the more recent, stays: up-to-date ground, and a choice blind to the pixel's values (a
choice by HOT would favour missed shadows, which are darker). So a block's memory does not grow
with the number of dates covering it, and where a pixel has at most :data:`MAX_CANDIDATES`
observations every one is kept, in order: its composite is the one of all its observations, to
the bit.

The region is cut into bands of rows of about :data:`BAND_PX` pixels, each holding its pixels'
slots side by side (a pixel's candidates in one or two cache lines) and growing its slots on its
own, a band at a time, as its pixels need them: a region that three dates cover holds three.
Compositors rank a band at a time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Observations kept per pixel: the default selection reads the 8 clearest scenes per MGRS tile
#: (:data:`basemap.stac.select.DEFAULT_MAX_ITEMS`), so a pixel of one tile keeps all its views;
#: 12 would keep every view of the demo's worst corner (its bytes as the stack gave them) but
#: holds 1.67x the 8-date peak at 64 dates, over the 1.3x goal (BENCHMARKS.md §4).
MAX_CANDIDATES = 8
#: Pixels per band (a few MB of slots: what a band's growth copies, and what is ranked at once).
BAND_PX = 1 << 16


class Candidates:
    """Per pixel of a region (H, W), the best :data:`MAX_CANDIDATES` observations offered: per
    band, values (h, W, C, 3) (float32 reflectance, or with ``dn`` uint16 DN ``rint(reflectance
    * 10000)``, half the memory) and quality (h, W, C) float32; ``kept`` (H, W): how many slots
    each pixel fills."""

    def __init__(self, shape: tuple[int, int], dn: bool) -> None:
        self.rows = max(1, BAND_PX // max(1, shape[1]))
        self.bands = [slice(y, min(y + self.rows, shape[0])) for y in range(0, shape[0], self.rows)]
        dtype = np.uint16 if dn else np.float32
        self.values = [np.zeros((b.stop - b.start, shape[1], 0, 3), dtype) for b in self.bands]
        self.quality = [np.zeros((b.stop - b.start, shape[1], 0), np.float32) for b in self.bands]
        self.kept = np.zeros(shape, np.uint8)
        self.shape, self.dn = shape, dn

    def add(self, reflectance: np.ndarray, offered: np.ndarray, quality: np.ndarray,
            at: tuple[slice, slice]) -> None:  # fmt: skip
        """Offer one scene's pixels where ``offered``: reflectance (3, h, w), offered and
        quality (h, w), over the pixels ``at`` (rows, cols) of the region."""
        (y0, y1), (x0, x1) = (a.indices(n)[:2] for a, n in zip(at, self.shape, strict=True))
        reflectance = np.ascontiguousarray(reflectance, np.float32)
        quality = np.ascontiguousarray(quality, np.float32)
        for i in range(y0 // self.rows, -(-y1 // self.rows)):
            band = self.bands[i]
            top, bottom = max(y0, band.start), min(y1, band.stop)
            part = slice(top - y0, bottom - y0)  # the band's rows in the scene's part
            here = np.ascontiguousarray(offered[part], bool)
            if not here.any():
                continue
            kept = self.kept[top:bottom, x0:x1]
            need = min(int(np.max(kept, where=here, initial=0)) + 1, MAX_CANDIDATES)
            if need > self.quality[i].shape[2]:
                self._grow(i, need)
            rows = slice(top - band.start, bottom - band.start)
            _offer(reflectance[:, part], here, quality[part], self.dn,
                   self.values[i][rows, x0:x1], self.quality[i][rows, x0:x1], kept)

    def _grow(self, i: int, slots: int) -> None:
        """Band ``i`` with ``slots`` slots (a copy: one band's worth at a time)."""
        for arrays in (self.values, self.quality):
            old = arrays[i]
            arrays[i] = np.zeros((*old.shape[:2], slots, *old.shape[3:]), old.dtype)
            arrays[i][:, :, : old.shape[2]] = old

    def take(self, i: int, pixels: tuple | None = None) -> tuple[np.ndarray, ...]:
        """(values (C, 3, ...), quality (C, ...), mask (C, ...)) of band ``i``, or of its
        ``pixels`` (an index of the band's (h, W)), contiguous copies; ``mask``: where a slot
        holds a candidate."""
        pixels = (slice(None), slice(None)) if pixels is None else pixels
        kept = self.kept[self.bands[i]][pixels]
        values, quality = self.values[i][pixels], self.quality[i][pixels]
        mask = kept[..., None] > np.arange(quality.shape[-1])
        last = values.ndim - 2
        return tuple(np.ascontiguousarray(a) for a in (
            np.moveaxis(values, (last, last + 1), (0, 1)), np.moveaxis(quality, -1, 0),
            np.moveaxis(mask, -1, 0)))  # fmt: skip


@njit(cache=True, nogil=True)
def _offer(reflectance: np.ndarray, offered: np.ndarray, quality: np.ndarray,  # pragma: no cover
           dn: bool, values: np.ndarray, scores: np.ndarray, kept: np.ndarray) -> None:
    """Each offered pixel into its slots, in place: appended while one is free, else the worst
    of the held ones and the new one (:func:`_worst`) is dropped and the later ones move up, so
    the slots stay in arrival order. Values are stored as they are, or (``dn``) as DN
    ``rint(r * 10000)`` clipped to uint16. The caller has grown the slots to what is needed."""
    full = scores.shape[2]
    scale, top, zero = np.float32(10000), np.float32(65535), np.float32(0)
    for y in range(offered.shape[0]):
        for x in range(offered.shape[1]):
            if not offered[y, x]:
                continue
            slot = kept[y, x]
            if slot < full:
                kept[y, x] = slot + 1
            else:
                drop = _worst(quality[y, x], scores[y, x])
                if drop == full:
                    continue
                for k in range(drop, full - 1):
                    scores[y, x, k] = scores[y, x, k + 1]
                    for b in range(3):
                        values[y, x, k, b] = values[y, x, k + 1, b]
                slot = full - 1
            scores[y, x, slot] = quality[y, x]
            for b in range(3):
                if dn:
                    v = np.rint(reflectance[b, y, x] * scale)
                    values[y, x, slot, b] = np.uint16(min(max(v, zero), top))
                else:
                    values[y, x, slot, b] = reflectance[b, y, x]


@njit(cache=True, nogil=True)
def _worst(quality: float, scores: np.ndarray) -> int:  # pragma: no cover (compiled)
    """The slot to drop (``len(scores)`` for the new view of ``quality``): the lowest quality,
    of equals the earliest."""
    worst, worst_q = 0, scores[0]
    for k in range(1, len(scores)):
        if scores[k] < worst_q:
            worst, worst_q = k, scores[k]
    return len(scores) if quality < worst_q else worst
