"""`basemap tiles` (any 8-bit raster) and `basemap pmtiles` (one archive of a pyramid)."""

from __future__ import annotations

from pathlib import Path

import click

from basemap import config
from basemap.cli.options import ZOOM, tile_format_option
from basemap.errors import InputError
from basemap.grid import check_block_size
from basemap.output.layers import find_layers
from basemap.output.pmtiles import write_pmtiles
from basemap.progress import Bars, shown
from basemap.tools.tile_raster import RESAMPLINGS, make_tiles
from basemap.types import ZoomRange


@click.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--zoom", type=ZOOM, default="0-14", show_default=True, help="MIN-MAX zoom levels.")
@tile_format_option("png", "Tile encoding.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker threads [default: CPU count; 0 = in this thread].")
@click.option("--block-size", type=int, default=config.BLOCK_SIZE, show_default=True,
              help="Pixels per block side at the max zoom (256 times a power of two).")
@click.option("--resampling", type=click.Choice(RESAMPLINGS), default="bilinear",
              show_default=True,
              help="Warp kernel into the global grid.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def tiles(src: str, out: str, zoom: ZoomRange, tile_format: str, workers: int | None,
          block_size: int, resampling: str, quiet: bool) -> None:
    """XYZ tiles (OUT/tiles/{z}/{x}/{y}) of any 8-bit raster, with the build's pyramid code."""
    check_block_size(block_size)
    summary = make_tiles(src, out, zoom.min, zoom.max, tile_format, workers, block_size,
                         resampling, progress=shown(not quiet))
    click.echo(summary.text())


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Archive to write (default: OUT/basemap.pmtiles, one per tile set: "
              "OUT/<folder>/basemap.pmtiles).")
def pmtiles(out: str, output: str | None) -> None:
    """Pack OUT's XYZ pyramid into one PMTiles archive (tiles copied byte for byte)."""
    tilesets, _ = find_layers(out)
    if output is not None and len(tilesets) > 1:
        raise InputError(f"{out} holds {len(tilesets)} tile sets; --output needs exactly one "
                         "(point OUT at one of: " + ", ".join(str(t.root) for t in tilesets) + ")")
    for ts in tilesets:
        info = write_pmtiles(ts, Path(output) if output else ts.root / "basemap.pmtiles",
                             Bars())
        click.echo(f"Wrote {info.path}: {info.tiles} tiles, z{info.minzoom}-{info.maxzoom}, "
                   f"{info.path.stat().st_size / 1e6:.1f} MB")
