"""The global window grid and taper weights (pure numpy, property tests)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basemap.errors import InputError
from basemap.grid import Region
from basemap.render.windows import WindowGrid, blend


@settings(max_examples=40, deadline=None)
@given(
    window=st.sampled_from([16, 32, 64]),
    frac=st.sampled_from([0, 0.125, 0.25, 0.5]),
    x0=st.integers(-200, 200),
    y0=st.integers(-200, 200),
    w=st.integers(1, 150),
    h=st.integers(1, 150),
)
def test_weights_sum_to_one_everywhere(window, frac, x0, y0, w, h):
    grid = WindowGrid(window, int(window * frac))
    region = Region(x0, y0, x0 + w, y0 + h)
    wins = list(grid.windows(region))
    ones = ((win, np.ones((1, window, window))) for win in wins)
    acc, wsum = blend(ones, grid, region, channels=1)
    # Complementary sin^2 ramps: exact up to float rounding.
    np.testing.assert_allclose(wsum, 1.0, atol=1e-12)
    np.testing.assert_allclose(acc[0], 1.0, atol=1e-12)
    # Every window listed touches the region, and windows start on the global grid.
    for wx, wy in wins:
        assert wx % grid.stride == 0 and wy % grid.stride == 0
        assert wx < x0 + w and wx + window > x0 and wy < y0 + h and wy + window > y0
    need = grid.input_region(region)
    assert need.x0 <= x0 and need.y0 <= y0 and need.x1 >= x0 + w and need.y1 >= y0 + h
    assert all(grid.extent(win).width == window for win in wins)


def test_taper_is_near_zero_at_edges_and_one_inside():
    grid = WindowGrid(512, 64)
    r = grid.ramp()
    assert r[0] < 1e-3 and r[-1] < 1e-3  # sin^2(pi/256): ~1.5e-4
    assert np.all(r[64:-64] == 1.0)
    np.testing.assert_allclose(r[448:] + r[:64], 1.0, atol=1e-15)  # neighbours' ramps
    assert grid.stride == 448


def test_overlap_more_than_half_is_refused():
    with pytest.raises(InputError, match="at most two"):
        WindowGrid(64, 40)
