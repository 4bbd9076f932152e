"""`basemap world run` and `basemap world pyramid`: the shards of a plan built into one output,
then the zooms above the shards."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
from distributed import Client

from basemap.errors import InputError
from basemap.output.pyramid import reduce_tiles
from basemap.output.storage import Storage, open_storage
from basemap.output.tiles import TileOutput
from basemap.pipeline.build import Prepared, checked, finish, leased, prepare
from basemap.pipeline.graph import Submitted, collect, dask_client, submit_graph
from basemap.pipeline.ledger import Ledger
from basemap.pipeline.plan import BuildSettings
from basemap.progress import SILENT, Progress
from basemap.stac.query import Query
from basemap.types import BBox, ZoomRange
from basemap.world.plan import Plan, Shard

log = logging.getLogger(__name__)

SHARDS_PREFIX = "ledger/shards"


#: Shards on the cluster at once: the next shard's graph is submitted while the current one's
#: last blocks run and its files are written, so the workers do not idle at shard boundaries
#: (BENCHMARKS.md §10); it also bounds what the driver and the scheduler hold (two shards' jobs).
SHARDS_IN_FLIGHT = 2


def run_shards(plan: Plan, out: str, settings: BuildSettings, query: Query,
               indices: list[int] | None = None, pyramid: bool = True, *,
               workers: int | None = None, scheduler: str | None = None,
               progress: Progress = SILENT) -> list[str]:
    """Build shards of a plan into one output under one lease, on one Dask cluster (made once:
    its workers keep the model and their caches from shard to shard), with up to
    :data:`SHARDS_IN_FLIGHT` shards on it at once; then the pyramid. Each shard is a resumable
    build of its bbox (:func:`basemap.pipeline.build.prepare` and
    :func:`~basemap.pipeline.build.finish`), finished in the plan's order; its record
    (``ledger/shards/<id>.json``) is written once its build is finished.

    Args:
        plan: the shard plan.
        out: the output (folder or s3://).
        settings: the build settings (the block size is the plan's).
        query: what every shard searches and reads.
        indices: which shards (default: all), e.g. a Kubernetes Job's completion index.
        pyramid: build zooms 0..shard_zoom-1 at the end (needs every shard finished).
        workers, scheduler, progress: as :func:`basemap.pipeline.build.build` takes them.

    Returns:
        Failed blocks and missing pyramid tiles, named (empty when everything is done).
    """
    settings, storage = checked(ZoomRange(plan.shard_zoom, plan.zoom), out,
                                replace(settings, block_size=plan.block_size), query)
    ledger = Ledger(storage)
    chosen = plan.shards if indices is None else [_shard_at(plan, i) for i in indices]
    failed: list[str] = []
    with leased(storage), dask_client(workers, scheduler,
                                      want_gpu=settings.make_renderer().wants_gpu) as client:
        flight: deque[InFlight] = deque()
        for shard in chosen:
            flight.append(_submit_shard(client, plan, ledger, shard, settings, query))
            query = _period_pinned(query, flight[-1].prepared)
            if len(flight) == SHARDS_IN_FLIGHT:
                failed += _finish_shard(flight.popleft(), progress)
        while flight:
            failed += _finish_shard(flight.popleft(), progress)
    if pyramid:
        failed += world_pyramid(plan, out, settings.tile_format)
    return failed


@dataclass
class InFlight:
    """A shard whose graph is on the cluster."""

    shard: Shard
    prepared: Prepared
    graph: Submitted


def _submit_shard(client: Client, plan: Plan, ledger: Ledger, shard: Shard,
                  settings: BuildSettings, query: Query) -> InFlight:
    """Plan and search a shard, and submit its graph (under the output's lease)."""
    for name in _rootless(ledger, shard, _root_zoom(plan)):
        # an entry without the root tile the pyramid needs (e.g. a one-block shard built
        # before issue 32 was fixed): forgotten, so this build redoes the block
        log.warning("block %s of shard %s has no lossless root tile in the ledger: "
                    "rebuilding it", name, shard.id)
        ledger.forget(name)
    prepared = prepare(BBox(*shard.bbox), settings, query, ledger.storage, time.perf_counter())
    tiles = TileOutput(ledger.storage, settings.tile_format)
    return InFlight(shard, prepared, submit_graph(client, prepared.jobs, tiles, settings.zmin))


def _period_pinned(query: Query, prepared: Prepared) -> Query:
    """The query of the shards after ``prepared``: with the default period that shard decided
    when it has scenes (a build's record keeps it, and the next build reads it there; the next
    shards are searched before that record is written)."""
    if query.datetime is None and "datetime" in query.defaults and prepared.scenes:
        return replace(query, datetime=prepared.search_args["datetime"])
    return query


def _finish_shard(flight: InFlight, progress: Progress) -> list[str]:
    """Wait for a shard's graph, write its build's files and its record; its failed blocks."""
    shard, storage = flight.shard, flight.prepared.storage
    summary, ran = flight.prepared.summary, collect(flight.graph, progress)
    if flight.prepared.scenes:
        summary = finish(flight.prepared, *ran)
    storage.write_bytes(f"{SHARDS_PREFIX}/{shard.id}.json", json.dumps(
        {"shard": shard.id, "failed": summary.failed, "blocks": summary.blocks}).encode())
    log.info("shard %s built in %.1f s", shard.id, summary.seconds)
    return [f"{shard.id}: {f}" for f in summary.failed]


def _shard_at(plan: Plan, index: int) -> Shard:
    if not 0 <= index < len(plan.shards):
        raise InputError(f"--index {index} is outside the plan's {len(plan.shards)} shards")
    return plan.shards[index]


#: Shard tiles reduced together: the shards under one tile this many zooms above theirs (at most
#: 4^4 = 256 RGBA tiles, 67 MB, in memory at once, whatever the plan's size).
GROUP_LEVELS = 4


def world_pyramid(plan: Plan, out: str, tile_format: str = "webp") -> list[str]:
    """Zooms 0..shard_zoom-1 over every shard, by exact 2x reduction (the build's own rule).

    Each shard's tile at shard_zoom is rebuilt losslessly from its blocks' root tiles kept in the
    ledger (never from lossy encoded tiles), then reduced level by level. A shard that has not
    finished (no record, or failed blocks), or whose block with pixels has no root tile in the
    ledger, is a hole: its ancestors are NOT built (never read as transparent) and are reported.
    Memory: the shards under one tile :data:`GROUP_LEVELS` zooms up are reduced together, then
    the tiles of those groups: at most 256 shard tiles at once (the land of the world at z14 is
    31,528 shards, up to 8.3 GB of RGBA tiles if all were held).

    Returns:
        The tiles that could not be built, named, with the reason.

    Raises:
        ConfigError: ``out`` is not a basemap output (nor new or empty), or is not writable.
    """
    storage = open_storage(out)
    storage.check_writable()
    ledger = Ledger(storage)
    tiles = TileOutput(storage, tile_format)
    levels = min(GROUP_LEVELS, plan.shard_zoom)
    groups: dict[tuple[int, int], list[tuple[int, Shard]]] = {}
    for index, shard in enumerate(plan.shards):
        sx, sy = shard.blocks[0] // plan.shard_size, shard.blocks[1] // plan.shard_size
        groups.setdefault((sx >> levels, sy >> levels), []).append((index, shard))
    upper: dict[tuple[int, int], np.ndarray] = {}
    upper_broken: set[tuple[int, int]] = set()
    problems: list[str] = []
    for key in sorted(groups):
        level: dict[tuple[int, int], np.ndarray] = {}
        broken: set[tuple[int, int]] = set()
        for index, shard in groups[key]:
            sx, sy = shard.blocks[0] // plan.shard_size, shard.blocks[1] // plan.shard_size
            tile, problem = _shard_tile(plan, storage, ledger, index, shard)
            if problem is not None:
                broken.add((sx, sy))
                problems.append(problem)
            elif tile is not None:
                level[(sx, sy)] = tile
        top, top_broken = reduce_tiles(level, plan.shard_zoom, plan.shard_zoom - levels, tiles,
                                       broken)
        upper.update(top)
        upper_broken |= top_broken
    # Above the groups: the one level loop, not building over an unfinished shard.
    reduce_tiles(upper, plan.shard_zoom - levels, 0, tiles, upper_broken)
    return problems


def _shard_tile(plan: Plan, storage: Storage, ledger: Ledger, index: int,
                shard: Shard) -> tuple[np.ndarray | None, str | None]:
    """(a finished shard's tile at the shard zoom, from its blocks' root tiles; None: empty),
    or (None, why it can't be made: the shard is unfinished or a block's root tile missing)."""
    try:
        record = json.loads(storage.read_bytes(f"{SHARDS_PREFIX}/{shard.id}.json"))
    except FileNotFoundError:
        record = None
    if record is None or record["failed"]:
        return None, f"shard {shard.id} is not finished: its ancestor tiles are not built"
    rz = _root_zoom(plan)
    roots = {(bx, by): ledger.root(f"{rz}/{bx}/{by}")
             for by in range(shard.blocks[1], shard.blocks[3])
             for bx in range(shard.blocks[0], shard.blocks[2])}
    missing = _rootless(ledger, shard, rz, roots)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return None, (
            f"shard {shard.id} (--index {index}) is recorded finished but its block(s) "
            f"{', '.join(missing[:3])}{more} with pixels have no lossless root tile in the "
            f"ledger (e.g. {Ledger.root_key(missing[0])}): its ancestor tiles are not built; "
            f"run `basemap world run PLAN --index {index}` again to rebuild them")
    return _reduce_square(roots, shard.blocks[0], shard.blocks[1], plan.shard_size), None


def _root_zoom(plan: Plan) -> int:
    """The zoom of the blocks' root tiles: the shard zoom plus the levels inside a shard."""
    return plan.shard_zoom + int(math.log2(plan.shard_size))


def _rootless(ledger: Ledger, shard: Shard, rz: int,
              roots: dict[tuple[int, int], np.ndarray | None] | None = None) -> list[str]:
    """The shard's blocks that the ledger has with pixels (a COG) but without their lossless
    root tile (none kept, or its PNG gone): the world pyramid cannot be built over them.
    ``roots``: the root tiles already read, (bx, by) -> RGBA or None (else read here)."""
    names = []
    for by in range(shard.blocks[1], shard.blocks[3]):
        for bx in range(shard.blocks[0], shard.blocks[2]):
            name = f"{rz}/{bx}/{by}"
            root = roots[(bx, by)] if roots is not None else None
            if root is not None:
                continue
            rec = ledger.read(name)  # None: not built (no item touches it)
            if rec is None or not any(k.startswith("cogs/") for k, _, _ in rec.outputs):
                continue  # no pixels (empty): no root tile to keep
            if roots is None and rec.root and ledger.storage.size(ledger.root_key(name)):
                continue
            names.append(name)
    return names


def _reduce_square(roots: dict[tuple[int, int], np.ndarray | None], x0: int, y0: int,
                   n: int) -> np.ndarray | None:
    """The one tile an n x n square of root tiles (dict (x, y) -> RGBA or None) reduces to."""
    level = {(x - x0, y - y0): t for (x, y), t in roots.items() if t is not None}
    top, _ = reduce_tiles(level, int(math.log2(n)), 0, None)
    return top.get((0, 0))
