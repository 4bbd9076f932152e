"""The U-Net's tone prior: the grader's per-pixel curve in torch, and the network built on it."""

import numpy as np
import torch
from basemap.model.training import grader
from basemap.model.unet import Normalization, ResUNet, UNetConfig, neutral_grade
from basemap.model.weights import load_weights, save_weights


def _reflectance(seed=0, size=48):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0, 0.9, (3, size, size)).astype(np.float32)
    r[:, :6] = rng.uniform(0, 0.01, (3, 6, size))  # water and shadow
    r[:, -6:] = rng.uniform(0.8, 1.4, (3, 6, size))  # cloud and snow, into the roll-off
    return r


def test_neutral_grade_is_the_graders_curve(monkeypatch):
    """Equal to apply_params with no haze, unit gain and no clarity, within its 8-bit rounding."""
    monkeypatch.setattr(grader, "CLARITY", 0.0)
    r = _reflectance()
    valid = np.ones(r.shape[1:], bool)
    ref = grader.apply_params(r, valid, grader.GradeParams(haze=0.0, gain=1.0)).astype(np.float64)
    got = neutral_grade(torch.from_numpy(r)[None])[0].double().numpy() * 255
    assert np.abs(got - ref).max() <= 0.5 + 1e-6


def test_an_untrained_prior_network_is_the_neutral_grade_and_survives_a_round_trip(tmp_path):
    norm = Normalization()
    net = ResUNet(UNetConfig(base=8, levels=3, tone_prior=True), norm).eval()
    x = norm.apply(torch.from_numpy(_reflectance(1, 32))[None])
    prior = neutral_grade(norm.invert(x))
    with torch.no_grad():
        assert torch.allclose(net(x), prior, atol=1e-5)
        torch.nn.init.normal_(net.head.weight, std=0.1)
        before = net(x)
    assert (before - prior).abs().max() > 1e-3  # the head corrects the prior
    path = save_weights(tmp_path / "prior.pt", net, norm)
    loaded, _, _ = load_weights(path)
    assert loaded.config.tone_prior
    with torch.no_grad():
        assert torch.allclose(loaded(x), before, atol=1e-6)


def test_the_inverse_normalisation_recovers_reflectance():
    norm = Normalization()
    r = torch.from_numpy(_reflectance(2, 16)).clamp(norm.clip_low, norm.clip_high)
    assert torch.allclose(norm.invert(norm.apply(r)), r, atol=1e-5)
