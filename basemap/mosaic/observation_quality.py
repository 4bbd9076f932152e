"""Per-observation quality: how much a scene's pixel can be trusted as a view of the ground.

A pure, window-local function of one scene's pixels (so a block's bytes do not depend on how the
build was split): the product of three scores in [0, 1],

- **footprint edge**: ``min(1, d_edge / feather)``, ``d_edge`` the distance (px) to the nearest
  pixel without data of the same scene (footprints and zone edges are trimmed softly);
- **cloud distance**: ``min(1, (d_cloud - CLOUD_BUFFER) / CLOUD_RAMP)``, ``d_cloud`` the distance
  to the nearest pixel SCL flags as cloud, cirrus or shadow. Pixels within ``CLOUD_BUFFER`` px are
  rejected outright: SCL under-detects cloud edges and the shadows next to them by a few pixels
  (the buffer dilates the mask, as S2Mosaic and EOX cloudless do);
- **haze**: ``1`` for a clear pixel, falling to ``HAZE_FLOOR`` as the haze-optimised index
  ``HOT = B02 - 0.5 * B04`` (Zhang et al. 2002) rises from ``HOT_CLEAR`` to ``HOT_HAZE``: thin
  cloud and haze brighten blue far more than red, clear land rarely passes 0.06, while deserts
  and rock (red > blue) never trigger it. Snow (SCL 11) is exempt.

A pixel that is not accepted still gets a **fallback** quality, used only where no observation of
the pixel is accepted (the no-holes fill of :mod:`basemap.mosaic.composite`): edge and haze as
above, times ``FALLBACK_FLOOR`` inside a flagged cloud or shadow, rising to 1 at the buffer's outer
edge, so the least-bad view wins the fill (a pixel just inside the buffer over one under the cloud).

Distances are chamfer transforms capped at their ramps (:mod:`basemap.mosaic.distance`): L1 for the
footprint edge, L-infinity for clouds (so the buffer covers at least the Euclidean disk), exact
on the pixel grid, so values at least :func:`required_padding` px inside the array do not depend
on where it was cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from basemap.mosaic.distance import chessboard, taxicab

#: SCL classes that are never observations: 0 nodata, 1 saturated/defective, 3 cloud shadow,
#: 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
REJECTED_SCL = (0, 1, 3, 8, 9, 10)
#: The subset that are clouds or their shadows (distance is measured from them).
CLOUDY_SCL = (3, 8, 9, 10)
SNOW_SCL = 11
#: Px within which a cloud/shadow pixel rejects an observation, and the ramp after it.
CLOUD_BUFFER = 8
CLOUD_RAMP = 24
#: HOT (B02 - 0.5 B04 reflectance) of a clear pixel and of a hazy one; the haze score's floor.
HOT_CLEAR, HOT_HAZE = 0.06, 0.16
HAZE_FLOOR = 0.05
#: SCL is uint8: class membership by table lookup.
_CLOUDY = np.isin(np.arange(256), CLOUDY_SCL)
_REJECTED = np.isin(np.arange(256), REJECTED_SCL)
#: The fallback quality's cloud factor inside a flagged cloud or shadow (1 at the buffer's edge).
FALLBACK_FLOOR = 0.1


def required_padding(feather: int) -> int:
    """Pixels of context the scores need around the pixels they are used for."""
    return max(feather, CLOUD_BUFFER + CLOUD_RAMP) + 1


def edge_score(valid: np.ndarray, feather: int) -> np.ndarray:
    """``min(1, d_edge / feather)`` (1 everywhere valid when feather is 0)."""
    if feather <= 0:
        return valid.astype(np.float32)
    return taxicab(valid, feather) / np.float32(feather)


def cloud_distance(scl: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Distance (px) to the nearest cloud/shadow pixel, capped at CLOUD_BUFFER + CLOUD_RAMP."""
    cap = CLOUD_BUFFER + CLOUD_RAMP
    if scl is None:
        return np.full(shape, float(cap), np.float32)
    return chessboard(~_CLOUDY[scl], cap)


def hot(reflectance: np.ndarray) -> np.ndarray:
    """The haze-optimised transform ``B02 - 0.5 * B04`` of (3, ...) R, G, B reflectance."""
    return reflectance[2] - 0.5 * reflectance[0]


def accepted_mask(valid: np.ndarray, scl: np.ndarray | None) -> np.ndarray:
    """Pixels with data whose SCL class is not rejected (before the cloud buffer)."""
    if scl is None:
        return valid.copy()
    return valid & ~_REJECTED[scl]


def observation_quality(
    reflectance: np.ndarray, valid: np.ndarray, scl: np.ndarray | None, feather: int
) -> tuple[np.ndarray, np.ndarray]:
    """(accepted (H, W) bool, quality (H, W) float32 in [0, 1]) of one scene's pixels.

    Accepted: data, an accepted SCL class, and farther than CLOUD_BUFFER px from cloud/shadow.
    Quality is the product of the three scores where accepted, the fallback quality where not
    (0 where there is no data).
    """
    valid = np.ascontiguousarray(valid, bool)
    accepted = np.empty(valid.shape, bool)
    quality = np.empty(valid.shape, np.float32)
    _scores(np.ascontiguousarray(reflectance, np.float32), valid,
            np.zeros((1, 1), np.uint8) if scl is None else np.ascontiguousarray(scl, np.uint8),
            scl is not None, cloud_distance(scl, valid.shape), edge_score(valid, feather),
            accepted, quality)
    return accepted, quality


@njit(cache=True, nogil=True)
def _scores(reflectance: np.ndarray, valid: np.ndarray, scl: np.ndarray, has_scl: bool,
            distance: np.ndarray, edge: np.ndarray, accepted: np.ndarray,
            quality: np.ndarray) -> None:  # pragma: no cover (compiled)
    """The cloud and haze scores of the module docstring and the product with ``edge``, per
    pixel, in float32 with numpy's operations in numpy's order (the results are the same bits);
    ``accepted`` and ``quality`` are filled in place."""
    f32 = np.float32
    buffer, ramp, floor = f32(CLOUD_BUFFER), f32(CLOUD_RAMP), f32(FALLBACK_FLOOR)
    hot_haze, hot_span = f32(HOT_HAZE), f32(HOT_HAZE - HOT_CLEAR)
    for y in range(valid.shape[0]):
        for x in range(valid.shape[1]):
            if not valid[y, x]:
                accepted[y, x] = False
                quality[y, x] = 0
                continue
            d = distance[y, x]
            cloud = min(max((d - buffer) / ramp, f32(0)), f32(1))
            ok = cloud > 0 and not (has_scl and _REJECTED[scl[y, x]])
            if not ok:  # the fallback quality
                cloud = floor + f32(1 - FALLBACK_FLOOR) * (min(d, buffer) / buffer)
            hot = reflectance[2, y, x] - f32(0.5) * reflectance[0, y, x]
            haze = min(max((hot_haze - hot) / hot_span, f32(HAZE_FLOOR)), f32(1))
            if has_scl and scl[y, x] == SNOW_SCL:
                haze = f32(1)
            accepted[y, x] = ok
            quality[y, x] = edge[y, x] * cloud * haze
