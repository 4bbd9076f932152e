"""`basemap evaluate` (a build vs the other renderers) and `basemap serve` (the web map)."""

from __future__ import annotations

import sys

import click

from basemap.errors import InputError
from basemap.qa.evaluate import evaluate as run_evaluate
from basemap.qa.report import composite_line, reads_line
from basemap.render.base import get_renderer
from basemap.viewer.serve import serve as run_server


@click.command()
@click.argument("out", type=click.Path(file_okay=False, exists=True))
@click.option("--against", multiple=True, metavar="RENDERER",
              help="Renderer to compare on the same pixels (repeat; default: all the others).")
@click.option("--report", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: OUT/report].")
@click.option("--size", type=int, default=1024, show_default=True,
              help="Side of the sample region in max-zoom pixels (multiple of 256), centred on "
              "a block corner.")
@click.option("--at", default=None, metavar="LON,LAT",
              help="Sample at the block corner nearest this point [default: the bounds' centre].")
def evaluate(out: str, against: tuple[str, ...], report: str | None, size: int,
             at: str | None) -> None:
    """Seam excess, clipped %, colourfulness, L*, cross-scene dE: a build vs other renderers."""
    for name in against:
        get_renderer(name)  # unknown names: exit 2 before any work
    point = None
    if at is not None:
        try:
            lon, lat = (float(v) for v in at.split(","))
        except ValueError:
            raise InputError(
                f"--at must be LON,LAT in degrees, e.g. --at 6.1,45.0 (got {at!r})"
            ) from None
        point = (lon, lat)
    result = run_evaluate(out, against=tuple(against) or None, report=report, size=size,
                          at=point)
    columns = {"seam_excess_window": "seam win", "seam_excess_block": "seam block",
               "seam_excess_tile": "seam tile", "clipped_pct": "clipped %",
               "colourfulness": "colourful", "mean_lightness": "mean L*",
               "cross_scene_ciede2000": "x-scene dE"}
    click.echo(f"{'':<18}" + "".join(f"{c:>11}" for c in columns.values()))
    for name, fig in result["figures"].items():
        click.echo(f"{name:<18}" + "".join(f"{fig.get(k, float('nan')):>11.3f}" for k in columns))
    click.echo(f"composite: {composite_line(result['composite'])}")
    click.echo(f"reads: {reads_line(result['reads'])}")
    click.echo(f"Report: {result['report']}")


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port on 127.0.0.1 (0 picks a free one).")
def serve(out: str, port: int) -> None:
    """Serve OUT's tiles and a web map page (Leaflet) on 127.0.0.1; one layer per tile set found."""
    def ready(url: str) -> None:
        click.echo(f"Serving {out} at {url} (Ctrl-C stops)")
        sys.stdout.flush()

    run_server(out, port=port, ready=ready)
