"""Classic renderers: formulas, nodata, and independence from how the region is split."""

import numpy as np
import pytest

from basemap.errors import InputError
from basemap.grid import Region
from basemap.render.base import RENDERER_NAMES, get_renderer

CLASSIC = ["linear", "sh-l2a-optimized", "per-tile-stretch"]


def _scene(shape=(3, 600, 700), seed=0):
    rng = np.random.default_rng(seed)
    refl = rng.gamma(2.0, 0.05, size=shape).astype(np.float32)
    valid = np.ones(shape[1:], dtype=bool)
    valid[:50, :80] = False
    refl[:, ~valid] = 0
    return refl, valid


def test_linear_maps_quarter_reflectance_to_white():
    r = get_renderer("linear")
    refl = np.array([0.0, 0.125, 0.25, 0.5], dtype=np.float32).reshape(1, 1, 4).repeat(3, 0)
    out = r.render(refl, np.ones((1, 4), bool), (0, 0), Region(0, 0, 4, 1))
    assert out[0, 0].tolist() == [0, 128, 255, 255]


def test_sh_l2a_optimized_is_monotonic_and_keeps_highlights():
    r = get_renderer("sh-l2a-optimized")
    grey = np.linspace(0, 1.2, 50, dtype=np.float32).reshape(1, 1, 50).repeat(3, 0)
    out = r.render(grey, np.ones((1, 50), bool), (0, 0), Region(0, 0, 50, 1))[0, 0].astype(int)
    assert np.all(np.diff(out) >= 0)
    # Highlight compression: a 0.4 reflectance desert is not yet white (linear would clip at 0.25).
    assert out[int(0.4 / 1.2 * 49)] < 250


@pytest.mark.parametrize("name", CLASSIC)
def test_nodata_is_zero_and_output_is_split_invariant(name):
    r = get_renderer(name)
    refl, valid = _scene()
    whole = Region(0, 0, 700, 600)
    assert r.input_region(whole).x0 == 0 and r.input_region(whole).y0 == 0
    # Give enough input for any split: the input region of the whole, here the array itself.
    origin = (0, 0)
    full = r.render(refl, valid, origin, Region(0, 0, 512, 512))
    assert full.shape == (3, 512, 512)
    assert not full[:, :50, :80].any()
    left = r.render(refl, valid, origin, Region(0, 0, 200, 512))
    right = r.render(refl, valid, origin, Region(200, 0, 512, 512))
    np.testing.assert_array_equal(np.concatenate([left, right], axis=2), full)


def test_per_tile_stretch_differs_between_tiles_of_different_content():
    r = get_renderer("per-tile-stretch")
    refl = np.full((3, 512, 1024), 0.05, dtype=np.float32)
    refl[:, :, 512:] = 0.3  # a bright tile beside a dark one
    refl += np.random.default_rng(1).normal(0, 0.01, refl.shape).astype(np.float32)
    out = r.render(refl, np.ones((512, 1024), bool), (0, 0), Region(0, 0, 1024, 512))
    # Both tiles get stretched to the full range, so their means end up close although the ground
    # differs by 6x: the per-tile adaptivity that makes mosaics patchy.
    assert abs(out[:, :, :512].mean() - out[:, :, 512:].mean()) < 20


def test_unknown_renderer_lists_choices():
    with pytest.raises(InputError, match="linear"):
        get_renderer("nope")
    assert RENDERER_NAMES[0] == "unet"


def test_get_renderer_honours_model_window_and_overlap():
    r = get_renderer("unet", model="w.pt", window=256, overlap=32)
    assert (r.model_path, r.grid.window, r.grid.overlap) == ("w.pt", 256, 32)
    assert get_renderer("unet").grid.window == 512  # the shipped model's grid by default
    with pytest.raises(InputError, match="overlap"):
        get_renderer("unet", window=64, overlap=40)
    assert RENDERER_NAMES[0] == "unet"  # the default, first in the CLI's choices
