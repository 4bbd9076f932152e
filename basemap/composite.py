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
  loses to a clearer date (a missed shadow scales HOT down with the ground, so barely gains);
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

import numpy as np

from basemap.grid import paste
from basemap.quality import hot

#: Exponent of the quality weights of ``best``.
BEST_POWER = 8
#: Log-ratio disagreement (about 10 % in brightness) at which ``best``'s agreement is 1/e.
AGREEMENT_TAU = 0.1
#: HOT excess over the pixel's least hazy view at which ``best``'s haze ranking is 1/e.
HOT_TAU = 0.02
#: The least agreement and haze rank a view keeps (so two tiny factors never make a hole).
RANK_FLOOR = 1e-6
#: Added to the fallback quality of the fill, so a rejected view at a footprint edge (quality 0)
#: still fills its pixel.
FALLBACK_EPS = 1e-3


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
        self.qualities: list[np.ndarray] = []
        self.rejected: list[np.ndarray] = []  # reflectance * 10000 as uint16, for the fill
        self.rejected_masks: list[np.ndarray] = []
        self.rejected_quality: list[np.ndarray] = []

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
            self.qualities.append(self._whole(quality, at))
        else:
            self._add(reflectance, accepted, quality, at)
        rejected = valid & ~accepted
        if rejected.any():
            dn = np.clip(np.rint(reflectance * 10000), 0, 65535).astype(np.uint16)
            self.rejected.append(self._whole(dn, at))
            self.rejected_masks.append(self._whole(rejected, at))
            self.rejected_quality.append(
                self._whole(np.where(rejected, quality, 0).astype(np.float32), at))

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
        if self.rejected:
            masks = np.stack(self.rejected_masks) & ~got[None]
            filled = masks.any(axis=0)
            if filled.any():  # computed on the pixels to fill only (a pixel is on its own)
                stack = np.stack([r[:, filled] for r in self.rejected]).astype(np.float32) / 10000
                quality = np.stack([q[filled] for q in self.rejected_quality]) + FALLBACK_EPS
                fill, _ = _best_of(stack[..., None], masks[:, filled, None], quality[..., None],
                                   rank_haze=False)
                out[:, filled] = fill[..., 0]
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


def agreement(stack: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, H, W) agreement in (0, 1] of each accepted observation with the others (see above)."""
    logs = np.log(np.maximum(stack, 1e-3))
    n = len(stack)
    dis = np.full(masks.shape, np.inf, np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            d = np.abs(logs[i] - logs[j]).mean(axis=0)
            both = masks[i] & masks[j]
            np.minimum(dis[i], np.where(both, d, np.inf), out=dis[i])
            np.minimum(dis[j], np.where(both, d, np.inf), out=dis[j])
    lone = ~np.isfinite(dis)  # no other accepted observation to compare with
    dis[lone] = 0.0
    dis_min = np.where(masks, dis, np.inf).min(axis=0)
    excess = np.maximum(dis - dis_min[None], 0.0) / AGREEMENT_TAU
    return np.where(masks, np.exp(-(excess**2)), 0.0).astype(np.float32)


def haze_rank(stack: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, H, W) haze ranking in (0, 1] of each accepted observation against the pixel's
    least hazy one (see above)."""
    views = hot(np.moveaxis(stack, 1, 0))
    least = np.where(masks, views, np.inf).min(axis=0)
    excess = np.maximum(views - least[None], 0.0) / HOT_TAU
    return np.where(masks, np.exp(-(excess**2)), 0.0).astype(np.float32)


def _best_of(stack: np.ndarray, masks: np.ndarray, quality: np.ndarray, rank_haze: bool):
    """(reflectance, got): mean weighted by quality ** BEST_POWER, agreement (and haze rank).

    Both ranks are floored at RANK_FLOOR and the weights are float64 (quality ** 8 of a view at
    a footprint edge near a cloud is ~1e-36), so every pixel with a view gets a value."""
    w = np.where(masks, quality.astype(np.float64), 0.0) ** BEST_POWER
    w *= np.maximum(agreement(stack, masks), RANK_FLOOR)
    if rank_haze:  # not in the fill: among rejected views the least hazy is a flagged shadow
        w *= np.maximum(haze_rank(stack, masks), RANK_FLOOR)
    wsum = w.sum(axis=0)
    got = wsum > 0
    out = np.zeros(stack.shape[1:], np.float32)
    np.divide((stack * w[:, None]).sum(axis=0), wsum, out=out, where=got, casting="unsafe")
    return out, got


class Best(Compositor):
    """The best observation that agrees with the others wins; near-ties blend (no steps)."""

    stacked = True

    def _combine(self):
        if not self.layers:
            return np.zeros((3, *self.shape), np.float32), np.zeros(self.shape, bool)
        return _best_of(np.stack(self.layers), np.stack(self.masks), np.stack(self.qualities),
                        rank_haze=True)


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
