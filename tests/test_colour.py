"""The colour maths: CIEDE2000 against the published test data, CIELAB, the sRGB transfer,
saturation and clipped pixels."""

import numpy as np
import pytest

from basemap.colour import (
    ciede2000,
    clipped_pct,
    lab_to_srgb,
    luminance,
    saturate,
    srgb_decode,
    srgb_encode,
    srgb_to_lab,
)

# Sharma, Wu & Dalal (2005), Table 1: the 34 CIEDE2000 test pairs (L1, a1, b1, L2, a2, b2, dE00).
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0012, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_ciede2000_matches_sharma_test_data():
    data = np.array(SHARMA)
    lab1, lab2, want = data[:, 0:3].T, data[:, 3:6].T, data[:, 6]
    got = ciede2000(lab1, lab2)
    # The table is printed to 4 decimals: agreement to 1e-4 is exact reproduction.
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Symmetric (the formula is, and the table lists both orders of pair 7/8).
    np.testing.assert_allclose(ciede2000(lab2, lab1), got, atol=1e-4)


def test_srgb_to_lab_reference_colours():
    rgb = np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0], [128, 128, 128]]).T
    lab = srgb_to_lab(rgb)
    # White is L=100 a=b=0; sRGB red is (53.24, 80.09, 67.20) (Lindbloom); 0.05 = rounding of
    # the published values and of the matrix.
    np.testing.assert_allclose(lab[:, 0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[:, 1], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[:, 2], [0, 0, 0], atol=0.05)
    assert abs(lab[1, 3]) < 0.01 and abs(lab[2, 3]) < 0.01  # a grey is achromatic


def test_the_srgb_transfer_round_trips_and_lab_inverts():
    encoded = np.linspace(0, 1, 257)
    np.testing.assert_allclose(srgb_encode(srgb_decode(encoded)), encoded, atol=1e-12)
    rgb = np.random.default_rng(0).integers(0, 256, (3, 64)).astype(np.float64)
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)) * 255, rgb, atol=1e-6)


def test_saturation_keeps_luminance_and_never_goes_below_zero():
    linear = np.random.default_rng(1).uniform(0, 1, (3, 32, 32))
    more = saturate(linear, 1.5)
    np.testing.assert_allclose(luminance(more), luminance(linear), atol=1e-12)
    assert more.min() >= -1e-12
    np.testing.assert_allclose(saturate(linear, 1.0), linear, atol=1e-12)


def test_clipped_pixels():
    rgb = np.full((3, 4, 5), 128, np.uint8)
    valid = np.ones((4, 5), bool)
    rgb[0, 0] = 255  # a blown row
    rgb[2, 1, :2] = 0  # two crushed pixels
    assert clipped_pct(rgb, valid) == pytest.approx(35.0)
    assert clipped_pct(rgb, np.zeros_like(valid)) == 0.0
