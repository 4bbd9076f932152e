"""Compositing: SCL masks, feather weights independent of the crop, the three methods."""

import numpy as np

from basemap.composite import Method, feather_weights, observation_mask, required_padding


def test_scl_rejects_clouds_shadows_nodata():
    scl = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], np.uint8)
    valid = np.ones(scl.shape, bool)
    assert observation_mask(valid, scl).tolist() == [
        [False, False, True, False, True, True], [True, True, False, False, False, True]]
    assert not observation_mask(np.zeros(scl.shape, bool), scl).any()


def test_feather_weights_do_not_depend_on_the_crop():
    rng = np.random.default_rng(0)
    obs = rng.random((300, 300)) > 0.002  # scattered holes
    obs[:, 200:] = False                   # and a scene edge
    f = 20
    full = feather_weights(obs, f)
    pad = required_padding(f)
    y0, x0, y1, x1 = 90, 150, 160, 230     # any crop, computed with its padding
    crop = feather_weights(obs[y0 - pad:y1 + pad, x0 - pad:x1 + pad], f)[pad:-pad, pad:-pad]
    assert np.array_equal(crop, full[y0:y1, x0:x1])  # exact: capped EDT on a padded region
    assert full[:, 199].max() <= 1 / f + 1e-6 and (full == 1.0).any()  # ramps to the edge


def test_methods():
    a = np.full((3, 4, 4), 0.1, np.float32)
    b = np.full((3, 4, 4), 0.3, np.float32)
    obs_a = np.ones((4, 4), bool)
    obs_b = np.zeros((4, 4), bool)
    obs_b[:, 2:] = True
    for method, right in (("mean", 0.2), ("median", 0.2), ("first", 0.1)):
        comp = Method(method).compositor((4, 4), 0)
        comp.add(a, obs_a)
        comp.add(b, obs_b)
        out, valid = comp.result()
        assert valid.all()
        np.testing.assert_allclose(out[:, :, :2], 0.1, atol=1e-6)  # float32 sums: 1e-6
        np.testing.assert_allclose(out[:, :, 2:], right, atol=1e-6)
    comp = Method.MEAN.compositor((4, 4), 8)
    comp.add(a, np.zeros((4, 4), bool))
    out, valid = comp.result()
    assert not valid.any() and not out.any()  # no observation: invalid, zero (never NaN)
