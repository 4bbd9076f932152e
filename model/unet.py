"""A small residual U-Net: 16-bit RGB reflectance in, 8-bit RGB out.

Window-local and deterministic (docs/design.md, invariant 3): convolutions, BatchNorm (eval mode at
inference), max-pooling and transposed convolutions only -- no instance/group/layer norm over
space, no global pooling, nothing computed from the window's own statistics. The input
normalisation is a fixed function of reflectance (clip, asinh) whose constants are stored with the
weights (:class:`Normalization`), so the network sees the same numbers wherever it runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from basemap.model import tone
from torch import nn

from basemap.colour import REC709


@dataclass(frozen=True)
class Normalization:
    """Reflectance -> network input: ``asinh(clip(r, lo, hi) / softening) / asinh(hi / softening)``.

    asinh is linear for dark pixels (water, forest) and logarithmic for bright ones (snow, desert,
    cloud), so both keep their detail in a few network units.
    """

    clip_low: float = 0.0
    clip_high: float = 1.5
    softening: float = 0.02

    def apply(self, reflectance: torch.Tensor) -> torch.Tensor:
        """Normalise a (..., 3, H, W) float tensor of reflectance."""
        r = reflectance.clamp(self.clip_low, self.clip_high)
        return torch.asinh(r / self.softening) / float(np.arcsinh(self.clip_high / self.softening))

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input -> the (clipped) reflectance it encodes (sinh spelt out for ONNX)."""
        a = x * float(np.arcsinh(self.clip_high / self.softening))
        return (torch.exp(a) - torch.exp(-a)) * (0.5 * self.softening)

    def to_dict(self) -> dict:
        """Plain-dict form stored in the weights file."""
        return asdict(self)


_LUMA = torch.tensor(REC709).view(1, 3, 1, 1)


def saturate(linear: torch.Tensor) -> torch.Tensor:
    """:func:`basemap.colour.saturate` by SATURATION in torch, (N, 3, H, W) linear light."""
    y = (linear * _LUMA.to(linear)).sum(dim=1, keepdim=True)
    d = linear - y
    room = y / (-d).amax(dim=1, keepdim=True).clamp(min=1e-12)
    return y + room.clamp(min=1.0, max=tone.SATURATION) * d


def neutral_grade(reflectance: torch.Tensor) -> torch.Tensor:
    """The auto grader's per-pixel part in torch: (N, 3, H, W) reflectance -> display [0, 1].

    :func:`basemap.model.training.grader.apply_params` with no haze, unit gain and no clarity
    (the constants of :mod:`basemap.model.tone`: exposure, saturation, roll-off, sRGB, floor and
    ceiling); tests/model/test_unet.py holds the two equal.
    Written with min/max instead of selections (one pass over memory each in the exported graph):
    the saturation room ``min over channels below luminance of y / -d`` is ``y / max(-d)``, as
    the luminance-weighted deviations sum to zero, and the roll-off is the identity below the
    knee plus a tanh of what exceeds it.
    """
    lin = saturate(reflectance.clamp(min=0) * tone.EXPOSURE)
    knee, span = tone.KNEE, 1 - tone.KNEE
    lin = lin.clamp(min=0, max=knee) + span * torch.tanh((lin - knee).clamp(min=0) / span)
    srgb = torch.where(lin <= 0.0031308, 12.92 * lin,
                       1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)  # fmt: skip
    return tone.FLOOR + (tone.TOP - tone.FLOOR) * srgb.clamp(0, 1)


@dataclass(frozen=True)
class UNetConfig:
    """Architecture hyper-parameters, stored with the weights; the defaults are the shipped
    weights' (``basemap.model.training.recipe.RECIPE``).

    Attributes:
        base: channels of the first level; level i has ``base * 2**i``.
        levels: resolution levels (``levels - 1`` poolings, so sizes must be multiples of
            :attr:`factor`).
        blocks: residual blocks per level and side.
        tone_prior: the output is a correction, in logit space, of :func:`neutral_grade` of the
            input (the network learns the per-scene and local part of the grading only).
    """

    base: int = 8
    levels: int = 5
    blocks: int = 1
    in_channels: int = 3
    out_channels: int = 3
    tone_prior: bool = True

    @property
    def factor(self) -> int:
        """The downsampling factor: window sides must be a multiple of it."""
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict:
        """Plain-dict form stored in the weights file."""
        return asdict(self)


class ResBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a (1x1 projected) skip, then ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.skip(x))


def _stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(cin if i == 0 else cout, cout) for i in range(blocks)])


class ResUNet(nn.Module):
    """Residual U-Net mapping normalised reflectance (N, 3, H, W) to RGB in [0, 1].

    The output is ``sigmoid(head(features) + skip(x))``: a learned per-pixel 1x1 mapping of the
    input (the global tone curve's first-order part) plus the U-Net's local correction. With
    ``config.tone_prior`` it is ``sigmoid(logit(neutral_grade(r)) + head + skip)``, ``r`` the
    reflectance x encodes under `normalization`; head and skip start at zero, so an untrained
    network is the neutral grade.
    """

    def __init__(self, config: UNetConfig | None = None,
                 normalization: Normalization | None = None) -> None:
        super().__init__()
        self.config = config = config or UNetConfig()
        self.normalization = normalization or Normalization()
        widths = [config.base * 2**i for i in range(config.levels)]
        self.stem = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        for i, w in enumerate(widths):
            self.down.append(_stage(widths[i - 1] if i else widths[0], w, config.blocks))
        self.pool = nn.MaxPool2d(2)
        self.upconv = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(config.levels - 1)):
            self.upconv.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            self.up.append(_stage(2 * widths[i], widths[i], config.blocks))
        self.head = nn.Conv2d(widths[0], config.out_channels, 1)
        self.input_skip = nn.Conv2d(config.in_channels, config.out_channels, 1)
        if config.tone_prior:
            for layer in (self.head, self.input_skip):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised input to RGB in [0, 1]; H and W must be multiples of ``config.factor``."""
        f = self.config.factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of {f}")
        skips = []
        h = self.stem(x)
        for i, stage in enumerate(self.down):
            if i:
                h = self.pool(h)
            h = stage(h)
            skips.append(h)
        skips.pop()
        for upconv, stage in zip(self.upconv, self.up, strict=True):
            h = stage(torch.cat([upconv(h), skips.pop()], dim=1))
        logits = self.head(h) + self.input_skip(x)
        if self.config.tone_prior:
            p = neutral_grade(self.normalization.invert(x))
            logits = logits + torch.log(p / (1 - p))
        return torch.sigmoid(logits)


def fold_batchnorm(net: ResUNet) -> ResUNet:
    """An inference copy of ``net`` with every BatchNorm folded into the convolution before it.

    Eval-mode batch norm is a per-channel affine map, so ``bn(conv(x))`` is one convolution with
    scaled weights and a bias: same outputs up to float rounding, one pass over memory less per
    convolution (the small-channel convolutions here are memory bound on CPU).
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net).eval()
    for block in net.modules():
        if isinstance(block, ResBlock) and isinstance(block.bn1, nn.BatchNorm2d):
            block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
            block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
            block.bn1, block.bn2 = nn.Identity(), nn.Identity()
    return net
