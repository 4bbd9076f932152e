"""The `basemap` command line: a thin click group; each command maps its options onto one library call.

Library modules are imported inside the commands so `basemap --help` stays fast and no work
happens at import time.
"""

from __future__ import annotations

import logging
import sys

import click

from basemap import __version__
from basemap.errors import BasemapError
from basemap.types import BBox, ZoomRange


class BBoxParam(click.ParamType):
    """W,S,E,N in degrees, validated (exit 2 naming the field)."""

    name = "W,S,E,N"

    def convert(self, value, param, ctx):
        if isinstance(value, BBox):
            return value
        return BBox.parse(value)


class ZoomParam(click.ParamType):
    """MIN-MAX zoom levels, validated (never silently swapped)."""

    name = "MIN-MAX"

    def convert(self, value, param, ctx):
        if isinstance(value, ZoomRange):
            return value
        return ZoomRange.parse(value)


BBOX = BBoxParam()
ZOOM = ZoomParam()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="basemap")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Seamless 8-bit Sentinel-2 L2A basemaps: STAC -> U-Net colorization -> COGs and XYZ tiles."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Entry point: run the group, turning BasemapError into its message and exit code."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BasemapError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


# ---- commands ---------------------------------------------------------------------------------
# Each command lives below, one block per command, in pipeline order. Add a command with a
# str_replace that inserts its block just above this line's twin at the end of the file.

# ---- end of commands --------------------------------------------------------------------------
