"""The `basemap` command line: a thin click group; each command maps its options onto one call.

Library modules are imported inside the commands so `basemap --help` stays fast and no work
happens at import time.
"""

from __future__ import annotations

import logging
import sys
import warnings

import click

from basemap import __version__
from basemap.errors import BasemapError, BasemapWarning
from basemap.types import BBox, ZoomRange


class BBoxParam(click.ParamType):
    """W,S,E,N in degrees, validated (exit 2 naming the field); clamping is said on stderr."""

    name = "W,S,E,N"

    def convert(self, value, param, ctx):
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

@cli.command()
@click.option(
    "--stac",
    "source",
    default=None,
    metavar="SOURCE",
    help="STAC API URL, or a static catalog / ItemCollection / item JSON. "
    "Default: Earth Search v1 (https://earth-search.aws.element84.com/v1, sentinel-2-l2a).",
)
@click.option("--bbox", type=BBOX, required=True, help="W,S,E,N in degrees (W > E crosses 180).")
@click.option("--datetime", "datetime_", default=None, metavar="A/B",
              help="STAC interval, e.g. 2024-06-01/2024-08-31 (open ends: ..).")
@click.option("--max-cloud", type=float, default=None, metavar="P",
              help="Keep items with eo:cloud_cover <= P percent.")
@click.option("--collection", default=None,
              help="Collection id (default: sentinel-2-l2a with the default source, else all).")
@click.option("--json", "as_json", is_flag=True, help="Print the scenes as JSON instead.")
def search(source, bbox, datetime_, max_cloud, collection, as_json):
    """List the Sentinel-2 L2A items a build would use (id, date, cloud, baseline, tile, EPSG)."""
    import json

    from basemap import stac

    stac.parse_datetime(datetime_)  # bad input: exit 2 before any network call
    stac.check_max_cloud(max_cloud)
    if source is None:
        source = stac.EARTH_SEARCH_URL
        collection = collection or stac.EARTH_SEARCH_COLLECTION
    scenes = stac.search(source, bbox, datetime_, max_cloud, collection)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in scenes], indent=1))
        return
    if not scenes:
        click.echo(f"No items found in {source} for bbox {bbox}.")
        return
    row = "{:<44} {:<10} {:>7} {:>8} {:<12} {:>6}"
    click.echo(row.format("id", "date", "cloud %", "baseline", "tile", "epsg"))
    for s in scenes:
        cloud = "-" if s.cloud_cover is None else f"{s.cloud_cover:.1f}"
        click.echo(row.format(s.id, s.datetime[:10], cloud, s.processing_baseline or "-",
                              s.grid_code or "-", s.epsg))
    click.echo(f"{len(scenes)} item{'s' if len(scenes) != 1 else ''} found.")


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port on 127.0.0.1 (0 picks a free one).")
def serve(out, port):
    """Serve OUT's tiles and a web map page (Leaflet) on 127.0.0.1; one layer per tile set found."""
    from basemap.serve import serve as run_server

    def ready(url):
        click.echo(f"Serving {out} at {url} (Ctrl-C stops)")
        sys.stdout.flush()

    run_server(out, port=port, ready=ready)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Archive to write (default: OUT/basemap.pmtiles, one per tile set: "
              "OUT/<folder>/basemap.pmtiles).")
def pmtiles(out, output):
    """Pack OUT's XYZ pyramid into one PMTiles archive (tiles copied byte for byte)."""
    from pathlib import Path

    from basemap.errors import InputError
    from basemap.pmtiles_io import write_pmtiles
    from basemap.tileset import find_layers

    tilesets, _ = find_layers(out)
    if output is not None and len(tilesets) > 1:
        raise InputError(f"{out} holds {len(tilesets)} tile sets; --output needs exactly one "
                         "(point OUT at one of: " + ", ".join(str(t.root) for t in tilesets) + ")")
    for ts in tilesets:
        info = write_pmtiles(ts, Path(output) if output else ts.root / "basemap.pmtiles")
        click.echo(f"Wrote {info.path}: {info.tiles} tiles, z{info.minzoom}-{info.maxzoom}, "
                   f"{info.path.stat().st_size / 1e6:.1f} MB")


@cli.command()
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
def evaluate(out, against, report, size, at):
    """Seam excess, clipped %, colourfulness, L*, cross-scene dE: a build vs other renderers."""
    from basemap.errors import InputError
    from basemap.evaluate import evaluate as run_evaluate
    from basemap.renderers import get_renderer

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
    click.echo(f"Report: {result['report']}")


@cli.command()
@click.option("--world", is_flag=True, help="Plan the whole world (else give --bbox regions).")
@click.option("--bbox", "regions", type=BBOX, multiple=True,
              help="A region to plan, W,S,E,N (repeat for a list of regions).")
@click.option("--zoom", type=click.IntRange(8, 16), default=14, show_default=True,
              help="Max zoom: the grid the blocks live on.")
@click.option("--block-size", type=int, default=None,
              help="Block size in max-zoom pixels (default: the build's).")
@click.option("--shard-size", type=int, default=8, show_default=True,
              help="Shard side in blocks (a power of two); one shard = one `basemap build`.")
@click.option("--land-only/--all", default=True, show_default=True,
              help="Skip shards without land (coarse 0.25-degree mask shipped in the package).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the shard list here as JSON (for `basemap world run`).")
def plan(world, regions, zoom, block_size, shard_size, land_only, out):
    """Split the world (or regions) into shards of blocks, each one resumable build run."""
    import json
    from pathlib import Path

    from basemap import world as world_mod
    from basemap.errors import InputError

    if world == bool(regions):
        raise InputError("give either --world or one or more --bbox regions")
    p = world_mod.plan(zoom, block_size or world_mod.default_block_size(), shard_size,
                       land_only, list(regions) or None)
    if out:
        p.write(Path(out))
        click.echo(f"Wrote {out}: {len(p.shards)} shards of {shard_size}x{shard_size} blocks.")
    click.echo(json.dumps(world_mod.summary(p) | {"shard_zoom": p.shard_zoom}, indent=1))


@cli.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="World seed; the same seed writes the same bytes.")
@click.option("--preset", type=click.Choice(["test", "demo"]), default="test", show_default=True,
              help="test: 4 tiles of 3 km, 2 dates (seconds); demo: 4 tiles of 18 km, 3 dates.")
def synth(out, seed, preset):
    """Write a synthetic Sentinel-2 L2A world (COGs + static STAC catalog) into OUT.

    Prints the catalog path and a WGS84 bbox well inside the covered area.
    """
    from pathlib import Path

    from basemap.synth import make_world, world_bbox

    catalog = make_world(Path(out), seed=seed, preset=preset)
    click.echo(f"catalog: {catalog}")
    click.echo(f"bbox: {world_bbox(preset)}")


@cli.command()
@click.argument("scheduler", metavar="ADDRESS")
@click.option("--gpus", type=click.Choice(["auto", "0", "1"]), default="auto", show_default=True,
              help="Advertise GPU=1 to Dask (auto: when torch sees a CUDA device).")
@click.option("--nthreads", type=click.IntRange(1), default=2, show_default=True,
              help="Task threads in this worker.")
@click.option("--memory-limit", default="auto", show_default=True,
              help="Memory per worker (e.g. 16GiB); over it the worker is restarted.")
@click.option("--name", default=None, help="Worker name (default: Dask picks one).")
def worker(scheduler, gpus, nthreads, memory_limit, name):
    """Start a Dask worker for builds, connected to the scheduler at ADDRESS (tcp://host:8786)."""
    import os

    from basemap.world import worker_command

    args = worker_command(scheduler, gpus, nthreads, memory_limit, name)
    os.execv(args[0], args)


@cli.command()
@click.argument("source")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--grader", type=click.Choice(["auto"]), default="auto", show_default=True,
              help="How targets are made: `auto` grades each whole image like an editor.")
@click.option("--dn-offset", type=float, default=0.0, show_default=True,
              help="DN offset of folder images (STAC items carry their own).")
def pairs(source, out, grader, dn_offset):
    """Make training pairs OUT/<name>/{input,target}.tif from SOURCE.

    SOURCE is a STAC catalog / API (every item) or a folder of 3-band uint16 GeoTIFFs or of
    B04/B03/B02 band files. Hand-graded pairs can be dropped into OUT in the same layout.
    """
    from basemap.model.pairs import make_pairs

    written = make_pairs(source, out, grader=grader, dn_offset=dn_offset)
    click.echo(f"{len(written)} pairs in {out}")


@cli.command()
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
              help="Weights m,l,f of MAE, Laplacian and VGG-19 feature losses (sum 1).")
@click.option("--vgg-weights", type=click.Path(dir_okay=False),
              help="torchvision vgg19-dcbb9e9d.pth (else the torch hub cache); needed if f > 0.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False),
              help="Continue from a checkpoint (<out stem>.ckpt).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="CPU threads for torch (default: torch's choice).")
def train(pairs_dir, out, epochs, steps, batch, crop, lr, lambdas, vgg_weights, resume, seed,
          threads):
    """Train the colorization U-Net on pairs; writes weights, checkpoint and plots beside OUT."""
    import torch

    from basemap.model.losses import parse_lambdas
    from basemap.model.train import TrainConfig
    from basemap.model.train import train as run

    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig(epochs=epochs, steps_per_epoch=steps, batch=batch, crop=crop, lr=lr,
                         lambdas=parse_lambdas(lambdas), seed=seed)
    result = run(pairs_dir, out, config, vgg_weights=vgg_weights, resume=resume)
    last = result["history"][-1]["val"]
    click.echo(f"wrote {out} ({result['wall_s']:.0f} s): validation MAE {last['mae_dn']:.2f} DN; "
               f"plots {result['loss']}, {result['samples']}")


@cli.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="Weights for the unet renderer (default: the shipped model).")
@click.option("--renderer", default="unet", show_default=True,
              type=click.Choice(["unet", "linear", "sh-l2a-optimized", "per-tile-stretch"]))
@click.option("--dn-offset", type=float, default=0.0, show_default=True,
              help="Added to DN before /10000: -1000 for processing baseline >= 04.00.")
def colorize(src, dst, model_path, renderer, dn_offset):
    """Colorize a 3-band (R,G,B) uint16 L2A GeoTIFF into an 8-bit COG with a mask."""
    from basemap.colorize import colorize_file

    colorize_file(src, dst, model_path=model_path, renderer=renderer, dn_offset=dn_offset)
    click.echo(f"wrote {dst}")


def _build_options(f):
    """Options shared by `build` and `demo` (everything that decides the pixels)."""
    options = [
        click.option("--renderer", default="unet", show_default=True,
                     type=click.Choice(["unet", "linear", "sh-l2a-optimized", "per-tile-stretch"]),
                     help="How reflectance becomes 8-bit colour."),
        click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
                     help="U-Net weights (default: the shipped model)."),
        click.option("--tile-format", type=click.Choice(["webp", "png", "jpeg"]), default="webp",
                     show_default=True,
                     help="XYZ tile format (jpeg: tiles with transparency are stored as PNG)."),
        click.option("--composite", type=click.Choice(["mean", "median", "first"]),
                     default="mean", show_default=True,
                     help="Per-pixel compositing of cloud-free observations (mean is feathered)."),
        click.option("--feather", type=click.IntRange(0), default=64, show_default=True,
                     help="Feather distance (px) of the mean composite at scene/cloud edges."),
        click.option("--block-size", type=int, default=2048, show_default=True,
                     help="Processing block side in max-zoom px (256 x a power of two)."),
        click.option("--window", type=int, default=512, show_default=True,
                     help="U-Net window side (px, on the global grid)."),
        click.option("--overlap", type=int, default=64, show_default=True,
                     help="Overlap of neighbouring U-Net windows (px)."),
        click.option("--workers", type=click.IntRange(0), default=None,
                     help="Local Dask worker processes, 1 thread each [default: CPU count; "
                     "0: in this process]."),
        click.option("--scheduler", default=None, envvar="BASEMAP_SCHEDULER", metavar="ADDR",
                     help="Use an existing Dask scheduler (tcp://host:8786) [env: "
                     "BASEMAP_SCHEDULER]."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _settings(renderer, model_path, tile_format, composite, feather, block_size, window,
              overlap):
    from basemap.build import BuildSettings

    return BuildSettings(renderer=renderer, model=model_path, tile_format=tile_format,
                         composite=composite, feather=feather, block_size=block_size,
                         window=window, overlap=overlap)


def _finish(summary) -> None:
    from basemap.errors import PartialBuildError

    click.echo(summary.text())
    if not summary.scenes:
        click.echo("No items found: nothing was built (no tiles written).")
    if summary.failed:
        raise PartialBuildError(
            f"{len(summary.failed)} block(s) failed: {', '.join(summary.failed)}; "
            "run the same command again to retry them"
        )


@cli.command()
@click.option("--bbox", type=BBOX, required=True, help="W,S,E,N in degrees (W > E crosses 180).")
@click.option("--zoom", type=ZOOM, default="0-14", show_default=True, help="MIN-MAX zoom levels.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (COGs, tiles, tilejson.json, mosaic.vrt, build.json).")
@click.option("--stac", "source", default=None, metavar="SOURCE",
              help="STAC API URL or static catalog / ItemCollection JSON "
              "[default: Earth Search v1, collection sentinel-2-l2a].")
@click.option("--collection", default=None, help="Collection id (default with Earth Search: "
              "sentinel-2-l2a).")
@click.option("--datetime", "datetime_", default=None, metavar="A/B",
              help="STAC interval, e.g. 2024-06-01/2024-08-31.")
@click.option("--max-cloud", type=float, default=None, metavar="P",
              help="Use items with eo:cloud_cover <= P percent.")
@_build_options
def build(bbox, zoom, out, source, collection, datetime_, max_cloud, renderer, model_path,
          tile_format, composite, feather, block_size, window, overlap, workers, scheduler,
          quiet):
    """Build seamless 8-bit COGs and XYZ tiles for a bbox from Sentinel-2 L2A (a Dask graph)."""
    from basemap import stac
    from basemap.build import build as run_build

    stac.parse_datetime(datetime_)  # bad input: exit 2 before any network call
    stac.check_max_cloud(max_cloud)
    if source is None:
        source = stac.EARTH_SEARCH_URL
        collection = collection or stac.EARTH_SEARCH_COLLECTION
    settings = _settings(renderer, model_path, tile_format, composite, feather, block_size,
                         window, overlap)
    summary = run_build(bbox, zoom, out, settings, source, collection, datetime_, max_cloud,
                        workers=workers, scheduler=scheduler, progress=not quiet)
    _finish(summary)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False), default="out/demo")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the synthetic world.")
@click.option("--zoom", type=ZOOM, default="0-14", show_default=True, help="MIN-MAX zoom levels.")
@_build_options
def demo(out, seed, zoom, renderer, model_path, tile_format, composite, feather, block_size,
         window, overlap, workers, scheduler, quiet):
    """Offline demo: make the synthetic world in OUT/world (once), build it into OUT/build."""
    from pathlib import Path

    from basemap.build import build as run_build
    from basemap.synth import make_world, world_bbox

    settings = _settings(renderer, model_path, tile_format, composite, feather, block_size,
                         window, overlap)
    catalog = Path(out, "world", "catalog.json")
    if not catalog.is_file():
        click.echo(f"Making the synthetic world in {catalog.parent} (seed {seed}) ...")
        catalog = make_world(Path(out, "world"), seed=seed, preset="demo")
    summary = run_build(world_bbox("demo"), zoom, str(Path(out, "build")), settings,
                        str(catalog), workers=workers, scheduler=scheduler, progress=not quiet)
    _finish(summary)


@cli.group()
def world():
    """World-scale runs: a shard plan (`basemap plan`) built shard by shard, then the pyramid."""


@world.command("run")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--out", required=True, help="Output folder or s3://bucket/prefix (shared by all "
              "shards).")
@click.option("--stac", "source", default=None, metavar="SOURCE",
              help="STAC API URL or static catalog [default: Earth Search v1].")
@click.option("--collection", default=None, help="Collection id.")
@click.option("--datetime", "datetime_", default=None, metavar="A/B", help="STAC interval.")
@click.option("--max-cloud", type=float, default=None, metavar="P",
              help="Use items with eo:cloud_cover <= P percent.")
@click.option("--index", "indices", type=click.IntRange(0), multiple=True,
              help="Run only shard number I of the plan (repeatable; e.g. a Kubernetes "
              "Indexed Job's $(JOB_COMPLETION_INDEX)). Default: every shard.")
@click.option("--pyramid/--no-pyramid", default=True, show_default=True,
              help="Build zooms 0..shard_zoom-1 at the end (needs every shard finished).")
@_build_options
def world_run(plan_path, out, source, collection, datetime_, max_cloud, indices, pyramid,
              renderer, model_path, tile_format, composite, feather, block_size, window, overlap,
              workers, scheduler, quiet):
    """Build the shards of PLAN into one output (each a resumable build), then the pyramid.

    The block size is the plan's (--block-size is ignored).
    """
    from basemap import stac
    from basemap.errors import PartialBuildError
    from basemap.world import Plan, run_shards

    plan = Plan.read(plan_path)
    if source is None:
        source = stac.EARTH_SEARCH_URL
        collection = collection or stac.EARTH_SEARCH_COLLECTION
    settings = _settings(renderer, model_path, tile_format, composite, feather, plan.block_size,
                         window, overlap)
    problems = run_shards(plan, out, settings, source, list(indices) or None, pyramid,
                          collection=collection, datetime=datetime_, max_cloud=max_cloud,
                          workers=workers, scheduler=scheduler, progress=not quiet)
    if problems:
        raise PartialBuildError(f"{len(problems)} problem(s): " + "; ".join(problems[:20]) +
                                " -- run the same command again to retry")
    click.echo(f"World run done: {len(indices) or len(plan.shards)} shard(s) in {out}.")


@world.command("pyramid")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--out", required=True, help="The output the shards were built into.")
@click.option("--tile-format", type=click.Choice(["webp", "png", "jpeg"]), default="webp",
              show_default=True, help="Tile format (the shards' own).")
def world_pyramid(plan_path, out, tile_format):
    """Build zooms 0..shard_zoom-1 of a world run from its finished shards (exact 2x reduction)."""
    from basemap.errors import PartialBuildError
    from basemap.world import Plan
    from basemap.world import world_pyramid as build_pyramid

    problems = build_pyramid(Plan.read(plan_path), out, tile_format)
    if problems:
        raise PartialBuildError(f"{len(problems)} shard(s) unfinished, their ancestors not "
                                "built: " + "; ".join(problems[:20]))
    click.echo(f"Pyramid z0-{Plan.read(plan_path).shard_zoom - 1} written to {out}.")


@cli.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--zoom", type=ZOOM, default="0-14", show_default=True, help="MIN-MAX zoom levels.")
@click.option("--tile-format", type=click.Choice(["png", "webp", "jpeg"]), default="png",
              show_default=True, help="Tile encoding.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes [default: CPU count; 0 = in this process].")
@click.option("--block-size", type=int, default=2048, show_default=True,
              help="Pixels per block side at the max zoom (256 times a power of two).")
@click.option("--resampling", type=click.Choice(["nearest", "bilinear", "cubic", "average",
              "lanczos"]), default="bilinear", show_default=True,
              help="Warp kernel into the global grid.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def tiles(src, out, zoom, tile_format, workers, block_size, resampling, quiet):
    """XYZ tiles (OUT/tiles/{z}/{x}/{y}) of any 8-bit raster, with the build's pyramid code."""
    from basemap.grid import check_block_size
    from basemap.xyz import make_tiles

    check_block_size(block_size)
    summary = make_tiles(src, out, zoom.min, zoom.max, tile_format, workers, block_size,
                         resampling, progress=not quiet)
    click.echo(summary.text())


# ---- end of commands --------------------------------------------------------------------------
