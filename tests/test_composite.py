"""Compositing: quality scores independent of the crop, every method, the fill rule."""

import numpy as np
import pytest

from basemap.composite import METHOD_NAMES, compositor, observation_mask
from basemap.quality import CLOUD_BUFFER, HAZE_FLOOR, observation_quality, required_padding


def test_scl_rejects_clouds_shadows_nodata():
    scl = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], np.uint8)
    valid = np.ones(scl.shape, bool)
    assert observation_mask(valid, scl).tolist() == [
        [False, False, True, False, True, True], [True, True, False, False, False, True]]
    assert not observation_mask(np.zeros(scl.shape, bool), scl).any()


def _scene(seed=0, n=300):
    rng = np.random.default_rng(seed)
    refl = rng.uniform(0.02, 0.2, (3, n, n)).astype(np.float32)
    valid = np.ones((n, n), bool)
    valid[:, 200:] = False  # a footprint edge
    scl = np.full((n, n), 4, np.uint8)
    scl[rng.random((n, n)) > 0.999] = 9  # scattered cloud pixels
    scl[50:80, 60:100] = 3  # a shadow
    return refl, valid, scl


def test_quality_does_not_depend_on_the_crop():
    refl, valid, scl = _scene()
    f = 20
    acc, q = observation_quality(refl, valid, scl, f)
    pad = required_padding(f)
    y0, x0, y1, x1 = 90, 150, 160, 230
    sub = np.s_[y0 - pad : y1 + pad, x0 - pad : x1 + pad]
    acc_c, q_c = observation_quality(refl[:, sub[0], sub[1]],
                                     valid[sub], scl[sub], f)
    inner = np.s_[pad:-pad, pad:-pad]
    assert np.array_equal(q_c[inner], q[y0:y1, x0:x1])  # exact: capped EDTs on a padded region
    assert np.array_equal(acc_c[inner], acc[y0:y1, x0:x1])
    assert q[:, 199].max() <= 1 / f + 1e-6  # ramps to 0 at the footprint edge
    # The cloud buffer dilates the shadow: rejected within CLOUD_BUFFER px of it.
    assert not acc[50 - CLOUD_BUFFER + 1 : 80 + CLOUD_BUFFER - 1, 70].any()
    assert acc[50 - CLOUD_BUFFER - 1, 70] or scl[50 - CLOUD_BUFFER - 1, 70] != 4


def test_haze_lowers_quality_but_not_for_desert_or_snow():
    refl = np.zeros((3, 1, 4), np.float32)
    refl[:, 0, 0] = (0.05, 0.07, 0.05)  # clear vegetation
    refl[:, 0, 1] = (0.20, 0.22, 0.30)  # haze / thin cloud: blue >> red
    refl[:, 0, 2] = (0.35, 0.25, 0.18)  # desert
    refl[:, 0, 3] = (0.85, 0.88, 0.90)  # snow (SCL 11)
    valid = np.ones((1, 4), bool)
    scl = np.array([[4, 4, 5, 11]], np.uint8)
    _, q = observation_quality(refl, valid, scl, 0)
    assert q[0, 0] == 1 and q[0, 2] == 1 and q[0, 3] == 1
    assert q[0, 1] == pytest.approx(HAZE_FLOOR)


def _stack():
    """Four observations of a 2x3 patch with known values (all accepted, quality 1)."""
    vals = np.array([0.1, 0.4, 0.2, 0.3], np.float32)
    return [np.full((3, 2, 3), v, np.float32) for v in vals]


def _run(method, layers, accepted, quality=None, valid=None):
    comp = compositor(method, (2, 3))
    for i, layer in enumerate(layers):
        v = np.ones((2, 3), bool) if valid is None else valid[i]
        q = np.ones((2, 3), np.float32) if quality is None else quality[i]
        comp.add(layer, v, accepted[i], q)
    return comp.result()


@pytest.mark.parametrize("method,expected", [
    ("mean", 0.25), ("best", 0.25), ("median", 0.25), ("first", 0.1),
    ("quartile", 0.175),  # sorted 0.1 0.2 0.3 0.4: position 0.75 -> 0.1 + 0.75 * 0.1
    ("medoid", 0.2),  # L1 sums: 0.1 -> 0.6, 0.2 -> 0.4, 0.3 -> 0.4, 0.4 -> 0.6: first of ties
])
def test_methods_on_a_known_stack(method, expected):
    acc = [np.ones((2, 3), bool)] * 4
    c = _run(method, _stack(), acc)
    assert c.valid.all() and not c.filled.any() and (c.count == 4).all()
    np.testing.assert_allclose(c.reflectance, expected, atol=1e-6)


def test_best_follows_quality_and_blends_near_ties():
    layers = _stack()[:2]  # 0.1 and 0.4
    acc = [np.ones((2, 3), bool)] * 2
    q = [np.full((2, 3), 1.0, np.float32), np.full((2, 3), 0.5, np.float32)]
    c = _run("best", layers, acc, q)
    np.testing.assert_allclose(c.reflectance, (0.1 + 0.4 * 0.5**8) / (1 + 0.5**8), rtol=1e-5)
    q[1][:] = 1.0
    np.testing.assert_allclose(_run("best", layers, acc, q).reflectance, 0.25, atol=1e-6)


def test_no_holes_fill_rule():
    """A pixel seen only by rejected observations gets their first quartile, marked filled;
    a pixel no scene covers stays invalid."""
    layers = _stack()
    acc = [np.zeros((2, 3), bool) for _ in range(4)]
    acc[0][:, 0] = True  # only column 0 has an accepted observation
    valid = [np.ones((2, 3), bool) for _ in range(4)]
    for v in valid:
        v[:, 2] = False  # column 2: no scene has data
    for method in METHOD_NAMES:
        c = _run(method, layers, acc, valid=valid)
        np.testing.assert_allclose(c.reflectance[:, :, 0], 0.1, atol=1e-6)
        assert c.filled[:, 1].all() and not c.filled[:, 0].any()
        # column 1's rejected values: 0.4, 0.2, 0.3 (and 0.1 from scene 0): first quartile
        np.testing.assert_allclose(c.reflectance[:, :, 1], 0.175, atol=1e-4)
        assert not c.valid[:, 2].any() and not c.reflectance[:, :, 2].any()
        assert c.count[:, 0].tolist() == [1, 1] and c.count[:, 1].tolist() == [0, 0]
