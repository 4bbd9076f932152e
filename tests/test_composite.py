"""Compositing: every method on known stacks, best follows quality, the no-holes fill rule."""

import numpy as np
import pytest

from basemap.composite import METHOD_NAMES, compositor
from basemap.quality import accepted_mask


def test_scl_rejects_clouds_shadows_nodata():
    scl = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], np.uint8)
    valid = np.ones(scl.shape, bool)
    assert accepted_mask(valid, scl).tolist() == [
        [False, False, True, False, True, True], [True, True, False, False, False, True]]
    assert not accepted_mask(np.zeros(scl.shape, bool), scl).any()


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
    ("mean", 0.25), ("median", 0.25), ("first", 0.1),
    ("quartile", 0.175),  # sorted 0.1 0.2 0.3 0.4: position 0.75 -> 0.1 + 0.75 * 0.1
    ("medoid", 0.2),  # L1 sums: 0.1 -> 0.6, 0.2 -> 0.4, 0.3 -> 0.4, 0.4 -> 0.6: first of ties
])
def test_methods_on_a_known_stack(method, expected):
    acc = [np.ones((2, 3), bool)] * 4
    c = _run(method, _stack(), acc)
    assert c.valid.all() and not c.filled.any() and (c.count == 4).all()
    np.testing.assert_allclose(c.reflectance, expected, atol=1e-6)


def _view(red, green, blue):
    return np.stack([np.full((2, 3), v, np.float32) for v in (red, green, blue)])


def test_best_follows_quality_and_blends_near_ties():
    """Two views with the same HOT (blue - red / 2 = 0.03) and no third to agree with: the
    weights are quality ** 8."""
    layers = [_view(0.1, 0.1, 0.08), _view(0.4, 0.4, 0.23)]
    acc = [np.ones((2, 3), bool)] * 2
    q = [np.full((2, 3), 1.0, np.float32), np.full((2, 3), 0.5, np.float32)]
    c = _run("best", layers, acc, q)
    np.testing.assert_allclose(c.reflectance[0], (0.1 + 0.4 * 0.5**8) / (1 + 0.5**8), rtol=1e-5)
    q[1][:] = 1.0
    np.testing.assert_allclose(_run("best", layers, acc, q).reflectance[0], 0.25, atol=1e-6)


def test_best_drops_the_odd_one_out_of_three_even_when_its_quality_is_higher():
    """A missed faint shadow (x0.6) beside two dates of vegetation that agree: the shadowed date
    has the best quality score (nothing flagged it) but disagrees by ln(1/0.6) = 0.51 against
    0.05 for the others, so its weight is ~exp(-21) of theirs."""
    clean = (0.04, 0.07, 0.035)
    layers = [_view(*clean), _view(*(0.6 * v for v in clean)), _view(*(1.05 * v for v in clean))]
    acc = [np.ones((2, 3), bool)] * 3
    q = [np.full((2, 3), v, np.float32) for v in (0.9, 1.0, 0.9)]
    got = _run("best", layers, acc, q).reflectance[:, 0, 0]
    # between the two agreeing dates (1.0x and 1.05x), nothing of the 0.6x one (tolerance 1e-4)
    assert np.all(got >= np.array(clean) - 1e-4) and np.all(got <= 1.05 * np.array(clean) + 1e-4)


def test_best_ranks_faint_haze_below_a_clearer_date():
    """Haze of 0.03 in blue (SCL and the absolute HOT score miss it: HOT 0.04 < HOT_CLEAR) over
    vegetation, against the clear date with equal quality: HOT excess 0.022 -> weight 0.30, so
    the result is 77 % of the way to the clear view (0.3 / 1.3 hazy), not the 50 % of a mean."""
    clear = np.array((0.04, 0.07, 0.035))
    hazy = clear + 0.03 * np.array((0.55, 0.75, 1.0))
    acc = [np.ones((2, 3), bool)] * 2
    q = [np.ones((2, 3), np.float32)] * 2
    got = _run("best", [_view(*clear), _view(*hazy)], acc, q).reflectance[:, 0, 0]
    rank = np.exp(-((0.03 * (1 - 0.5 * 0.55)) / 0.02) ** 2)
    np.testing.assert_allclose(got, (clear + rank * hazy) / (1 + rank), rtol=1e-4)
    assert rank < 0.35


def test_best_never_leaves_a_hole_where_every_rank_is_tiny():
    """Two hazy dates that agree and a clear one that disagrees by a factor 3: the clear one's
    agreement and the hazy ones' haze rank both underflow float32's exp; the pixel still gets
    a value (the floors), between the views."""
    clear, hazy = _view(0.03, 0.05, 0.02), _view(0.09, 0.15, 0.40)
    layers = [hazy, hazy * 1.01, clear]
    acc = [np.ones((2, 3), bool)] * 3
    q = [np.full((2, 3), 1e-4, np.float32)] * 3  # a footprint edge next to a cloud
    c = _run("best", layers, acc, q)
    assert c.valid.all() and not c.filled.any()
    assert np.all(c.reflectance >= 0.02 - 1e-6) and np.all(c.reflectance <= 0.41)


def test_no_holes_fill_rule():
    """A pixel seen only by rejected observations gets the best of them by fallback quality,
    marked filled; a pixel no scene covers stays invalid."""
    layers = _stack()
    acc = [np.zeros((2, 3), bool) for _ in range(4)]
    acc[0][:, 0] = True  # only column 0 has an accepted observation
    valid = [np.ones((2, 3), bool) for _ in range(4)]
    for v in valid:
        v[:, 2] = False  # column 2: no scene has data
    quality = [np.full((2, 3), q, np.float32) for q in (0.1, 0.1, 1.0, 0.1)]
    quality[0][:, 0] = 1.0
    for method in METHOD_NAMES:
        c = _run(method, layers, acc, quality, valid=valid)
        np.testing.assert_allclose(c.reflectance[:, :, 0], 0.1, atol=1e-6)
        assert c.filled[:, 1].all() and not c.filled[:, 0].any()
        # column 1's rejected values 0.1, 0.4, 0.2, 0.3: 0.2 has the best fallback quality (1
        # against 0.1: weight 1e8 times theirs), the others add < 1e-6
        np.testing.assert_allclose(c.reflectance[:, :, 1], 0.2, atol=1e-6)
        assert not c.valid[:, 2].any() and not c.reflectance[:, :, 2].any()
        assert c.count[:, 0].tolist() == [1, 1] and c.count[:, 1].tolist() == [0, 0]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_a_scene_added_on_its_part_gives_what_it_gives_on_the_whole(method):
    """Scenes added over their own parts of the region (what the build does) composite exactly
    as the same scenes padded with nodata to the whole region: `best` keeps each view and each
    rejected view on its part and compares pairs on their overlap only."""
    rng = np.random.default_rng(7)
    shape, parts = (60, 80), [(0, 0, 40, 50), (10, 30, 60, 80), (5, 5, 55, 45), (30, 0, 60, 80)]
    whole, cropped = compositor(method, shape), compositor(method, shape)
    for y0, x0, y1, x1 in parts:
        h, w = y1 - y0, x1 - x0
        refl = rng.uniform(0.01, 0.4, (3, h, w)).astype(np.float32)
        valid = rng.random((h, w)) > 0.05
        accepted = valid & (rng.random((h, w)) > 0.4)
        quality = rng.random((h, w)).astype(np.float32)
        at = (slice(y0, y1), slice(x0, x1))
        cropped.add(refl, valid, accepted, quality, at)
        pad = [np.zeros((*a.shape[:-2], *shape), a.dtype) for a in (refl, valid, accepted, quality)]
        for big, small in zip(pad, (refl, valid, accepted, quality), strict=True):
            big[(..., *at)] = small
        whole.add(*pad)
    a, b = whole.result(), cropped.result()
    assert b.filled.any() and b.valid.sum() > b.filled.sum()
    for name in ("reflectance", "valid", "count", "filled"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_the_observation_count_never_wraps(method):
    """Before: the count was uint8 and 300 accepted dates read as 44."""
    shape = (2, 3)
    comp = compositor(method, shape)
    ones = np.ones(shape, bool)
    for i in range(300):
        refl = np.full((3, *shape), 0.05 + 1e-4 * i, np.float32)
        comp.add(refl, ones, ones, np.ones(shape, np.float32))
    assert comp.result().count.min() == comp.result().count.max() == 300
