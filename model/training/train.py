"""Training: Adam on random crops of the pairs (:mod:`basemap.model.training.sampler`),
validation, checkpoints, plots.

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
from basemap.model.training.losses import ColorizationLoss, build_loss
from basemap.model.training.pairs import find_pairs, load_pair
from basemap.model.training.plots import plot_history, plot_samples
from basemap.model.training.sampler import CropSampler, split_pairs
from basemap.model.unet import Normalization, ResUNet, UNetConfig
from basemap.model.weights import load_weights, save_weights

from basemap.errors import ConfigError, InputError

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

    def to_dict(self) -> dict:
        """Plain-dict form stored in the checkpoint and the weights' meta (``trained_with``)."""
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d


def _paths(out: Path) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {
        "ckpt": Path(f"{stem}.ckpt"),
        "loss": Path(f"{stem}.loss.png"),
        "samples": Path(f"{stem}.samples.png"),
    }


def _lr_at(config: TrainConfig, step: int) -> float:
    """Cosine decay from lr to 5% of lr over the whole run."""
    total = max(1, config.epochs * config.steps_per_epoch)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))


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
        pairs_dir: folder of pairs (see :mod:`basemap.model.training.pairs`).
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
    pairs, val_pairs, sampler, val = _data(Path(pairs_dir), config, rng)
    model, opt, start_epoch, history, elapsed = _model_to_train(config, init, resume, rng, device)
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
        _checkpoint(files["ckpt"], config, model, opt, history, time.monotonic() - t0, rng)
    model.eval().cpu()
    wall = time.monotonic() - t0
    meta = _provenance(config, pairs, val_pairs, loss_fn, history, init, wall, device)
    save_weights(out, model, config.normalization, meta)
    plot_history(history, files["loss"])
    plot_samples(model, val, config.normalization, files["samples"])
    return {"history": history, "wall_s": wall, "weights": str(out),
            **{k: str(v) for k, v in files.items()}}  # fmt: skip


def _data(root: Path, config: TrainConfig, rng: np.random.Generator) -> tuple:
    """The pairs under `root`, the validation ones, the training crops' sampler and the fixed
    validation crops."""
    # Names keep their path under the root: pair_weights groups by it.
    pairs = [replace(load_pair(p), name=p.relative_to(root).as_posix()) for p in find_pairs(root)]
    train_pairs, val_pairs = split_pairs(pairs, config.val_fraction, config.seed)
    sampler = CropSampler(train_pairs, config.crop, rng, atmosphere=config.atmosphere)
    val_sampler = CropSampler(val_pairs, config.crop, np.random.default_rng(config.seed + 2))
    return pairs, val_pairs, sampler, val_sampler.batch(config.val_crops, augment=False)


def _model_to_train(config: TrainConfig, init: str | Path | None, resume: str | Path | None,
                    rng: np.random.Generator, device: str) -> tuple:
    """The model and optimizer to train: new, from the weights `init`, or where the checkpoint
    `resume` stopped; (model, optimizer, epochs done, history, elapsed seconds)."""
    model = ResUNet(config.arch, config.normalization).to(device)
    if init is not None:
        model.load_state_dict(_start_weights(init, config))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    if resume is None:
        return model, opt, 0, [], 0.0
    return model, opt, *_resume(resume, config, model, opt, rng, device)


def _provenance(config: TrainConfig, pairs: list, val_pairs: list, loss_fn: ColorizationLoss,
                history: list[dict], init: str | Path | None, wall: float,
                device: str) -> dict:  # fmt: skip
    """The weights' meta: configuration, pairs, feature network, history, start and time."""
    return {
        "trained_with": config.to_dict(),
        "pairs": sorted(p.name for p in pairs),
        "validation_pairs": sorted(p.name for p in val_pairs),
        "feature_loss": getattr(loss_fn, "feature_name", "custom") if config.lambdas[2] > 0
        else "off (lambda_f=0)",
        "history": history,
        "started_from": None if init is None else Path(init).name,
        "train_wall_s": round(wall, 1),
        "device": device,
    }


def _checkpoint(path: Path, config: TrainConfig, model: ResUNet, opt: torch.optim.Optimizer,
                history: list[dict], elapsed: float,
                rng: np.random.Generator) -> None:  # fmt: skip
    """Write the state a ``--resume`` continues from: after the last epoch of `history`."""
    torch.save({
        "config": config.to_dict(), "model": model.state_dict(),
        "optimizer": opt.state_dict(), "epoch": history[-1]["epoch"], "history": history,
        "elapsed": elapsed, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
    }, path)  # fmt: skip


def _resume(resume: str | Path, config: TrainConfig, model: ResUNet, opt: torch.optim.Optimizer,
            rng: np.random.Generator, device: str) -> tuple:
    """Load a checkpoint into the model, optimizer and random generators; (epochs done,
    history, elapsed seconds).

    Raises:
        ConfigError: the checkpoint was written with another configuration.
    """
    ck = torch.load(resume, map_location=device, weights_only=True)
    if ck["config"] != config.to_dict():
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


def _epoch(model: ResUNet, opt: torch.optim.Optimizer, sampler: CropSampler,
           loss_fn: ColorizationLoss, config: TrainConfig, epoch: int, device: str,
           progress: bool) -> dict[str, float]:  # fmt: skip
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
    net, norm, _ = load_weights(init)
    if net.config != config.arch or norm != config.normalization:
        raise ConfigError(f"{init} has another architecture or normalisation "
                          f"({net.config}, {norm}) than this run ({config.arch})")  # fmt: skip
    return net.state_dict()


@torch.no_grad()
def evaluate(model: ResUNet, loss_fn: ColorizationLoss, val: tuple[torch.Tensor, ...],
             normalization: Normalization, device: str) -> dict[str, float]:
    """Loss terms and MAE in 8-bit DN on the fixed validation crops (eval mode)."""
    was_training = model.training
    model.eval()
    x, y, m = (t.to(device) for t in val)
    pred = torch.cat([model(normalization.apply(xb)) for xb in x.split(8)])
    _, parts = loss_fn(pred, y, m)
    parts["mae_dn"] = parts["mae"] * 255.0
    model.train(was_training)
    return parts
