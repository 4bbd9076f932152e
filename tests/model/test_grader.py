"""The `auto` grader: per-image parameters, highlights kept, haze removed, local contrast."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from basemap.model.grader import apply_params, detail, fit_params, grade
from basemap.model.metrics import ciede2000, srgb_to_lab

RKH = Path("tests/data/real-s2/29RKH")
BEN = Path("model/data/bigearthnet")


def _read(paths):
    dn = np.stack([rasterio.open(p).read(1) for p in paths]).astype(np.float32)
    valid = (dn > 0).all(axis=0)
    return np.where(valid, dn / 10000, 0).astype(np.float32), valid


def _ben(name):
    d = BEN / name
    return _read([d / f"{name}_{b}.tif" for b in ("B04", "B03", "B02")])


@pytest.fixture(scope="module")
def desert():
    return _read([RKH / f"{b}.tif" for b in ("B04", "B03", "B02")])


def test_parameters_vary_with_content(desert):
    forest = _ben("S2B_MSIL2A_20170924T93020_69_24")  # dark Finnish conifers and water
    snow = _ben("S2B_MSIL2A_20180204T94161_57_38")  # bright snow-covered fields
    p = [fit_params(*img) for img in (desert, forest, snow)]
    whites = [max(q.white) for q in p]
    # Dark forest gets a far lower white point than snow (reflectance ~0.07 vs ~0.9).
    assert whites[1] < 0.2 < 0.8 < whites[2], whites
    assert len({round(q.gamma, 2) for q in p}) == 3
    assert len({round(q.black[2], 3) for q in p}) == 3


def test_highlights_are_not_clipped(desert):
    snow = _ben("S2B_MSIL2A_20180204T94161_57_38")
    for refl, valid in (desert, snow):
        rgb, _ = grade(refl, valid)
        blown = (rgb[:, valid] == 255).any(axis=0).mean()
        # Roll-off: the brightest valid pixels land at <= 250, so (almost) nothing is blown.
        assert blown < 0.001, blown
        # ...and the image still uses its range (not a grey wash): p99 above 200.
        assert np.percentile(rgb[:, valid].max(axis=0), 99) > 200


def test_dark_object_subtraction_removes_a_blue_haze():
    refl, valid = _ben("S2A_MSIL2A_20170613T101031_87_48")
    hazy = refl + np.array([0.02, 0.03, 0.05], np.float32)[:, None, None] * valid
    clean_rgb, _ = grade(refl, valid)
    hazy_rgb, p = grade(hazy, valid)
    assert p.black[2] - p.black[0] > 0.02  # the black point is per channel
    de = ciede2000(srgb_to_lab(clean_rgb[:, valid]), srgb_to_lab(hazy_rgb[:, valid]))
    # Luminance-only levels would leave a blue cast (mean dE00 > 10 measured); per-channel black
    # points bring the hazy image back within a few units of the clean one.
    assert de.mean() < 4, de.mean()


def test_clouds_do_not_steer_the_statistics():
    refl, valid = _ben("S2A_MSIL2A_20170617T113321_36_85")
    cloudy = refl.copy()
    cloudy[:, :40] = 0.6  # a white cloud bank over a third of the image
    clear = np.ones_like(valid)
    clear[:40] = False
    p_clear = fit_params(refl, valid)
    p_cloudy = fit_params(cloudy, valid, clear)
    np.testing.assert_allclose(p_cloudy.black, p_clear.black, atol=0.005)
    rgb = apply_params(cloudy, valid, p_cloudy)
    assert rgb[:, :40].max() < 255  # the cloud rolls off instead of clipping


def test_local_contrast_is_translation_invariant():
    """The clarity detail layer shifts with the ground (a window-local model can learn it)."""
    rng = np.random.default_rng(0)
    y = 0.45 + 0.05 * rng.random((200, 200))
    valid = np.ones_like(y, bool)
    d = detail(y, valid)
    d_shift = detail(np.roll(y, (17, 29), axis=(0, 1)), valid)
    inner = np.s_[60:140, 60:140]  # far (> 3 sigma) from the borders and the wrap-around seam
    np.testing.assert_allclose(np.roll(d, (17, 29), axis=(0, 1))[inner], d_shift[inner], atol=1e-5)
    assert abs(d[inner].mean()) < 0.005  # a detail layer: no change of the local mean
    assert detail(np.full((50, 50), 0.3), np.ones((50, 50), bool)).max() < 1e-5  # flat: nothing
