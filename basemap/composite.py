"""Cloud masks and per-pixel compositing of the scenes covering a block.

A scene's pixel is an **observation** when it has data (DN != 0 in every band) and its SCL class
is not rejected (:data:`REJECTED_SCL`: nodata, saturated, cloud shadow, cloud medium/high, thin
cirrus). Observations are combined per pixel in the manifest's fixed order (datetime, id), so the
floating-point result never depends on the order the scenes were read in. Methods
(:class:`Method`, the ``--composite`` option):

* ``mean`` (default): **feathered** weighted mean. Each observation is weighted by
  ``min(1, d / feather)``, ``d`` being its Euclidean distance in pixels to the nearest pixel of the
  same scene that is not an observation (scene edge, zone edge, cloud, shadow). Weights ramp from
  ~0 at every edge, so the number of observations changing at a scene edge makes no step.
* ``median``: the per-band median of the observations (no feathering; steps at edges remain).
* ``first``: the first observation in manifest order (oldest first; steps at edges remain).

The distance transform is exact and capped at ``feather``: computed on a region padded by at least
``feather + 1`` pixels, its values inside do not depend on how the region was cut out
(:func:`required_padding`).
"""

from __future__ import annotations

from enum import Enum

import numpy as np

#: SCL classes that are never observations: 0 nodata, 1 saturated/defective, 3 cloud shadow,
#: 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
REJECTED_SCL = (0, 1, 3, 8, 9, 10)


def observation_mask(valid: np.ndarray, scl: np.ndarray | None) -> np.ndarray:
    """Pixels that are observations: valid DN and an accepted SCL class (when there is SCL)."""
    if scl is None:
        return valid.copy()
    return valid & ~np.isin(scl, REJECTED_SCL)


def required_padding(feather: int) -> int:
    """Pixels of context the feather weights need around the pixels they are used for."""
    return feather + 1 if feather > 0 else 0


def feather_weights(observed: np.ndarray, feather: int) -> np.ndarray:
    """Weights ``min(1, d / feather)`` (float32, 0 where not observed).

    Exact for pixels at least :func:`required_padding` pixels inside the array.
    """
    if feather <= 0:
        return observed.astype(np.float32)
    if observed.all():
        return np.ones(observed.shape, dtype=np.float32)
    if not observed.any():
        return np.zeros(observed.shape, dtype=np.float32)
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(observed)
    return np.minimum(d / feather, 1.0).astype(np.float32)


class Compositor:
    """Base of the compositing methods: add observations in manifest order, then `result()`."""

    def __init__(self, shape: tuple[int, int], feather: int) -> None:
        self.shape = shape
        self.feather = feather

    def add(self, reflectance: np.ndarray, observed: np.ndarray) -> None:
        """Add one scene: reflectance (3, H, W) float32 and its observation mask (H, W)."""
        raise NotImplementedError

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance (3, H, W) float32, 0 where invalid; valid (H, W) bool)."""
        raise NotImplementedError


class FeatheredMean(Compositor):
    """Weighted mean, weights ramping from the edges of each scene's observations."""

    def __init__(self, shape, feather):
        super().__init__(shape, feather)
        self.acc = np.zeros((3, *shape), dtype=np.float64)
        self.wsum = np.zeros(shape, dtype=np.float64)

    def add(self, reflectance, observed):
        w = feather_weights(observed, self.feather)
        self.acc += reflectance * w
        self.wsum += w

    def result(self):
        valid = self.wsum > 0
        out = np.zeros((3, *self.shape), dtype=np.float32)
        np.divide(self.acc, self.wsum, out=out, where=valid, casting="unsafe")
        return out, valid


class Median(Compositor):
    """Per-band median of the observations."""

    def __init__(self, shape, feather):
        super().__init__(shape, feather)
        self.layers: list[np.ndarray] = []

    def add(self, reflectance, observed):
        layer = reflectance.astype(np.float32, copy=True)
        layer[:, ~observed] = np.nan
        self.layers.append(layer)

    def result(self):
        if not self.layers:
            return np.zeros((3, *self.shape), np.float32), np.zeros(self.shape, bool)
        stack = np.stack(self.layers)
        valid = ~np.isnan(stack[:, 0]).all(axis=0)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out = np.nanmedian(stack, axis=0)
        out[:, ~valid] = 0.0
        return out.astype(np.float32), valid


class First(Compositor):
    """The first observation in manifest order."""

    def __init__(self, shape, feather):
        super().__init__(shape, feather)
        self.out = np.zeros((3, *shape), dtype=np.float32)
        self.valid = np.zeros(shape, dtype=bool)

    def add(self, reflectance, observed):
        take = observed & ~self.valid
        self.out[:, take] = reflectance[:, take]
        self.valid |= take

    def result(self):
        return self.out, self.valid


class Method(str, Enum):
    """Compositing methods (the ``--composite`` choices); the value is the CLI name."""

    MEAN = "mean"
    MEDIAN = "median"
    FIRST = "first"

    def compositor(self, shape: tuple[int, int], feather: int) -> Compositor:
        """A fresh compositor of this method."""
        return {"mean": FeatheredMean, "median": Median, "first": First}[self.value](
            shape, feather
        )

    @property
    def uses_feather(self) -> bool:
        """Only the mean is feathered (the others need no padding for it)."""
        return self is Method.MEAN


#: CLI choices, the default first.
METHOD_NAMES = tuple(m.value for m in Method)
