"""Gap filling of the network input: valid pixels kept, nodata a smooth extension of them."""

import numpy as np
import pytest

from basemap.render.gapfill import fill_gaps


def _footprint(h=96, w=80):
    yy, xx = np.mgrid[:h, :w]
    valid = (yy - 40) ** 2 + (xx - 30) ** 2 < 20**2  # a disc: gaps on every side
    rng = np.random.default_rng(0)
    refl = (0.05 + 0.2 * rng.random((3, h, w))).astype(np.float32)
    return refl, valid


def test_valid_pixels_are_kept_bit_for_bit():
    refl, valid = _footprint()
    out = fill_gaps(refl, valid)
    assert out.dtype == np.float32 and out.shape == refl.shape
    assert np.array_equal(out[:, valid], refl[:, valid])


def test_gaps_take_values_between_those_of_the_valid_pixels():
    refl, valid = _footprint()
    out = fill_gaps(refl, valid)
    for c in range(3):
        lo, hi = refl[c, valid].min(), refl[c, valid].max()
        gap = out[c, ~valid]
        assert gap.min() >= lo - 1e-6 and gap.max() <= hi + 1e-6
        # far from the disc the fill is close to the disc's mean (tolerance 0.02 reflectance)
        assert abs(out[c, -1, -1] - refl[c, valid].mean()) < 0.02


def test_a_uniform_footprint_extends_uniformly_and_a_ramp_stays_a_ramp():
    refl, valid = _footprint()
    const = np.full_like(refl, 0.1)
    assert np.allclose(fill_gaps(const, valid), 0.1, atol=1e-6)
    ramp = np.broadcast_to(np.linspace(0.0, 0.3, refl.shape[2], dtype=np.float32),
                           refl.shape).copy()  # fmt: skip
    out = fill_gaps(ramp, valid)
    # the nodata next to the disc continues it: no step bigger than 0.02 between neighbours
    assert np.abs(np.diff(out, axis=2)).max() < 0.02
    assert np.abs(np.diff(out, axis=1)).max() < 0.02


@pytest.mark.parametrize("shape", [(1, 7), (5, 1), (3, 3), (33, 17)])
def test_odd_shapes_and_edge_cases(shape):
    refl = np.arange(3 * shape[0] * shape[1], dtype=np.float32).reshape(3, *shape)
    valid = np.zeros(shape, bool)
    assert np.array_equal(fill_gaps(refl, valid), np.zeros_like(refl))  # no data: zeros
    valid.flat[0] = True
    out = fill_gaps(refl, valid)
    assert np.isfinite(out).all()
    assert np.allclose(out, refl[:, :1, :1])  # one valid pixel: everything takes its value
    valid[:] = True
    assert np.array_equal(fill_gaps(refl, valid), refl)
