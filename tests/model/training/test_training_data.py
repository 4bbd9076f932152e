"""Training data: HED's VGG-16 features, simulated atmospheres, sampling weights, the corpus."""

import numpy as np
import pytest
import torch
from basemap.model.training import augment, corpus
from basemap.model.training.hed import load_hed
from basemap.model.training.pairs import Pair
from basemap.model.training.sampler import pair_weights


def test_hed_features_are_real_edge_detectors():
    """The shipped HED weights load: conv1 responds to an edge and not to a flat field."""
    net = load_hed()
    flat = torch.full((1, 3, 32, 32), 0.5)
    edge = flat.clone()
    edge[..., 16:] = 0.9
    f_flat, f_edge = net(flat), net(edge)
    assert [f.shape[1] for f in f_edge] == [64, 128, 256]
    centre = np.s_[:, :, 8:24, 8:24]
    step = (f_edge[0] - f_flat[0])[centre].abs().mean(dim=(0, 1))
    # The response concentrates on the edge columns (15-16), not the flat parts around it.
    assert step[:, 6:9].mean() > 5 * step[:, :4].mean()


def test_path_radiance_is_strongest_in_blue_and_clean_is_identity():
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.01, 0.4, (3, 16, 16)).astype(np.float32)
    valid = np.ones((16, 16), bool)
    valid[0] = False
    refl[:, 0] = 0
    clean = augment.Atmosphere().apply(refl, valid)
    np.testing.assert_allclose(clean, np.maximum(refl, 1e-4) * valid)
    for k in (1.0, 4.0):
        pr = augment.Atmosphere(haze=0.05, exponent=k).path_radiance()
        assert pr[2] == pytest.approx(0.05) and pr[0] < pr[1] < pr[2]
    hazy = augment.Atmosphere(haze=0.05).apply(refl, valid)
    assert (hazy[:, 0] == 0).all()  # nodata stays nodata
    assert (hazy[2, 1:] - refl[2, 1:]).mean() > (hazy[0, 1:] - refl[0, 1:]).mean() > 0


def test_random_atmospheres_stay_in_their_ranges():
    rng = np.random.default_rng(1)
    draws = [augment.random_atmosphere(rng) for _ in range(400)]
    clean = sum(a == augment.Atmosphere() for a in draws) / len(draws)
    assert abs(clean - augment.CLEAN_FRACTION) < 0.08
    assert all(0 <= a.haze <= augment.HAZE_MAX for a in draws)
    assert all(augment.GAIN[0] <= a.gain <= augment.GAIN[1] for a in draws)
    assert len(augment.evaluation_atmospheres()) >= 8


def test_haze_free_share_of_perturbed_atmospheres(monkeypatch):
    def hazy_share(rng):
        draws = [augment.random_atmosphere(rng) for _ in range(400)]
        perturbed = [a for a in draws if a != augment.Atmosphere()]
        return sum(a.haze > 0 for a in perturbed) / len(perturbed)

    assert hazy_share(np.random.default_rng(1)) == 1.0  # the recipe: haze in every perturbed crop
    monkeypatch.setattr(augment, "HAZE_FREE", 0.4)
    assert abs(hazy_share(np.random.default_rng(1)) - 0.6) < 0.08


def test_pair_weights_balance_groups_and_places():
    def pair(name, px):
        return Pair(name, np.zeros((3, 1, px)), np.ones((1, px), bool), np.zeros((3, 1, px)))

    pairs = [pair("synth/s1/a", 10_000), pair("synth/s1/b", 10_000),
             pair("real/x/a", 100), pair("real/y/a", 300), pair("real/y/b", 100)]
    w = pair_weights(pairs)
    assert w[:2].sum() == pytest.approx(0.5)  # synthetic and real weigh the same
    assert w[2] == pytest.approx(0.25) and w[3] == pytest.approx(0.1875)  # places alike, then area


def test_heldout_frames_keep_snow_desert_and_one_frame_per_series_quarter():
    from basemap.model.training.heldout import pick_frames

    frames = pick_frames(corpus.heldout_scenes())
    places = {s.place for s in frames}
    # the snow patch is 77 % "cloud" by the blue threshold, yet a place's only frame
    assert {"bigearthnet-57_38", "morocco-desert", "nsw-l1c"} <= places
    keys = [(s.place, s.name.split("_")[0], s.date[:4], (int(s.date[4:6]) - 1) // 3)
            for s in frames if s.place in ("puglia", "antwerp-port")]
    assert keys and len(keys) == len(set(keys))


def test_corpus_holds_out_whole_places():
    train = {s.place for s in corpus.train_scenes()}
    held = {s.place for s in corpus.heldout_scenes()}
    assert not train & held
    assert {"antwerp-port", "puglia", "nsw-l1c", "morocco-desert"} <= held
    levels = {s.level for s in corpus.heldout_scenes()}
    assert levels == {"L1C", "L2A"}
    t29 = [s for s in corpus.train_scenes() if "T29UNU" in s.name]
    assert t29 and t29[0].dn_offset == -1000.0 and t29[0].scl
