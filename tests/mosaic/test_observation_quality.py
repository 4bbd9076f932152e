"""Observation quality: exact whatever the crop, the cloud buffer, haze (not desert or snow)."""

import numpy as np
import pytest

from basemap.mosaic.observation_quality import (
    CLOUD_BUFFER,
    CLOUD_RAMP,
    FALLBACK_FLOOR,
    HAZE_FLOOR,
    observation_quality,
    required_padding,
)


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
    assert np.array_equal(q_c[inner], q[y0:y1, x0:x1])  # exact: capped distances, padded crop
    assert np.array_equal(acc_c[inner], acc[y0:y1, x0:x1])
    assert q[:, 199].max() <= 1 / f + 1e-6  # ramps to 0 at the footprint edge
    # The cloud buffer dilates the shadow: rejected within CLOUD_BUFFER px of it.
    assert not acc[50 - CLOUD_BUFFER + 1 : 80 + CLOUD_BUFFER - 1, 70].any()


def test_cloud_buffer_ramp_and_fallback_quality_exactly():
    """Along a row leaving a cloud: the fallback quality inside it and in the buffer (rejected),
    then the accepted ramp (distances 0, 1, ..., all Euclidean along the row)."""
    refl = np.full((3, 80, 80), 0.05, np.float32)  # clear: HOT 0.025, haze score 1
    scl = np.full((80, 80), 4, np.uint8)
    scl[30:40, 30:40] = 9
    acc, q = observation_quality(refl, np.ones((80, 80), bool), scl, 0)
    row = 35
    assert not acc[row, 30:40].any() and np.allclose(q[row, 30:40], FALLBACK_FLOOR)
    for d in range(1, CLOUD_BUFFER + 1):  # the buffer: rejected, fallback rising to 1
        assert not acc[row, 39 + d]
        assert q[row, 39 + d] == pytest.approx(FALLBACK_FLOOR + (1 - FALLBACK_FLOOR) * d
                                               / CLOUD_BUFFER)  # fmt: skip
    for d in range(CLOUD_BUFFER + 1, CLOUD_BUFFER + 6):  # accepted, on the ramp
        assert acc[row, 39 + d]
        assert q[row, 39 + d] == pytest.approx((d - CLOUD_BUFFER) / CLOUD_RAMP)
    assert acc[row, 79] and q[row, 79] == 1


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
