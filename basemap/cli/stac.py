"""`basemap search`: which Sentinel-2 items a build would use."""

from __future__ import annotations

import json

import click

from basemap.cli.options import BBOX, default_source
from basemap.redact import redact_url
from basemap.stac.search import check_max_cloud, parse_datetime
from basemap.stac.search import search as stac_search
from basemap.stac.sources import one_collection, one_per_acquisition
from basemap.types import BBox


@click.command()
@click.option(
    "--stac",
    "source",
    default=None,
    metavar="SOURCE",
    help="STAC API URL, or a static catalog / ItemCollection / item JSON. "
    "Default: Earth Search v1 (https://earth-search.aws.element84.com/v1, sentinel-2-c1-l2a).",
)
@click.option("--bbox", type=BBOX, required=True, help="W,S,E,N in degrees (W > E crosses 180).")
@click.option("--datetime", "datetime_", default=None, metavar="A/B",
              help="STAC interval, e.g. 2024-06-01/2024-08-31 (open ends: ..).")
@click.option("--max-cloud", type=float, default=None, metavar="P",
              help="Keep items with eo:cloud_cover <= P percent.")
@click.option("--collection", default=None,
              help="Collection id (default: sentinel-2-c1-l2a with the default source; else the "
              "Sentinel-2 L2A items of one collection).")
@click.option("--read-root", "read_roots", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Allow the catalog's local hrefs under DIR too (repeatable; default: local "
              "files under a local catalog's own folder only).")
@click.option("--json", "as_json", is_flag=True, help="Print the scenes as JSON instead.")
def search(source: str | None, bbox: BBox, datetime_: str | None, max_cloud: float | None,
           collection: str | None, read_roots: tuple[str, ...], as_json: bool) -> None:
    """List the Sentinel-2 L2A items a build would choose from (id, date, cloud, baseline, tile,
    EPSG): of one collection, one per acquisition. A build then reads the clearest N per MGRS
    tile of its period (docs/sources.md)."""
    parse_datetime(datetime_)  # bad input: exit 2 before any network call
    check_max_cloud(max_cloud)
    source, collection = default_source(source, collection)
    found = stac_search(source, bbox, datetime_, max_cloud, collection,
                        read_roots=tuple(read_roots))
    scenes = one_per_acquisition(found if collection else one_collection(found))
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in scenes], indent=1))
        return
    if not scenes:
        click.echo(f"No items found in {redact_url(source)} for bbox {bbox}.")
        return
    row = "{:<44} {:<10} {:>7} {:>8} {:<12} {:>6}"
    click.echo(row.format("id", "date", "cloud %", "baseline", "tile", "epsg"))
    for s in scenes:
        cloud = "-" if s.cloud_cover is None else f"{s.cloud_cover:.1f}"
        click.echo(row.format(s.id, s.datetime[:10], cloud, s.processing_baseline or "-",
                              s.grid_code or "-", s.epsg))
    click.echo(f"{len(scenes)} item{'s' if len(scenes) != 1 else ''} found.")
