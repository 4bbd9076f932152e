"""Per-pixel compositing of the scenes covering a block, with no holes.

Each scene's pixel has data (``valid``), may be **accepted** (an accepted SCL class, farther than
the cloud buffer from cloud and shadow) and has a **quality**
(:mod:`basemap.mosaic.observation_quality`). Observations are added in the manifest's fixed order
(datetime, id), so the floating-point result never depends on the order the scenes were read in.
Methods (:data:`METHODS`, the ``--composite`` option), over the accepted observations of each pixel:

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
  ``exp(-((HOT - HOT_min) / HOT_TAU) ** 2)``, HOT = B02 - 0.5 B04
  (:mod:`basemap.mosaic.observation_quality`) and ``HOT_min`` the pixel's least hazy accepted view:
  haze too faint for the absolute score still loses to a clearer date (a missed shadow scales HOT
  down with the ground, so barely gains; both ranks: :mod:`basemap.mosaic.ranking`);
* ``quartile``: the per-band first quartile (Sentinel Hub's cloudless mosaic, CDSE quarterly
  mosaics): darker than the median, so cloud wisps and haze that the masks miss lose;
* ``median``: the per-band median; ``medoid``: the observation closest (L1, all bands) to all
  the others, a real pixel rather than a per-band mix (S2Mosaic); ``first``: the oldest.

**No holes**: where a pixel has data but no accepted observation, it is filled from its rejected
observations, weighted as ``best`` weighs accepted ones but by their fallback quality (a view
just inside the cloud buffer over one under the cloud, the less hazy over the hazier; see
:mod:`basemap.mosaic.observation_quality`) and their agreement, and marked filled. Sentinel Hub
fills with the first quartile of the rejected observations instead, which takes the darker of a
cloud and a missed shadow: the shadow. Only pixels no scene covers stay transparent.
:class:`Composite` records per pixel how many observations were accepted and whether it was filled.

**Memory flat in the number of dates**: ``mean`` and ``first`` stream; ``best``, the quantiles,
the medoid and the fill see, per pixel, the best :data:`~basemap.mosaic.candidates.MAX_CANDIDATES`
accepted (and rejected) observations by quality, kept as the scenes stream in
(:mod:`basemap.mosaic.candidates`), and rank them a band of rows at a time. Where a pixel has at
most that many of each, every observation is used and the result is the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from basemap.mosaic.candidates import Candidates
from basemap.mosaic.ranking import View, agreement, haze_rank

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
    count (H, W) uint16 accepted observations, filled (H, W) filled from rejected ones."""

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

    Subclasses implement :meth:`_add` (accepted observations) and :meth:`_combine`. The
    rejected observations are kept for the fill as :class:`Candidates` (DN, by fallback quality).
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.count = np.zeros(shape, np.uint16)  # never wraps: blocks read far fewer dates
        self.rejected = Candidates(shape, dn=True)

    def add(self, reflectance: np.ndarray, valid: np.ndarray, accepted: np.ndarray,
            quality: np.ndarray, at: tuple[slice, slice] | None = None) -> None:  # fmt: skip
        """Add one scene: reflectance (3, h, w) float32, its data, accepted and quality maps,
        over the pixels ``at`` (rows, cols) of the composite (default: all; the scene has no
        data elsewhere)."""
        at = at or (slice(None), slice(None))
        self.count[at] += accepted
        self._add(reflectance, accepted, quality, at)
        self.rejected.add(reflectance, valid & ~accepted, quality, at)

    def _add(self, reflectance: np.ndarray, accepted: np.ndarray, quality: np.ndarray,
             at: tuple[slice, slice]) -> None:  # fmt: skip
        raise NotImplementedError

    def _combine(self) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance, pixels that got a value) from the accepted observations."""
        raise NotImplementedError

    def result(self) -> Composite:
        """The composite, holes filled from the rejected observations."""
        out, got = self._combine()
        filled = (self.rejected.kept > 0) & ~got
        for i, band in enumerate(self.rejected.bands):  # on the pixels to fill only
            if filled[band].any():
                out[:, band][:, filled[band]] = self._fill(i, np.nonzero(filled[band]))
        valid = got | filled
        out[:, ~valid] = 0.0
        return Composite(out, valid, np.where(got, self.count, 0).astype(np.uint16), filled)

    def _fill(self, band: int, pixels: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(3, N): ``best`` of the rejected candidates of N pixels of a band by their fallback
        quality (+ FALLBACK_EPS) and agreement."""
        dn, quality, mask = self.rejected.take(band, (pixels[0][:, None], pixels[1][:, None]))
        views = _views(dn / np.float32(10000), quality + np.float32(FALLBACK_EPS), mask)
        return _best_of(views, mask.shape[1:], rank_haze=False)[0][..., 0]


class Stacked(Compositor):
    """A compositor of several accepted views of each pixel at once: keeps the best
    :data:`~basemap.mosaic.candidates.MAX_CANDIDATES` (:class:`Candidates`) and combines them a band
    at a time (:meth:`_combine_band`)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__(shape)
        self.candidates = Candidates(shape, dn=False)

    def _add(self, reflectance: np.ndarray, accepted: np.ndarray, quality: np.ndarray,
             at: tuple[slice, slice]) -> None:
        self.candidates.add(reflectance, accepted, quality, at)

    def _combine(self) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((3, *self.shape), np.float32)
        got = np.zeros(self.shape, bool)
        for i, band in enumerate(self.candidates.bands):
            if self.candidates.quality[i].shape[2]:  # else no view: nothing to combine
                out[:, band], got[band] = self._combine_band(*self.candidates.take(i))
        return out, got

    def _combine_band(self, reflectance: np.ndarray, quality: np.ndarray,
                      mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(reflectance (3, h, W), got (h, W)) of candidates (C, 3, h, W), (C, h, W) x 2."""
        raise NotImplementedError


class WeightedMean(Compositor):
    """Mean weighted by quality ** power over the accepted observations."""

    power = 1

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__(shape)
        self.acc = np.zeros((3, *shape), np.float64)
        self.wsum = np.zeros(shape, np.float64)

    def _add(self, reflectance: np.ndarray, accepted: np.ndarray, quality: np.ndarray,
             at: tuple[slice, slice]) -> None:
        w = np.where(accepted, quality, 0.0) ** self.power
        self.acc[(slice(None), *at)] += reflectance * w
        self.wsum[at] += w

    def _combine(self) -> tuple[np.ndarray, np.ndarray]:
        got = self.wsum > 0
        out = np.zeros((3, *self.shape), np.float32)
        np.divide(self.acc, self.wsum, out=out, where=got, casting="unsafe")
        return out, got


@njit(cache=True, nogil=True)
def _accumulate(reflectance: np.ndarray, mask: np.ndarray,  # pragma: no cover (compiled)
                power: np.ndarray, ranks: np.ndarray, acc: np.ndarray,
                wsum: np.ndarray) -> None:
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


def _best_of(views: list[View], shape: tuple[int, int],
             rank_haze: bool) -> tuple[np.ndarray, np.ndarray]:
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


def _views(reflectance: np.ndarray, quality: np.ndarray, mask: np.ndarray) -> list[View]:
    """The candidate slots (C, 3, h, w), (C, h, w) x 2 as :class:`View` values over (h, w):
    each pixel's candidates in manifest order, so ranked and summed as all its views were."""
    at = tuple(slice(0, n) for n in mask.shape[1:])
    return [View(reflectance[k], mask[k], quality[k], at) for k in range(len(mask))]


class Best(Stacked):
    """The best observation that agrees with the others wins; near-ties blend (no steps)."""

    def _combine_band(self, reflectance: np.ndarray, quality: np.ndarray,
                      mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _best_of(_views(reflectance, quality, mask), mask.shape[1:], rank_haze=True)


class First(Compositor):
    """The first accepted observation in manifest order."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__(shape)
        self.out = np.zeros((3, *shape), np.float32)
        self.got = np.zeros(shape, bool)

    def _add(self, reflectance: np.ndarray, accepted: np.ndarray, quality: np.ndarray,
             at: tuple[slice, slice]) -> None:
        got, out = self.got[at], self.out[(slice(None), *at)]  # views
        take = accepted & ~got
        out[:, take] = reflectance[:, take]
        got |= take

    def _combine(self) -> tuple[np.ndarray, np.ndarray]:
        return self.out, self.got


class Quantile(Stacked):
    """A per-band quantile of the accepted observations."""

    q = 0.5

    def _combine_band(self, reflectance: np.ndarray, quality: np.ndarray,
                      mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _quantile(reflectance, mask, self.q), mask.any(axis=0)


class FirstQuartile(Quantile):
    """The per-band first quartile."""

    q = 0.25


class Medoid(Stacked):
    """The accepted observation with the least summed L1 distance to the others."""

    def _combine_band(self, reflectance: np.ndarray, quality: np.ndarray,
                      mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cost = np.zeros(mask.shape, np.float32)
        for i in range(len(mask)):
            for j in range(len(mask)):
                if i != j:
                    cost[i] += np.abs(reflectance[i] - reflectance[j]).sum(axis=0) * mask[j]
        cost[~mask] = np.inf
        pick = np.argmin(cost, axis=0)  # ties: the first in manifest order
        out = np.take_along_axis(reflectance, pick[None, None], axis=0)[0]
        return out.astype(np.float32), mask.any(axis=0)


#: name -> compositor class; the CLI's ``--composite`` choices, the default first.
METHODS: dict[str, type[Compositor]] = {
    "best": Best, "mean": WeightedMean, "quartile": FirstQuartile, "median": Quantile,
    "medoid": Medoid, "first": First,
}  # fmt: skip
METHOD_NAMES = tuple(METHODS)


def compositor(method: str, shape: tuple[int, int]) -> Compositor:
    """A fresh compositor of `method` for a region of `shape`."""
    return METHODS[method](shape)
