"""VGG-19 `features` in plain torch, with torchvision's exact layer layout and state-dict keys.

torchvision cannot be imported beside this project's torch, and ImageNet weights cannot be
downloaded at run time, so the feature loss builds the same ``nn.Sequential`` torchvision builds
(``features.0.weight`` ... ``features.34.bias``) and loads a local torchvision-format file
(``vgg19-dcbb9e9d.pth``; the classifier keys in it are ignored).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from basemap.errors import ConfigError

#: torchvision's configuration "E" (VGG-19): channels, "M" = max-pool.
CFG_E = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M")  # fmt: skip
#: The file name torchvision's model zoo gives the ImageNet weights.
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
#: Indices in `features` of relu1_2, relu2_2, relu3_4 (the feature maps compared by default).
DEFAULT_LAYERS = (3, 8, 17)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """The convolutional part of VGG-19, frozen, returning the maps after ``layers``."""

    def __init__(self, layers: tuple[int, ...] = DEFAULT_LAYERS) -> None:
        super().__init__()
        seq: list[nn.Module] = []
        cin = 3
        for v in CFG_E:
            if v == "M":
                seq.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                seq += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.layers = tuple(sorted(layers))
        # Only the layers up to the deepest one used are kept (same indices, so same keys).
        self.features = nn.Sequential(*seq[: self.layers[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """RGB in [0, 1] (N, 3, H, W) -> the feature maps at ``self.layers``."""
        h = (rgb - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.layers:
                out.append(h)
        return out

    def load_torchvision(self, path: str | Path) -> VGG19Features:
        """Load the `features.*` tensors of a torchvision VGG-19 state-dict file.

        Raises:
            ConfigError: unreadable file, or tensors that are not VGG-19's.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"cannot read VGG-19 weights {path}: {exc}") from None
        if not isinstance(state, dict):
            raise ConfigError(f"{path} is not a state dict of torchvision's vgg19")
        want = self.state_dict()
        sub = {k: v for k, v in state.items() if k in want}
        bad = [k for k in want if k not in sub or tuple(sub[k].shape) != tuple(want[k].shape)]
        if bad:
            raise ConfigError(
                f"{path} does not hold torchvision VGG-19 `features` tensors (missing or "
                f"mis-shaped: {bad[:4]}); expected the file {TORCHVISION_FILE}"
            )
        self.load_state_dict(sub)
        return self


def hub_cache_file() -> Path:
    """Where torch hub keeps torchvision's VGG-19 weights (under $TORCH_HOME, else
    ~/.cache/torch: :func:`torch.hub.get_dir`)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def find_vgg_weights(path: str | Path | None) -> Path | None:
    """The VGG-19 weights to use: `path` if given (must exist), else the hub cache file if present.

    Raises:
        ConfigError: `path` was given but does not exist.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--vgg-weights {p}: no such file")
        return p
    cached = hub_cache_file()
    return cached if cached.is_file() else None
