"""World-scale runs: `basemap plan`, `basemap world run|pyramid` and `basemap worker`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from basemap import __version__, config
from basemap.cli.options import (
    BBOX,
    build_options,
    read_query,
    selection_options,
    settings,
    tile_format_option,
)
from basemap.errors import ConfigError, InputError, PartialBuildError
from basemap.pipeline.graph import worker_problems
from basemap.progress import shown
from basemap.types import BBox
from basemap.world import plan as world_plan
from basemap.world.plan import Plan
from basemap.world.run import run_shards
from basemap.world.run import world_pyramid as build_pyramid
from basemap.world.worker import worker_command


@click.command()
@click.option("--world", is_flag=True, help="Plan the whole world (else give --bbox regions).")
@click.option("--bbox", "regions", type=BBOX, multiple=True,
              help="A region to plan, W,S,E,N (repeat for a list of regions).")
@click.option("--zoom", type=click.IntRange(8, 16), default=14, show_default=True,
              help="Max zoom: the grid the blocks live on.")
@click.option("--block-size", type=int, default=config.BLOCK_SIZE, show_default=True,
              help="Block size in max-zoom pixels (the build's default).")
@click.option("--shard-size", type=int, default=8, show_default=True,
              help="Shard side in blocks (a power of two); one shard = one `basemap build`.")
@click.option("--land-only/--all", default=True, show_default=True,
              help="Skip shards without land (coarse 0.25-degree mask shipped in the package).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the shard list here as JSON (for `basemap world run`).")
def plan(world: bool, regions: tuple[BBox, ...], zoom: int, block_size: int, shard_size: int,
         land_only: bool, out: str | None) -> None:
    """Split the world (or regions) into shards of blocks, each one resumable build run."""
    if world == bool(regions):
        raise InputError("give either --world or one or more --bbox regions")
    p = world_plan.plan(zoom, block_size, shard_size, land_only, list(regions) or None)
    if out:
        p.write(Path(out))
        click.echo(f"Wrote {out}: {len(p.shards)} shards of {shard_size}x{shard_size} blocks.")
    click.echo(json.dumps(world_plan.summary(p) | {"shard_zoom": p.shard_zoom}, indent=1))

@click.group()
def world() -> None:
    """World-scale runs: a shard plan (`basemap plan`) built shard by shard, then the pyramid."""
@world.command("run")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--out", required=True, help="Output folder or s3://bucket/prefix (shared by all "
              "shards).")
@click.option("--stac", "source", default=None, metavar="SOURCE",
              help="STAC API URL or static catalog [default: Earth Search v1].")
@click.option("--collection", default=None, help="Collection id (as `basemap build`).")
@click.option("--index", "indices", type=click.IntRange(0), multiple=True,
              help="Run only shard number I of the plan (repeatable; e.g. a Kubernetes "
              "Indexed Job's $(JOB_COMPLETION_INDEX)). Default: every shard.")
@click.option("--pyramid/--no-pyramid", default=True, show_default=True,
              help="Build zooms 0..shard_zoom-1 at the end (needs every shard finished).")
@selection_options
@build_options(block_size=False)
def world_run(plan_path: str, out: str, source: str | None, collection: str | None,
              datetime_: str | None, max_cloud: float | None, indices: tuple[int, ...],
              pyramid: bool, max_items: int | None, months: str | None,
              read_roots: tuple[str, ...], renderer: str, model_path: str | None,
              tile_format: str, composite: str, feather: int, window: int, overlap: int,
              workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Build the shards of PLAN into one output (each a resumable build), then the pyramid.

    The block size is the plan's (`basemap plan --block-size`). The next shard is sent to the
    cluster while the current one's last blocks run (two shards at a time at most).
    """
    plan = Plan.read(plan_path)
    query = read_query(source, collection, datetime_, max_cloud, max_items, months, read_roots)
    chosen = settings(renderer, model_path, tile_format, composite, feather, plan.block_size,
                      window, overlap)
    problems = run_shards(plan, out, chosen, query, list(indices) or None, pyramid,
                          workers=workers, scheduler=scheduler, progress=shown(not quiet))
    if problems:
        raise PartialBuildError(f"{len(problems)} problem(s): " + "; ".join(problems[:20]) +
                                " -- run the same command again to retry")
    click.echo(f"World run done: {len(indices) or len(plan.shards)} shard(s) in {out}.")


@world.command("pyramid")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--out", required=True, help="The output the shards were built into.")
@tile_format_option("webp", "Tile format (the shards' own).")
def world_pyramid(plan_path: str, out: str, tile_format: str) -> None:
    """Build zooms 0..shard_zoom-1 of a world run from its finished shards (exact 2x reduction)."""
    problems = build_pyramid(Plan.read(plan_path), out, tile_format)
    if problems:
        raise PartialBuildError(f"{len(problems)} shard(s) unfinished or without their root "
                                "tiles, their ancestors not built: " + "; ".join(problems[:20]))
    click.echo(f"Pyramid z0-{Plan.read(plan_path).shard_zoom - 1} written to {out}.")


@click.command()
@click.argument("scheduler", metavar="ADDRESS")
@click.option("--gpus", type=click.Choice(["auto", "0", "1"]), default="auto", show_default=True,
              help="Advertise GPU=1 to Dask (auto: when torch sees a CUDA device).")
@click.option("--nthreads", type=click.IntRange(1), default=2, show_default=True,
              help="Task threads in this worker.")
@click.option("--memory-limit", default="auto", show_default=True,
              help="Memory per worker (e.g. 16GiB); over it the worker is restarted.")
@click.option("--name", default=None, help="Worker name (default: Dask picks one).")
def worker(scheduler: str, gpus: str, nthreads: int, memory_limit: str,
           name: str | None) -> None:
    """Start a Dask worker for builds, connected to the scheduler at ADDRESS (tcp://host:8786).

    It needs the same basemap version as the driver, the output's S3 variables (AWS_*) and
    network access to the catalog and the archive; no path of the driver's (workflows/README.md,
    "Run it on your cluster"). The driver hands it the model weights.
    """
    problems = worker_problems(__version__)  # this machine's GDAL, before joining the cluster
    if problems:
        raise ConfigError("this machine cannot run a build worker: " + "; ".join(problems))
    args = worker_command(scheduler, gpus, nthreads, memory_limit, name)
    os.execv(args[0], args)
