"""`basemap synth`: the synthetic Sentinel-2 L2A world."""

from __future__ import annotations

from pathlib import Path

import click

from basemap.progress import shown
from basemap.synth.layout import PRESETS
from basemap.synth.tiles import world_bbox
from basemap.synth.world import make_world


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="World seed; the same seed writes the same bytes.")
@click.option("--preset", type=click.Choice(tuple(PRESETS)), default="test", show_default=True,
              help="test: 4 tiles of 3 km, 2 dates (seconds); demo: 4 tiles of 18 km, 3 dates.")
def synth(out: str, seed: int, preset: str) -> None:
    """Write a synthetic Sentinel-2 L2A world (COGs + static STAC catalog) into OUT.

    Prints the catalog path and a WGS84 bbox well inside the covered area.
    """
    catalog = make_world(Path(out), seed=seed, preset=preset, progress=shown(preset != "test"))
    click.echo(f"catalog: {catalog}")
    click.echo(f"bbox: {world_bbox(preset)}")
