"""Per-pixel compositing of the scenes covering a block, with no holes.

Each scene's pixel has data (``valid``), may be **accepted** (an accepted SCL class, farther than
the cloud buffer from cloud and shadow) and has a **quality** (:mod:`basemap.quality`).
Observations are added in the manifest's fixed order (datetime, id), so the floating-point
result never depends on the order the scenes were read in. Methods (:data:`METHODS`, the
``--composite`` option), over the accepted observations of each pixel:

* ``mean``: the quality-weighted mean (quality ramps from 0 at footprint edges and cloud
  buffers, so the number of observations changing makes no step);
* ``best``: weights ``quality ** BEST_POWER`` times the observation's **agreement** with the
  others: the best observation wins, and where two are about as good they blend, so a change of
  winner makes no step (Earth Engine's ``qualityMosaic``, feathered). Agreement catches what the
  masks and scores miss (faint shadows, thin cloud, haze): an observation's disagreement ``D`` is
  its smallest mean absolute log-ratio (over bands) to any other accepted observation of the
  pixel, and its agreement ``exp(-((D - D_min) / AGREEMENT_TAU) ** 2)``, ``D_min`` the pixel's
  smallest. Where two or more dates agree, the odd one out loses; with two dates or all
  disagreeing alike, quality alone decides. A third factor ranks haze *between* dates:
  ``exp(-((HOT - HOT_min) / HOT_TAU) ** 2)``, HOT = B02 - 0.5 B04 (:mod:`basemap.quality`) and
  ``HOT_min`` the pixel's least hazy accepted view: haze too faint for the absolute score still
  loses to a clearer date (a missed shadow scales HOT down with the ground, so barely gains;
  both ranks: :mod:`basemap.ranking`);
* ``quartile``: the per-band first quartile (Sentinel Hub's cloudless mosaic, CDSE quarterly
  mosaics): darker than the median, so cloud wisps and haze that the masks miss lose;
* ``median``: the per-band median; ``medoid``: the observation closest (L1, all bands) to all
  the others, a real pixel rather than a per-band mix (S2Mosaic); ``first``: the oldest.

**No holes**: where a pixel has data but no accepted observation, it is filled from its rejected
observations, weighted as ``best`` weighs accepted ones but by their fallback quality (a view
just inside the cloud buffer over one under the cloud, the less hazy over the hazier; see
:mod:`basemap.quality`) and their agreement, and marked filled. Sentinel Hub fills with the
first quartile of the rejected observations instead, which takes the darker of a cloud and a
missed shadow: the shadow. Only pixels no scene covers stay transparent. :class:`Composite`
records per pixel how many observations were used and whether it was filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from basemap.grid import paste
from basemap.ranking import View, agreement, haze_rank

#: Exponent of the quality weights of ``best``.
BEST_POWER = 8
#: The least agreement and haze rank a view keeps (so two tiny factors never make a hole).
RANK_FLOOR = 1e-6
#: Added to the fallback quality of the fill, so a rejected view at a footprint edge (quality 0)
#: still fills its pixel.
FALLBACK_EPS = 1e-3


@dataclass(frozen=True)
class Composite:
    """A block's composite: reflectance (3, H, W) float32 (0 where not valid), valid (H, W),
    count (H, W) uint16 accepted observations used, filled (H, W) filled from rejected ones."""

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


@njit(cache=True, nogil=True)
def _keep_rejected(reflectance, rejected, quality, dn, kept):  # pragma: no cover (compiled)
    """A scene's pixels for :class:`Rejected`, in place: DN ``rint(reflectance * 10000)``
    clipped to uint16, and the quality where rejected (0 elsewhere)."""
    scale, top = np.float32(10000), np.float32(65535)
    for y in range(rejected.shape[0]):
        for x in range(rejected.shape[1]):
            for b in range(reflectance.shape[0]):
                v = np.rint(reflectance[b, y, x] * scale)
                dn[b, y, x] = np.uint16(min(max(v, np.float32(0)), top))
            kept[y, x] = quality[y, x] if rejected[y, x] else np.float32(0)


class Rejected(NamedTuple):
    """A scene's rejected pixels on its own part of the composite, kept for the fill: DN
    (reflectance * 10000, uint16) (3, h, w), where rejected and its quality (h, w), the
    (rows, cols) slices of the composite it covers."""

    dn: np.ndarray
    mask: np.ndarray
    quality: np.ndarray
    at: tuple[slice, slice]

    def at_pixels(self, rows: np.ndarray, cols: np.ndarray) -> View:
        """A :class:`View` of K composite pixels (K, 1) (none where the part does not reach),
        with the fallback quality (+ FALLBACK_EPS)."""
        rs, cs = self.at
        inside = (rows >= rs.start) & (rows < rs.stop) & (cols >= cs.start) & (cols < cs.stop)
        r, c = rows[inside] - rs.start, cols[inside] - cs.start
        dn = np.zeros((3, len(rows)), np.uint16)
        dn[:, inside] = self.dn[:, r, c]
        mask = np.zeros(len(rows), bool)
        mask[inside] = self.mask[r, c]
        quality = np.zeros(len(rows), np.float32)
        quality[inside] = self.quality[r, c]
        return View((dn / np.float32(10000))[..., None], mask[:, None],
                    quality[:, None] + np.float32(FALLBACK_EPS),
                    (slice(0, len(rows)), slice(0, 1)))


class Compositor:
    """Adds observations in manifest order; :meth:`result` gives the :class:`Composite`.

    Subclasses implement :meth:`_add` (accepted observations) and :meth:`_combine`.
    """

    stacked = False

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.count = np.zeros(shape, np.uint16)  # never wraps: blocks read far fewer dates
        self.layers: list[np.ndarray] = []  # accepted stack (stacked methods only)
        self.masks: list[np.ndarray] = []
        self.rejected: list[Rejected] = []  # for the fill, each on its own part

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
            dn = np.empty(reflectance.shape, np.uint16)
            kept = np.empty(rejected.shape, np.float32)
            _keep_rejected(np.ascontiguousarray(reflectance, np.float32), rejected,
                           np.ascontiguousarray(quality, np.float32), dn, kept)
            self.rejected.append(Rejected(dn, rejected, kept, _bounded(at, self.shape)))

    def _whole(self, array: np.ndarray, at: tuple[slice, slice]) -> np.ndarray:
        """``array`` (at ``at``) as an array over the whole composite, zero elsewhere."""
        return array if array.shape[-2:] == self.shape else paste(array, at, self.shape)

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
        for r in self.rejected:
            filled[r.at] |= r.mask
        filled &= ~got
        if filled.any():  # computed on the pixels to fill only (a pixel is on its own)
            rows, cols = np.nonzero(filled)
            views = [r.at_pixels(rows, cols) for r in self.rejected]
            fill, _ = _best_of(views, (len(rows), 1), rank_haze=False)
            out[:, filled] = fill[..., 0]
        valid = got | filled
        out[:, ~valid] = 0.0
        return Composite(out, valid, np.where(got, self.count, 0).astype(np.uint16), filled)


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


@njit(cache=True, nogil=True)
def _accumulate(reflectance, mask, power, ranks, acc, wsum):  # pragma: no cover (compiled)
    """Add one view to ``best``'s sums (in place): weight ``power`` (``quality ** BEST_POWER``)
    times each rank (floored at RANK_FLOOR) where accepted, in float64."""
    floor = np.float32(RANK_FLOOR)
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            if not mask[y, x]:
                continue
            w = power[y, x]
            for r in range(ranks.shape[0]):
                w *= np.float64(max(ranks[r, y, x], floor))
            for b in range(reflectance.shape[0]):
                acc[b, y, x] += np.float64(reflectance[b, y, x]) * w
            wsum[y, x] += w


def _best_of(views: list[View], shape: tuple[int, int], rank_haze: bool):
    """(reflectance (3, H, W), got): mean weighted by quality ** BEST_POWER, agreement (and
    haze rank), each view accumulated on its own part, in order.

    Both ranks are floored at RANK_FLOOR and the weights are float64 (quality ** 8 of a view at
    a footprint edge near a cloud is ~1e-36), so every pixel with a view gets a value."""
    ranks = [agreement(views, shape)]
    if rank_haze:  # not in the fill: among rejected views the least hazy is a flagged shadow
        ranks.append(haze_rank(views, shape))
    acc = np.zeros((3, *shape), np.float64)
    wsum = np.zeros(shape, np.float64)
    for k, v in enumerate(views):
        power = np.power(v.quality, BEST_POWER, dtype=np.float64)  # numpy's; read if accepted
        _accumulate(v.reflectance, v.mask, power, np.stack([rank[k] for rank in ranks]),
                    acc[(slice(None), *v.at)], wsum[v.at])
    got = wsum > 0
    out = np.zeros((3, *shape), np.float32)
    np.divide(acc, wsum, out=out, where=got, casting="unsafe")
    return out, got


class Best(Compositor):
    """The best observation that agrees with the others wins; near-ties blend (no steps).
    Each view is kept on its own part of the composite, not pasted into the whole."""

    def __init__(self, shape):
        super().__init__(shape)
        self.views: list[View] = []

    def _add(self, reflectance, accepted, quality, at):
        self.views.append(View(reflectance.astype(np.float32, copy=False), accepted, quality,
                               _bounded(at, self.shape)))  # fmt: skip

    def _combine(self):
        return _best_of(self.views, self.shape, rank_haze=True)


def _bounded(at: tuple[slice, slice], shape: tuple[int, int]) -> tuple[slice, slice]:
    """``at`` with integer starts and stops (``slice(None)`` -> the whole axis)."""
    return tuple(slice(*a.indices(n)[:2]) for a, n in zip(at, shape, strict=True))


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
    "best": Best, "mean": WeightedMean, "quartile": FirstQuartile, "median": Quantile,
    "medoid": Medoid, "first": First,
}  # fmt: skip
METHOD_NAMES = tuple(METHODS)


def compositor(method: str, shape: tuple[int, int]) -> Compositor:
    """A fresh compositor of `method` for a region of `shape`."""
    return METHODS[method](shape)
