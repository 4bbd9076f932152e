"""Shared CLI parameter types and options; every choice comes from its registry."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

from basemap import config
from basemap.errors import BasemapWarning, PartialBuildError
from basemap.mosaic.composite import METHOD_NAMES
from basemap.output.media import TILE_FORMATS
from basemap.pipeline.build import BuildSummary
from basemap.pipeline.plan import BuildSettings
from basemap.render.base import RENDERER_NAMES
from basemap.stac.query import Query
from basemap.stac.search import check_max_cloud, parse_datetime
from basemap.stac.select import DEFAULT_MAX_CLOUD, DEFAULT_MAX_ITEMS, Selection, with_defaults
from basemap.types import BBox, ZoomRange

#: A command callback being decorated with options (returned as it came).
F = TypeVar("F", bound=Callable[..., Any])


class BBoxParam(click.ParamType):
    """W,S,E,N in degrees, validated (exit 2 naming the field); clamping is said on stderr."""

    name = "W,S,E,N"

    def convert(self, value: str | BBox, param: click.Parameter | None,
                ctx: click.Context | None) -> BBox:
        if isinstance(value, BBox):
            return value
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BasemapWarning)
            bbox = BBox.parse(value)
        for warning in caught:
            click.echo(f"Warning: {warning.message}", err=True)
        return bbox


class ZoomParam(click.ParamType):
    """MIN-MAX zoom levels, validated (never silently swapped)."""

    name = "MIN-MAX"

    def convert(self, value: str | ZoomRange, param: click.Parameter | None,
                ctx: click.Context | None) -> ZoomRange:
        if isinstance(value, ZoomRange):
            return value
        return ZoomRange.parse(value)


BBOX = BBoxParam()
ZOOM = ZoomParam()


def default_source(source: str | None, collection: str | None) -> tuple[str, str | None]:
    """(STAC source, collection): Earth Search v1 and its Collection-1 L2A collection when no
    --stac is given (Element84's recommended one: reprocessed, consistent offsets)."""
    if source is None:
        return config.EARTH_SEARCH_URL, collection or config.EARTH_SEARCH_COLLECTION
    return source, collection


def tile_format_option(default: str, help: str) -> Callable[[F], F]:  # noqa: A002 (click's name)
    """--tile-format, choices from :data:`basemap.output.media.TILE_FORMATS`."""
    return click.option("--tile-format", type=click.Choice(tuple(TILE_FORMATS)), default=default,
                        show_default=True, help=help)


def selection_options(f: F) -> F:
    """--datetime, --max-cloud, --max-items and --months: which items a build reads
    (:mod:`basemap.stac.select`; the defaults keep a run bounded)."""
    f = click.option("--months", default=None, metavar="M-M",
                     help="Only items of these months, any year (6-8; 11-2 wraps).")(f)
    f = click.option("--max-items", type=click.IntRange(0), default=None, metavar="N",
                     help="Read the N least cloudy items per MGRS tile; 0: all "
                     f"[default: {DEFAULT_MAX_ITEMS}].")(f)
    f = click.option("--max-cloud", type=float, default=None, metavar="P",
                     help="Use items with eo:cloud_cover <= P percent "
                     f"[default: {DEFAULT_MAX_CLOUD:g}].")(f)
    f = click.option("--read-root", "read_roots", multiple=True, metavar="DIR",
                     type=click.Path(file_okay=False),
                     help="A local folder the catalog's hrefs may point into besides the "
                     "catalog's own (repeatable; a remote catalog may point at none).")(f)
    return click.option(
        "--datetime", "datetime_", default=None, metavar="A/B",
        help="STAC interval, e.g. 2024-06-01/2024-08-31; ../.. for the whole archive "
        "[default: the last 12 complete months (of a static catalog: up to its newest item)].",
    )(f)


def read_query(source: str | None, collection: str | None, datetime: str | None,
               max_cloud: float | None, max_items: int | None, months: str | None,
               read_roots: tuple[str, ...]) -> Query:  # fmt: skip
    """The :class:`Query` of a build's options (Earth Search when no source is given), its
    defaults filled in and said on stderr (bad values: exit 2 before any network call)."""
    parse_datetime(datetime)
    check_max_cloud(max_cloud)
    source, collection = default_source(source, collection)
    chosen = with_defaults(datetime, max_cloud, max_items)
    if chosen.text():
        click.echo(chosen.text(), err=True)
    return Query(source, collection, chosen.datetime, chosen.max_cloud,
                 Selection(chosen.max_items, Selection.parse_months(months)),
                 tuple(read_roots), chosen.chosen)


def build_options(block_size: bool = True) -> Callable[[F], F]:
    """Options shared by `build`, `demo` and `world run` (everything that decides the pixels).

    Args:
        block_size: offer --block-size (`world run` takes the plan's).
    """
    options = [
        click.option("--renderer", default=RENDERER_NAMES[0], show_default=True,
                     type=click.Choice(RENDERER_NAMES),
                     help="How reflectance becomes 8-bit colour."),
        click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
                     help="U-Net weights (default: the shipped model)."),
        tile_format_option("webp", "XYZ tile format (jpeg: tiles with transparency are stored "
                           "as PNG)."),
        click.option("--composite", type=click.Choice(METHOD_NAMES),
                     default=METHOD_NAMES[0], show_default=True,
                     help="Per-pixel compositing of the accepted observations (docs/usage.md)."),
        click.option("--feather", type=click.IntRange(0), default=config.FEATHER,
                     show_default=True,
                     help="Footprint-edge ramp (px) of the observations' quality."),
        click.option("--window", type=int, default=config.WINDOW, show_default=True,
                     help="U-Net window side (px, on the global grid)."),
        click.option("--overlap", type=int, default=config.OVERLAP, show_default=True,
                     help="Overlap of neighbouring U-Net windows (px)."),
        click.option("--workers", type=click.IntRange(0), default=None,
                     help="Local Dask worker processes, 1 thread each [default: CPU count; "
                     "0: in this process]."),
        click.option("--scheduler", default=None, envvar=config.SCHEDULER_ENV, metavar="ADDR",
                     help="Use an existing Dask scheduler (tcp://host:8786) [env: "
                     f"{config.SCHEDULER_ENV}]."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    if block_size:
        options.insert(5, click.option(
            "--block-size", type=int, default=config.BLOCK_SIZE, show_default=True,
            help="Processing block side in max-zoom px (256 x a power of two)."))

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def settings(renderer: str, model_path: str | None, tile_format: str, composite: str,
             feather: int, block_size: int, window: int, overlap: int) -> BuildSettings:
    """The BuildSettings of the shared options."""
    return BuildSettings(renderer=renderer, model=model_path, tile_format=tile_format,
                         composite=composite, feather=feather, block_size=block_size,
                         window=window, overlap=overlap)


def finish(summary: BuildSummary) -> None:
    """Print a build's summary; exit 3 (PartialBuildError) when blocks failed."""
    click.echo(summary.text())
    if not summary.scenes:
        click.echo("No items found: nothing was built (no tiles written).")
    if summary.failed:
        raise PartialBuildError(
            f"{len(summary.failed)} block(s) failed: {', '.join(summary.failed)}; "
            "run the same command again to retry them"
        )
