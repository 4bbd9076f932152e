"""Gap filling of the network's input: nodata pixels take a smooth extension of the valid ones.

A window that crosses a scene footprint, a coastline of data or a masked field holds nodata. Fed
as zeros, nodata reads to the network as a perfectly black object next to the valid pixels: dark
halos along every edge, a haze estimate pulled toward "clear", and on small footprints (a field
polygon, a 120 px patch in a 512 px window) an image that is mostly edge. Instead, every nodata
pixel gets the push-pull extension of the valid ones (valid-weighted means over a 2x pyramid,
pulled back down with a light blur), so the network sees a plausible continuation. Valid pixels
are never changed, and the fill is a pure function of the window's own input, so windows on the
global grid stay partition invariant (docs/design.md, invariant 3). Training crops are filled the
same way (:mod:`basemap.model.training.sampler`).
"""

from __future__ import annotations

import numpy as np


def _halve(values: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 sums of weighted values and weights (odd sides padded with weight 0)."""
    c, h, w = values.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        values = np.pad(values, ((0, 0), (0, ph), (0, pw)))
        weight = np.pad(weight, ((0, ph), (0, pw)))
    h2, w2 = weight.shape[0] // 2, weight.shape[1] // 2
    return (values.reshape(c, h2, 2, w2, 2).sum(axis=(2, 4)),
            weight.reshape(h2, 2, w2, 2).sum(axis=(1, 3)))  # fmt: skip


def _blur(a: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur over the last two axes, edges replicated."""
    p = np.pad(a, ((0, 0), (1, 1), (0, 0)), mode="edge")
    a = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25
    p = np.pad(a, ((0, 0), (0, 0), (1, 1)), mode="edge")
    return (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) * 0.25


def fill_gaps(reflectance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(C, H, W) float32 with every pixel outside ``valid`` filled; all-nodata stays zeros."""
    reflectance = np.asarray(reflectance, dtype=np.float32)
    if valid.all() or not valid.any():
        return np.where(valid[None], reflectance, np.float32(0))
    weight = valid.astype(np.float32)
    sums = [(reflectance * weight, weight)]
    while min(sums[-1][1].shape) > 1 and (sums[-1][1] == 0).any():
        sums.append(_halve(*sums[-1]))
    values, weight = sums[-1]
    mean = (reflectance * valid).sum(axis=(1, 2)) / valid.sum()
    filled = np.where(weight > 0, values / np.maximum(weight, 1e-12), mean[:, None, None])
    for values, weight in reversed(sums[:-1]):
        h, w = weight.shape
        up = _blur(filled.repeat(2, axis=1).repeat(2, axis=2)[:, :h, :w])
        filled = np.where(weight > 0, values / np.maximum(weight, 1e-12), up)
    return np.where(valid[None], reflectance, filled).astype(np.float32)
