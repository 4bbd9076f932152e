"""Per-pixel compositing of the scenes covering a block, with no holes.

Each scene's pixel has data (``valid``), may be **accepted** (an accepted SCL class, farther than
the cloud buffer from cloud and shadow) and has a **quality** (:mod:`basemap.quality`).
Observations are added in the manifest's fixed order (datetime, id), so the floating-point
result never depends on the order the scenes were read in. Methods (:data:`METHODS`, the
``--composite`` option), over the accepted observations of each pixel:

* ``mean``: the quality-weighted mean (quality ramps from 0 at footprint edges and cloud
  buffers, so the number of observations changing makes no step);
* ``best``: weights ``quality ** BEST_POWER``: the best observation wins, and where two are
  about as good they blend, so a change of winner makes no step (Earth Engine's
  ``qualityMosaic``, feathered);
* ``quartile``: the per-band first quartile (Sentinel Hub's cloudless mosaic, CDSE quarterly
  mosaics): darker than the median, so cloud wisps and haze that the masks miss lose;
* ``median``: the per-band median; ``medoid``: the observation closest (L1, all bands) to all
  the others, a real pixel rather than a per-band mix (S2Mosaic); ``first``: the oldest.

**No holes**: where a pixel has data but no accepted observation, it is filled with the per-band
first quartile of its rejected observations (Sentinel Hub's rule), and marked filled. Only pixels
no scene covers stay transparent. :class:`Composite` records per pixel how many observations
were used and whether it was filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Exponent of the quality weights of ``best``.
BEST_POWER = 8


@dataclass(frozen=True)
class Composite:
    """A block's composite: reflectance (3, H, W) float32 (0 where not valid), valid (H, W),
    count (H, W) uint8 accepted observations used, filled (H, W) filled from rejected ones."""

    reflectance: np.ndarray
    valid: np.ndarray
    count: np.ndarray
    filled: np.ndarray


def _quantile(stack: np.ndarray, mask: np.ndarray, q: float) -> np.ndarray:
    """Per-band q-quantile (linear interpolation) over the observations where `mask`.

    stack (N, 3, H, W) float32, mask (N, H, W); 0 where a pixel has no observation.
    """
    data = np.where(mask[:, None], stack, np.inf)
    data.sort(axis=0)
    n = mask.sum(axis=0)
    pos = np.maximum(n - 1, 0) * q
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = (pos - lo).astype(np.float32)
    a = np.take_along_axis(data, lo[None, None], axis=0)[0]
    b = np.take_along_axis(data, hi[None, None], axis=0)[0]
    with np.errstate(invalid="ignore"):  # inf - inf where a pixel has no observation
        out = a + (b - a) * frac
    out[:, n == 0] = 0.0
    return out.astype(np.float32)


class Compositor:
    """Adds observations in manifest order; :meth:`result` gives the :class:`Composite`.

    Subclasses implement :meth:`_add` (accepted observations) and :meth:`_combine`.
    """

    stacked = False

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.count = np.zeros(shape, np.uint8)
        self.layers: list[np.ndarray] = []  # accepted stack (stacked methods only)
        self.masks: list[np.ndarray] = []
        self.rejected: list[np.ndarray] = []  # reflectance * 10000 as uint16, for the fill
        self.rejected_masks: list[np.ndarray] = []

    def add(self, reflectance: np.ndarray, valid: np.ndarray, accepted: np.ndarray,
            quality: np.ndarray, at: tuple[slice, slice] | None = None) -> None:  # fmt: skip
        """Add one scene: reflectance (3, h, w) float32, its data, accepted and quality maps,
        over the pixels ``at`` (rows, cols) of the composite (default: all; the scene has no
        data elsewhere)."""
        at = at or (slice(None), slice(None))
        self.count[at] += accepted
        if self.stacked:
            self.layers.append(self._whole(reflectance.astype(np.float32, copy=False), at))
            self.masks.append(self._whole(accepted, at))
        else:
            self._add(reflectance, accepted, quality, at)
        rejected = valid & ~accepted
        if rejected.any():
            dn = np.clip(np.rint(reflectance * 10000), 0, 65535).astype(np.uint16)
            self.rejected.append(self._whole(dn, at))
            self.rejected_masks.append(self._whole(rejected, at))

    def _whole(self, array: np.ndarray, at: tuple[slice, slice]) -> np.ndarray:
        """``array`` (at ``at``) as an array over the whole composite, zero elsewhere."""
        if array.shape[-2:] == self.shape:
            return array
        out = np.zeros((*array.shape[:-2], *self.shape), array.dtype)
        out[(..., *at)] = array
        return out

    def _add(self, reflectance: np.ndarray, accepted: np.ndarray, quality: np.ndarray,
             at: tuple[slice, slice]) -> None:  # fmt: skip
        raise NotImplementedError

    def _combine(self) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance, pixels that got a value) from the accepted observations."""
        raise NotImplementedError

    def result(self) -> Composite:
        """The composite, holes filled from the rejected observations."""
        out, got = self._combine()
        filled = np.zeros(self.shape, bool)
        if self.rejected:
            masks = np.stack(self.rejected_masks) & ~got[None]
            filled = masks.any(axis=0)
            if filled.any():  # the quantile of the pixels to fill only (a pixel is on its own)
                stack = np.stack([r[:, filled] for r in self.rejected]).astype(np.float32) / 10000
                out[:, filled] = _quantile(stack[..., None], masks[:, filled, None], 0.25)[..., 0]
        valid = got | filled
        out[:, ~valid] = 0.0
        return Composite(out, valid, np.where(got, self.count, 0).astype(np.uint8), filled)


class WeightedMean(Compositor):
    """Mean weighted by quality ** power over the accepted observations."""

    power = 1

    def __init__(self, shape):
        super().__init__(shape)
        self.acc = np.zeros((3, *shape), np.float64)
        self.wsum = np.zeros(shape, np.float64)

    def _add(self, reflectance, accepted, quality, at):
        w = np.where(accepted, quality, 0.0) ** self.power
        self.acc[(slice(None), *at)] += reflectance * w
        self.wsum[at] += w

    def _combine(self):
        got = self.wsum > 0
        out = np.zeros((3, *self.shape), np.float32)
        np.divide(self.acc, self.wsum, out=out, where=got, casting="unsafe")
        return out, got


class Best(WeightedMean):
    """The best observation wins; near-ties blend (no steps where the winner changes)."""

    power = BEST_POWER


class First(Compositor):
    """The first accepted observation in manifest order."""

    def __init__(self, shape):
        super().__init__(shape)
        self.out = np.zeros((3, *shape), np.float32)
        self.got = np.zeros(shape, bool)

    def _add(self, reflectance, accepted, quality, at):
        got, out = self.got[at], self.out[(slice(None), *at)]  # views
        take = accepted & ~got
        out[:, take] = reflectance[:, take]
        got |= take

    def _combine(self):
        return self.out, self.got


class Quantile(Compositor):
    """A per-band quantile of the accepted observations."""

    stacked = True
    q = 0.5

    def _combine(self):
        if not self.layers:
            return np.zeros((3, *self.shape), np.float32), np.zeros(self.shape, bool)
        masks = np.stack(self.masks)
        return _quantile(np.stack(self.layers), masks, self.q), masks.any(axis=0)


class FirstQuartile(Quantile):
    """The per-band first quartile."""

    q = 0.25


class Medoid(Compositor):
    """The accepted observation with the least summed L1 distance to the others."""

    stacked = True

    def _combine(self):
        if not self.layers:
            return np.zeros((3, *self.shape), np.float32), np.zeros(self.shape, bool)
        stack, masks = np.stack(self.layers), np.stack(self.masks)
        cost = np.zeros(masks.shape, np.float32)
        for i in range(len(stack)):
            for j in range(len(stack)):
                if i != j:
                    cost[i] += np.abs(stack[i] - stack[j]).sum(axis=0) * masks[j]
        cost[~masks] = np.inf
        pick = np.argmin(cost, axis=0)  # ties: the first in manifest order
        out = np.take_along_axis(stack, pick[None, None], axis=0)[0]
        return out.astype(np.float32), masks.any(axis=0)


#: name -> compositor class; the CLI's ``--composite`` choices, the default first.
METHODS: dict[str, type[Compositor]] = {
    "mean": WeightedMean, "best": Best, "quartile": FirstQuartile, "median": Quantile,
    "medoid": Medoid, "first": First,
}  # fmt: skip
METHOD_NAMES = tuple(METHODS)


def compositor(method: str, shape: tuple[int, int]) -> Compositor:
    """A fresh compositor of `method` for a region of `shape`."""
    return METHODS[method](shape)
