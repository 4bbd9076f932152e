"""basemap.mosaic.distance: the chamfer distances bound the Euclidean one; any crop gives the same
bits."""

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, distance_transform_edt

from basemap.mosaic.distance import chessboard, taxicab


def _masks(n: int = 480, seed: int = 0) -> dict[str, np.ndarray]:
    """A tilted footprint (a UTM tile on the Mercator grid, with a nodata notch) and clouds."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n].astype(float)
    a = np.radians(2.3)
    xr, yr = x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)
    footprint = (xr > 101.3) & (xr < 407.9) & (yr > 77.6) & (yr < 430.2)
    footprint[300:330, 150:260] = False
    seeds = rng.random((n, n)) > 0.9995
    clouds = binary_dilation(seeds, iterations=7) | (rng.random((n, n)) > 0.999)
    return {"footprint": footprint, "clear": ~clouds}


@pytest.mark.parametrize("name", ["footprint", "clear"])
def test_chessboard_and_taxicab_bound_the_euclidean_distance(name):
    inside = _masks()[name]
    cap = 64
    exact = np.minimum(distance_transform_edt(inside), cap)
    low, high = chessboard(inside, cap), taxicab(inside, cap)
    assert low.dtype == high.dtype == np.float32
    assert (low[~inside] == 0).all() and (high[~inside] == 0).all()
    assert (low <= exact + 1e-6).all() and (exact <= high + 1e-6).all()
    assert (high <= np.minimum(np.sqrt(2) * exact, cap) + 1e-6).all()


@pytest.mark.parametrize("distance", [taxicab, chessboard])
def test_the_same_pixels_get_the_same_bits_from_any_crop(distance):
    inside = _masks()["footprint"]
    cap = 64
    full = distance(inside, cap)
    y0, x0, y1, x1 = 201, 97, 399, 303
    crop = distance(inside[y0 - cap:y1 + cap, x0 - cap:x1 + cap], cap)
    assert np.array_equal(crop[cap:-cap, cap:-cap], full[y0:y1, x0:x1])


def test_all_inside_and_all_outside():
    assert (taxicab(np.ones((5, 7), bool), 9) == 9).all()
    assert (chessboard(np.zeros((5, 7), bool), 9) == 0).all()
