"""The training run's pictures: loss curves and validation samples (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import torch
from basemap.model.unet import Normalization, ResUNet


def plot_history(history: list[dict], path: Path) -> None:
    """Training and validation loss per epoch -> PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(epochs, [h["train"]["total"] for h in history], label="train")
    ax[0].plot(epochs, [h["val"]["total"] for h in history], label="validation")
    ax[0].set(xlabel="epoch", ylabel="loss", yscale="log", title="total loss")
    ax[0].legend()
    ax[1].plot(epochs, [h["val"]["mae_dn"] for h in history], color="C2")
    ax[1].set(xlabel="epoch", ylabel="8-bit DN", title="validation MAE")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@torch.no_grad()
def plot_samples(model: ResUNet, val: tuple[torch.Tensor, ...], normalization: Normalization,
                 path: Path, n: int = 4) -> None:
    """A grid of validation crops: input (asinh-scaled) / target / output -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, m = (t[:n].cpu() for t in val)
    model = model.eval().cpu()
    shown = normalization.apply(x)
    pred = model(shown) * m
    fig, axes = plt.subplots(len(x), 3, figsize=(7.5, 2.5 * len(x)), squeeze=False)
    for i in range(len(x)):
        for j, (img, title) in enumerate(((shown[i], "input (asinh)"), (y[i], "target"),
                                          (pred[i], "output"))):  # fmt: skip
            axes[i, j].imshow(img.clamp(0, 1).permute(1, 2, 0).numpy())
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
