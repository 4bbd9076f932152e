"""basemap.distance: the coarse capped distance against the exact transform; crop invariance."""

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, distance_transform_edt

from basemap.distance import capped_distance, context


def _masks(n: int = 640, seed: int = 0) -> dict[str, np.ndarray]:
    """A tilted footprint (a UTM tile on the Mercator grid, with a nodata notch) and clouds."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n].astype(float)
    a = np.radians(2.3)
    xr, yr = x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)
    footprint = (xr > 101.3) & (xr < 507.9) & (yr > 77.6) & (yr < 590.2)
    footprint[300:330, 150:260] = False
    seeds = rng.random((n, n)) > 0.9995
    clouds = binary_dilation(seeds, iterations=7) | (rng.random((n, n)) > 0.999)
    return {"footprint": footprint, "clear": ~clouds}


@pytest.mark.parametrize(("name", "cap", "cell"), [("footprint", 64, 4), ("clear", 28, 2),
                                                    ("clear", 28, 4)])
def test_the_coarse_distance_is_a_close_lower_bound(name, cap, cell):
    inside = _masks()[name]
    exact = np.minimum(distance_transform_edt(inside), cap)
    got = capped_distance(inside, cap, cell)
    err = (got - exact)[inside]
    assert got.dtype == np.float32 and (got[~inside] == 0).all()
    assert err.min() >= -1.6 * cell  # short by at most about a cell
    assert err.max() <= cell / 4  # (almost) never above
    assert np.abs(err).mean() < 0.6 * cell  # these masks: mostly pixels near the outside
    assert (got[exact >= cap] == cap).mean() > 0.5


def test_the_same_pixels_get_the_same_bits_from_any_aligned_crop():
    inside = _masks()["footprint"]
    cap, cell = 64, 4
    pad = context(cap, cell)
    full = capped_distance(inside, cap, cell)
    y0, x0, y1, x1 = 200, 96, 420, 300  # multiples of the cell, like the pipeline's regions
    crop = capped_distance(inside[y0 - pad:y1 + pad, x0 - pad:x1 + pad], cap, cell)
    assert np.array_equal(crop[pad:-pad, pad:-pad], full[y0:y1, x0:x1])


def test_all_inside_and_all_outside():
    assert (capped_distance(np.ones((5, 7), bool), 9, 4) == 9).all()
    assert (capped_distance(np.zeros((5, 7), bool), 9, 4) == 0).all()
