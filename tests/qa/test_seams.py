"""The seam-excess measure on synthetic images, with and without injected steps."""

import numpy as np

from basemap.qa.seams import boundary_steps, luminance, seam_excess


def _texture(h=512, w=512, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(120, 20, (h, w)).cumsum(axis=1) * 0.02 + rng.normal(0, 15, (h, w))
    img = np.clip(base - base.mean() + 128, 0, 255)
    return np.repeat(img[None], 3, axis=0).astype(np.uint8)


def test_no_step_means_no_excess():
    img = _texture()
    # a seam-free image: the family is a random set of columns; its excess exceeds 1 only
    # by chance (the 95th percentile); 1.2 leaves room for that noise on a 512-px image
    assert seam_excess(img, None, period=64, phase=0) < 1.2


def test_injected_step_is_seen():
    img = _texture().astype(int)
    for x0 in range(0, 512, 64):  # brighten alternate 32-px bands: steps at phases 0 and 32
        img[:, :, x0 + 32 : x0 + 64] += 6
    img = np.clip(img, 0, 255).astype(np.uint8)
    assert seam_excess(img, None, period=64, phase=32) > 1.5
    assert seam_excess(img, None, period=64, phase=0) > 1.5
    assert seam_excess(img, None, period=64, phase=16) < 1.2


def test_origin_shifts_the_phase_and_alpha_masks():
    img = _texture().astype(int)
    img[:, :, 100:] += 8  # one step between columns 99 and 100 (global 1099 | 1100)
    img = np.clip(img, 0, 255).astype(np.uint8)
    assert seam_excess(img, None, period=100, phase=0, origin=(1000, 0)) > 1.5
    alpha = np.ones(img.shape[1:], bool)
    alpha[:, 95:105] = False  # the step is masked out: no longer measured
    assert seam_excess(img, alpha, period=100, phase=0, origin=(1000, 0)) < 1.2


def test_boundary_steps_signed_mean():
    lum = luminance(np.zeros((3, 128, 4), np.uint8))
    lum[:, 2:] = 10.0
    steps = boundary_steps(lum, np.ones(lum.shape, bool))
    assert steps.tolist() == [0.0, 10.0, 0.0]
