"""The `auto` grader v2: physics kept (neutral, deserts bright), haze removed, highlights kept."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from basemap.model.training.grader import (
    HAZE_SHAPE,
    GradeParams,
    apply_params,
    detail,
    fit_params,
    grade,
)

from basemap.colour import ciede2000, srgb_to_lab

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


def test_desert_is_bright_unclipped_and_not_mistaken_for_haze(desert):
    rgb, p = grade(*desert)
    valid = desert[1]
    assert p.haze == 0.0  # bright ground without dark objects has no blue excess
    lab = srgb_to_lab(rgb[:, valid])
    assert lab[0].mean() > 65, lab[0].mean()  # desert reads bright (L2A-Optimized: 78)
    assert (rgb[:, valid] == 255).any(axis=0).mean() < 0.001


def test_farmland_midtones_are_bright_enough():
    """Vegetated land lands at mean L* in the 40s-50s, as in the best public basemaps."""
    for name in ("S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170617T113321_4_55"):
        refl, valid = _ben(name)
        rgb, _ = grade(refl, valid)
        mean_l = srgb_to_lab(rgb[:, valid])[0].mean()
        assert 40 <= mean_l <= 58, (name, mean_l)


def test_snow_rolls_off_instead_of_clipping():
    refl, valid = _ben("S2B_MSIL2A_20180204T94161_57_38")
    rgb, _ = grade(refl, valid)
    assert (rgb[:, valid] == 255).any(axis=0).mean() < 0.001
    assert np.percentile(rgb[:, valid].max(axis=0), 99) > 220  # and still white, not grey


def test_white_balance_is_neutral():
    """Equal reflectance in B04, B03, B02 (a grey roof, a cloud) stays grey at every level."""
    ramp = np.linspace(0.02, 0.9, 64, dtype=np.float32)
    refl = np.broadcast_to(ramp[None, None, :], (3, 8, 64)).copy()
    valid = np.ones((8, 64), bool)
    lab = srgb_to_lab(apply_params(refl, valid, GradeParams(haze=0.0, gain=1.0)))
    assert np.abs(lab[1:]).max() < 1.0


def test_haze_is_estimated_and_removed():
    refl, valid = _ben("S2A_MSIL2A_20170613T101031_87_48")
    clean_rgb, clean = grade(refl, valid)
    haze = 0.04 * np.asarray(HAZE_SHAPE, np.float32)[:, None, None]
    hazy_rgb, p = grade(refl + haze * valid, valid)
    assert p.haze - clean.haze == pytest.approx(0.04, abs=0.005)
    de = ciede2000(srgb_to_lab(clean_rgb[:, valid]), srgb_to_lab(hazy_rgb[:, valid]))
    # Without the per-channel black point the hazy grade is a blue wash (mean dE00 > 10).
    assert de.mean() < 3, de.mean()


def test_clouds_do_not_steer_the_statistics():
    refl, valid = _ben("S2A_MSIL2A_20170617T113321_36_85")
    cloudy = refl.copy()
    cloudy[:, :40] = 0.6  # a white cloud bank over a third of the image
    clear = np.ones_like(valid)
    clear[:40] = False
    p_clear = fit_params(refl, valid)
    p_cloudy = fit_params(cloudy, valid, clear)
    assert p_cloudy.haze == pytest.approx(p_clear.haze, abs=0.005)
    assert p_cloudy.gain == pytest.approx(p_clear.gain, rel=0.05)
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
