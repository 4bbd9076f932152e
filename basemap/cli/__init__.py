"""The `basemap` command line: a thin click group; each command maps its options onto one call.

The commands live in modules grouped like the pipeline: :mod:`basemap.cli.stac` (search),
:mod:`basemap.cli.synth`, :mod:`basemap.cli.build` (build, demo), :mod:`basemap.cli.tiles`
(tiles, pmtiles), :mod:`basemap.cli.world` (plan, world, worker), :mod:`basemap.cli.qa`
(evaluate, serve) and :mod:`basemap.cli.model` (pairs, train, colorize).
"""

from __future__ import annotations

import logging
import sys

import click

from basemap import __version__
from basemap.cli import build, model, qa, stac, synth, tiles, world
from basemap.errors import BasemapError
from basemap.redact import RedactingFilter, redact_text

#: Libraries whose debug output carries request headers (credentials, signatures): capped at
#: WARNING whatever -v says.
QUIET_LOGGERS = ("botocore", "boto3", "aiobotocore", "s3fs", "s3transfer", "fsspec", "urllib3")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="basemap")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Seamless 8-bit Sentinel-2 L2A basemaps: STAC -> U-Net colorization -> COGs and XYZ tiles."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # secrets never reach a log line
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


for command in (stac.search, synth.synth, build.build, build.demo, tiles.tiles, tiles.pmtiles,
                world.plan, world.world, world.worker, qa.evaluate, qa.serve, model.pairs,
                model.train, model.colorize):
    cli.add_command(command)


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
        click.echo(f"Error: {redact_text(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
