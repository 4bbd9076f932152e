"""`basemap build` and `basemap demo`: seamless COGs and XYZ tiles from Sentinel-2 L2A."""

from __future__ import annotations

from pathlib import Path

import click

from basemap.cli.options import (
    BBOX,
    ZOOM,
    build_options,
    finish,
    read_query,
    selection_options,
    settings,
)
from basemap.errors import InputError
from basemap.pipeline.build import build as run_build
from basemap.progress import shown
from basemap.stac.query import Query
from basemap.synth.tiles import world_bbox
from basemap.synth.world import make_world
from basemap.types import BBox, ZoomRange


@click.command()
@click.option("--bbox", type=BBOX, required=True, help="W,S,E,N in degrees (W > E crosses 180).")
@click.option("--zoom", type=ZOOM, default="0-14", show_default=True, help="MIN-MAX zoom levels.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (COGs, tiles, tilejson.json, mosaic.vrt, build.json).")
@click.option("--stac", "source", default=None, metavar="SOURCE",
              help="STAC API URL or static catalog / ItemCollection JSON: Earth Search, "
              "Planetary Computer, CDSE or your own (docs/sources.md) "
              "[default: Earth Search v1, collection sentinel-2-c1-l2a].")
@click.option("--collection", default=None, help="Collection id [default with Earth Search: "
              "sentinel-2-c1-l2a; with another source: its Sentinel-2 L2A items of one "
              "collection].")
@selection_options
@build_options()
def build(bbox: BBox, zoom: ZoomRange, out: str, source: str | None, collection: str | None,
          datetime_: str | None, max_cloud: float | None, max_items: int | None,
          months: str | None, read_roots: tuple[str, ...], renderer: str, model_path: str | None,
          tile_format: str, composite: str, feather: int, block_size: int, window: int,
          overlap: int, workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Build seamless 8-bit COGs and XYZ tiles for a bbox from Sentinel-2 L2A (a Dask graph).

    \b
    Archives (docs/sources.md has the details):
      Earth Search (default): nothing to set; s3:// hrefs are read anonymously
      Planetary Computer: --stac https://planetarycomputer.microsoft.com/api/stac/v1
        --collection sentinel-2-l2a; hrefs are signed at read time (BASEMAP_PC_SAS_URL)
      CDSE: --stac https://stac.dataspace.copernicus.eu/v1 --collection sentinel-2-l2a;
        set CDSE_S3_ACCESS_KEY and CDSE_S3_SECRET_KEY (CDSE_S3_ENDPOINT)

    Without --datetime/--max-cloud/--max-items a build reads the 8 clearest items per MGRS
    tile with <= 70 % cloud of the last 12 complete months (printed, and kept in build.json).
    """
    chosen = settings(renderer, model_path, tile_format, composite, feather, block_size, window,
                      overlap)
    query = read_query(source, collection, datetime_, max_cloud, max_items, months, read_roots)
    summary = run_build(bbox, zoom, out, chosen, query, workers=workers, scheduler=scheduler,
                        progress=shown(not quiet))
    finish(summary)


@click.command()
@click.argument("out", type=click.Path(file_okay=False), default="out/demo")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the synthetic world.")
@click.option("--zoom", type=ZOOM, default="0-14", show_default=True, help="MIN-MAX zoom levels.")
@build_options()
def demo(out: str, seed: int, zoom: ZoomRange, renderer: str, model_path: str | None,
         tile_format: str, composite: str, feather: int, block_size: int, window: int,
         overlap: int, workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Offline demo: make the synthetic world in OUT/world (once), build it into OUT/build."""
    if not out.strip():
        raise InputError("OUT is empty: name a folder for the demo, e.g. out/demo")
    chosen = settings(renderer, model_path, tile_format, composite, feather, block_size, window,
                      overlap)
    catalog = Path(out, "world", "catalog.json")
    if not catalog.is_file():
        click.echo(f"Making the synthetic world in {catalog.parent} (seed {seed}) ...")
        catalog = make_world(Path(out, "world"), seed=seed, preset="demo",
                             progress=shown(not quiet))
    summary = run_build(world_bbox("demo"), zoom, str(Path(out, "build")), chosen,
                        Query(str(catalog)), workers=workers, scheduler=scheduler,
                        progress=shown(not quiet))
    finish(summary)
