"""Compositing: every method on known stacks, best follows quality, the no-holes fill rule,
and the streaming candidates: the same bits as every view where a pixel has at most
MAX_CANDIDATES, the best of them where it has more, memory bounded."""

import numpy as np
import pytest

from basemap.mosaic.candidates import BAND_PX, MAX_CANDIDATES
from basemap.mosaic.composite import (
    BEST_POWER,
    FALLBACK_EPS,
    METHOD_NAMES,
    RANK_FLOOR,
    compositor,
)
from basemap.mosaic.observation_quality import accepted_mask, observation_quality
from basemap.mosaic.ranking import View, agreement, haze_rank


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


def _weighted(views, shape, rank_haze):
    """``best``'s weighted mean of whole-region views, in numpy, every view of a pixel ranked
    against every other (as the composite was before it streamed)."""
    ranks = [agreement(views, shape)] + ([haze_rank(views, shape)] if rank_haze else [])
    acc, wsum = np.zeros((3, *shape)), np.zeros(shape)
    for k, v in enumerate(views):
        w = np.power(v.quality, BEST_POWER, dtype=np.float64)
        for rank in ranks:
            w = w * np.maximum(rank[k], np.float32(RANK_FLOOR)).astype(np.float64)
        w = np.where(v.mask, w, 0.0)
        acc += v.reflectance.astype(np.float64) * w
        wsum += w
    out = np.zeros((3, *shape), np.float32)
    np.divide(acc, wsum, out=out, where=wsum > 0, casting="unsafe")
    return out, wsum > 0


def _reference_best(scenes, shape):
    """(reflectance, valid, filled) of ``best`` over every view: scenes (reflectance, accepted,
    rejected, quality) over the whole region; the fill from DN, by fallback quality."""
    whole = (slice(0, shape[0]), slice(0, shape[1]))
    accepted = [View(r, a, q, whole) for r, a, _, q in scenes]
    rejected = [View(np.clip(np.rint(r * np.float32(10000)), 0, 65535).astype(np.uint16)
                     / np.float32(10000), j, q + np.float32(FALLBACK_EPS), whole)
                for r, _, j, q in scenes]  # fmt: skip
    out, got = _weighted(accepted, shape, rank_haze=True)
    fill, _ = _weighted(rejected, shape, rank_haze=False)
    filled = np.any([j for _, _, j, _ in scenes], axis=0) & ~got
    out = np.where(filled, fill, out)
    out[:, ~(got | filled)] = 0
    return out, got | filled, filled


def _structured(rng, dates, shape, parts=False):
    """Scenes of one ground: per date a gain, haze, clouds (SCL 9) with shadows (SCL 3, some
    missed: darker but accepted), one cloud on every date, a footprint edge, and (``parts``) a
    random part of the region; quality from :func:`observation_quality`. Yields (reflectance,
    valid, accepted, quality, at)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] / np.array(shape, np.float32)[:, None, None]
    ground = np.stack([0.05 + 0.04 * np.sin(7 * xx + b) * np.cos(5 * yy - b)
                       for b in range(3)]).astype(np.float32)  # fmt: skip
    for k in range(dates):
        def blobs(n, radius):
            centres = rng.random((n, 2))
            return np.any([np.hypot(yy - cy, xx - cx) < radius for cy, cx in centres], axis=0)
        cloud, shadow, missed = blobs(2, 0.12), blobs(2, 0.1), blobs(1, 0.08)
        cloud |= np.hypot(yy - 0.5, xx - 0.3) < 0.1  # on every date: filled
        haze = rng.uniform(0, 0.04) * np.exp(-((xx - rng.random()) ** 2) / 0.05)
        tint = np.array([0.55, 0.75, 1.0])[:, None, None]
        refl = ground * np.float32(1 + 0.03 * np.sin(k)) + haze * tint
        refl = np.where(shadow | missed, 0.6 * refl, refl)
        refl = np.where(cloud, np.float32(0.6), refl).astype(np.float32)
        valid = xx + rng.uniform(-0.3, 0.3) * yy < rng.uniform(0.8, 1.5)
        scl = np.where(cloud, 9, np.where(shadow, 3, 4)).astype(np.uint8)
        at = (slice(None), slice(None))
        if parts:
            y0, x0 = rng.integers(0, shape[0] // 2), rng.integers(0, shape[1] // 2)
            at = (slice(y0, y0 + shape[0] // 2), slice(x0, x0 + shape[1] // 2))
        refl, valid, scl = refl[(slice(None), *at)], valid[at], scl[at]
        refl = np.where(valid, refl, 0).astype(np.float32)
        accepted, quality = observation_quality(refl, valid, scl, feather=6)
        yield refl, valid, accepted, quality, at


def _random(rng, dates, shape, parts=False):
    """Uniform reflectance, valid, accepted and quality, each scene on a part (``parts``)."""
    for _ in range(dates):
        at = (slice(None), slice(None))
        if parts:
            y0, x0 = rng.integers(0, shape[0] // 2), rng.integers(0, shape[1] // 2)
            at = (slice(y0, y0 + rng.integers(shape[0] // 4, shape[0] // 2)),
                  slice(x0, x0 + rng.integers(shape[1] // 4, shape[1] // 2)))  # fmt: skip
        h, w = (len(range(*a.indices(n))) for a, n in zip(at, shape, strict=True))
        refl = rng.uniform(0.01, 0.4, (3, h, w)).astype(np.float32)
        valid = rng.random((h, w)) > 0.05
        accepted = valid & (rng.random((h, w)) > 0.4)
        yield refl, valid, accepted, rng.random((h, w)).astype(np.float32), at


def _whole(scene, shape):
    """(reflectance, accepted, rejected, quality) of a scene over the whole region."""
    refl, valid, accepted, quality, at = scene
    out = [np.zeros((*a.shape[:-2], *shape), a.dtype) for a in (refl, accepted, valid, quality)]
    for big, small in zip(out, (refl, accepted, valid & ~accepted, quality), strict=True):
        big[(..., *at)] = small
    return tuple(out)


def _top(scenes):
    """Per scene, the pixels where it is among the best MAX_CANDIDATES offered there (quality,
    of equals the later): (N, H, W) bool, accepted and rejected."""
    chosen = []
    for kind in (1, 2):
        offered = np.stack([s[kind] for s in scenes])
        quality = np.where(offered, np.stack([s[3] for s in scenes]), -np.inf)
        later = np.broadcast_to(-np.arange(len(scenes))[:, None, None], offered.shape)
        rank = np.argsort(np.lexsort((later, -quality), axis=0), axis=0)
        chosen.append(offered & (rank < MAX_CANDIDATES))
    return chosen


@pytest.mark.parametrize("make,dates,parts", [
    (_random, MAX_CANDIDATES, False), (_random, 3 * MAX_CANDIDATES, True),
    (_structured, MAX_CANDIDATES, False), (_structured, 3 * MAX_CANDIDATES, True),
])  # fmt: skip
def test_streaming_best_is_every_view_where_a_pixel_has_at_most_max_candidates(make, dates, parts):
    """The same bits as ranking every view against every other (the composite before it
    streamed), on a region of several bands where no pixel has more than MAX_CANDIDATES views
    of either kind (scenes on parts: up to 3 x MAX_CANDIDATES dates in the region)."""
    rng = np.random.default_rng(dates)
    shape = (2 * BAND_PX // 300 + 7, 300)
    scenes = list(make(rng, dates, shape, parts))
    whole = [_whole(s, shape) for s in scenes]
    for kind in (1, 2):  # keep at most MAX_CANDIDATES views per pixel of each kind
        seen = np.cumsum([w[kind] for w in whole], axis=0)
        for w, n in zip(whole, seen, strict=True):
            w[kind][n > MAX_CANDIDATES] = False
    comp = compositor("best", shape)
    for s, (_, accepted, rejected, _) in zip(scenes, whole, strict=True):
        refl, _, _, quality, at = s
        comp.add(refl, (accepted | rejected)[at], accepted[at], quality, at)
    got = comp.result()
    want = _reference_best(whole, shape)
    assert got.filled.any() and (got.valid & ~got.filled).any()
    for name, a in zip(("reflectance", "valid", "filled"), want, strict=True):
        assert np.array_equal(getattr(got, name), a), name
    assert np.array_equal(got.count, np.where(got.valid & ~got.filled,
                                              np.sum([w[1] for w in whole], axis=0), 0))


@pytest.mark.parametrize("make", [_random, _structured])
def test_streaming_best_keeps_the_best_max_candidates_of_a_pixel(make):
    """Past MAX_CANDIDATES views of a pixel, the composite is that of the best MAX_CANDIDATES by
    quality (fallback quality for the fill; of equals, the later), to the bit; the slots never
    pass MAX_CANDIDATES."""
    rng = np.random.default_rng(3)
    shape = (40, 60)
    scenes = list(make(rng, 3 * MAX_CANDIDATES, shape))
    whole = [_whole(s, shape) for s in scenes]
    comp = compositor("best", shape)
    for refl, valid, accepted, quality, at in scenes:
        comp.add(refl, valid, accepted, quality, at)
    got = comp.result()
    top_accepted, top_rejected = _top(whole)
    assert top_accepted.sum(axis=0).max() == MAX_CANDIDATES == top_rejected.sum(axis=0).max()
    subset = [(r, a, j, q) for (r, _, _, q), a, j in zip(whole, top_accepted, top_rejected,
                                                          strict=True)]  # fmt: skip
    for name, a in zip(("reflectance", "valid", "filled"), _reference_best(subset, shape),
                       strict=True):  # fmt: skip
        assert np.array_equal(getattr(got, name), a), name
    assert _slots(comp.candidates) == _slots(comp.rejected) == MAX_CANDIDATES


def _slots(candidates):
    """The most slots of any band."""
    return max(q.shape[2] for q in candidates.quality)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_memory_grows_with_the_dates_up_to_max_candidates_only(method):
    """Slots are added as a band's pixels need them: three dates hold three; 4 x MAX_CANDIDATES
    hold MAX_CANDIDATES (accepted, for the methods that rank them, and rejected for the fill);
    a band no scene reaches holds none."""
    shape = (BAND_PX // 10 + 4, 10)  # two bands
    comp = compositor(method, shape)
    at = (slice(0, 8), slice(None))
    half = np.zeros((8, 10), bool)
    half[:, :5] = True
    for i in range(4 * MAX_CANDIDATES):
        refl = np.full((3, 8, 10), 0.05 + 1e-3 * i, np.float32)
        comp.add(refl, np.ones((8, 10), bool), half, np.full((8, 10), 0.5, np.float32), at)
        stores = [comp.rejected] + ([comp.candidates] if hasattr(comp, "candidates") else [])
        for store in stores:
            assert [q.shape[2] for q in store.quality] == [min(i + 1, MAX_CANDIDATES), 0]
    made = comp.result()
    assert made.valid[at].all() and not made.valid[8:].any()
