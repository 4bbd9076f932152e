"""`basemap build`: STAC -> frozen manifest -> blocks -> seamless COGs and XYZ tiles.

The run, top to bottom (:func:`build`):

1. Validate the options (exit 2 before any network call), probe the output.
2. Plan blocks on the global grid at the max zoom: squares of ``block_size`` px aligned to it.
3. Search with the bounds of the planned blocks' **read regions** (block + everything the
   renderer, the feathering and the warp need), so a block's inputs never depend on the bbox it
   was planned from; freeze the items into ``OUT/manifest.json``. Keep the blocks that intersect an
   item footprint.
4. Per block, one task (:mod:`basemap.pipeline.block_task`: (block, frozen scenes, settings) ->
   files, skipped when the ledger has it).
5. The pyramid above the blocks, from child tiles across blocks (:mod:`basemap.pipeline.graph`).
6. ``OUT/mosaic.vrt``, ``OUT/tilejson.json`` and ``OUT/build.json``, then a summary.

The output covers whole blocks (it is not clipped to the bbox), so building a bbox in one run or in
parts gives the same max-zoom tiles and COG pixels.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import date

from basemap import __version__
from basemap.errors import BasemapError
from basemap.grid import (
    bbox_regions,
    plan_blocks,
)
from basemap.mosaic.observation_quality import CLOUD_BUFFER, REJECTED_SCL
from basemap.output.cog import write_vrt
from basemap.output.stac import CogEntry, source_items, write_stac
from basemap.output.storage import Storage, open_storage
from basemap.output.tilejson import ATTRIBUTION, tilejson
from basemap.output.tiles import TileOutput
from basemap.pipeline.block_task import BlockResult
from basemap.pipeline.graph import dask_client, run_graph
from basemap.pipeline.lease import Lease
from basemap.pipeline.ledger import clean_temp_files, freeze_manifest
from basemap.pipeline.plan import (
    BlockJob,
    BuildSettings,
    assign_scenes,
    read_region,
    search_bbox,
)
from basemap.pipeline.record import RECORD_KEY, read_record, write_record
from basemap.progress import SILENT, Progress
from basemap.read.assets import check_assets
from basemap.read.offset_evidence import decide_offset
from basemap.read.scenes import RESAMPLING
from basemap.read.traffic import Traffic
from basemap.redact import redact_url
from basemap.render.base import Renderer
from basemap.render.inference import check_weights, weights_sha256
from basemap.stac.manifest import manifest_bytes
from basemap.stac.query import Query
from basemap.stac.scene import Scene
from basemap.stac.search import check_max_cloud, is_api, parse_datetime, search
from basemap.stac.select import Selection, default_period, within
from basemap.stac.sources import one_collection, one_per_acquisition
from basemap.types import BBox, ZoomRange

log = logging.getLogger(__name__)


# ---- the scenes read --------------------------------------------------------------------------


def choose_scenes(found: list[Scene], collection: str | None,
                  selection: Selection) -> list[Scene]:  # fmt: skip
    """The scenes a build reads, of those found: one collection when none was asked for, one
    item per acquisition, the read policy's, and each offset decided (from the pixels where its
    metadata may lie)."""
    scenes = one_per_acquisition(found if collection else one_collection(found))
    chosen = selection.apply(scenes)
    if len(chosen) < len(found):
        log.info("reading %d of %d items found (read policy %s)", len(chosen), len(found),
                 selection.to_dict())
    return [decide_offset(s) for s in chosen]


# ---- outputs -------------------------------------------------------------------------------


def build_tilejson(bbox: BBox, settings: BuildSettings, zmin_written: int) -> dict:
    """TileJSON 3.0.0 for the build's tiles (template relative to the output folder)."""
    return tilejson("basemap", settings.tile_format, bbox.as_tuple(),
                    min(zmin_written, settings.zmax), settings.zmax,
                    min(settings.zmax, max(settings.zmin, 10)),
                    description=f"Sentinel-2 L2A basemap, renderer {settings.renderer}",
                    attribution=ATTRIBUTION)


def model_checksum(renderer: Renderer) -> dict | None:
    """Path and sha256 of the renderer's weights (None: it has none)."""
    if renderer.weights is None:
        return None
    return {"path": str(renderer.weights), "sha256": weights_sha256(renderer.weights)}


@dataclass
class BuildSummary:
    """What a build did (printed at the end, and kept in build.json)."""

    out: str
    bbox: BBox
    scenes: int = 0
    period: str | None = None
    blocks: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    tiles: dict[int, int] = field(default_factory=dict)
    tiles_missing: int = 0
    seconds: float = 0.0
    megapixels: float = 0.0
    area_km2: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)
    reads: Traffic = field(default_factory=Traffic)

    def text(self) -> str:
        """Human-readable summary."""
        lines = [
            f"area      {self.area_km2:,.1f} km2 ({self.bbox})",
            f"scenes    {self.scenes} (period {self.period or 'any'})",
            "blocks    " + (", ".join(f"{v} {k}" for k, v in self.blocks.items()) or "none"),
            "tiles     " + (", ".join(f"z{z}: {n}" for z, n in sorted(self.tiles.items()))
                            or "none"),
            f"time      {self.seconds:.1f} s, {self.megapixels / max(self.seconds, 1e-9):.2f} "
            f"Mpx/s ({self.megapixels:.1f} Mpx at max zoom)",
            f"reads     {self.reads.requests} HTTP requests, {self.reads.bytes / 1e6:.1f} MB; "
            f"{self.reads.wait_s:.1f} s waited for reads",
        ]
        if self.tiles_missing:
            lines.append(f"missing   {self.tiles_missing} pyramid tiles (a child block failed)")
        if self.failed:
            lines.append("failed    " + ", ".join(self.failed) + " (rerun to retry them)")
        lines += [f"{k:<9} {v}" for k, v in self.paths.items()]
        return "\n".join(lines)


def _area_km2(bbox: BBox) -> float:
    total = 0.0
    for p in bbox.split_antimeridian():
        r = 6371.0088
        total += (r * r * math.radians(p.east - p.west)
                  * (math.sin(math.radians(p.north)) - math.sin(math.radians(p.south))))
    return total


def build(
    bbox: BBox,
    zoom: ZoomRange,
    out: str,
    settings: BuildSettings,
    query: Query,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress = SILENT,
) -> BuildSummary:
    """Run a whole build of ``bbox`` from what ``query`` finds (see the module docstring) on a
    Dask cluster made from ``workers``/``scheduler``; returns its summary.

    Raises:
        InputError / ConfigError: bad options or an unusable output (exit 2), before any search:
            e.g. a non-empty folder that is not a basemap output (:mod:`basemap.output.ownership`).
        WeightsError: the U-Net's weights do not load (exit 2), before any search.
        StacError: the search failed.
        BasemapError: the output's disk is full (exit 1; the run stops, temp files are removed).
        LeaseLostError: another run took the output's lease over (exit 1; this run stopped).
    """
    start = time.perf_counter()
    settings, storage = checked(zoom, out, settings, query)
    with leased(storage):
        prepared = prepare(bbox, settings, query, storage, start)
        if not prepared.scenes:
            return prepared.summary
        with dask_client(workers, scheduler, want_gpu=prepared.renderer.wants_gpu) as client:
            ran = run_graph(client, prepared.jobs, TileOutput(storage, settings.tile_format),
                            settings.zmin, progress)
        return finish(prepared, *ran)


def checked(zoom: ZoomRange, out: str, settings: BuildSettings,
            query: Query) -> tuple[BuildSettings, Storage]:
    """(the settings for ``zoom``, validated; the output's storage, checked writable): what a
    build checks before its lease and any search (the errors of :func:`build`, exit 2)."""
    settings = replace(settings, zmin=zoom.min, zmax=zoom.max).validated()
    parse_datetime(query.datetime)
    check_max_cloud(query.max_cloud)
    storage = open_storage(out)
    weights = settings.make_renderer().weights
    if weights is not None:
        check_weights(weights)
    storage.check_writable()  # this tool's output (or new/empty: then marked), else exit 2
    return settings, storage


@contextmanager
def leased(storage: Storage) -> Iterator[Lease]:
    """The output's lease held (one run per output at a time: docs/reliability.md, row 21), the
    temporary files of a killed run removed first, the scratch folder at the end; a full disk
    (row 18) raised as a :class:`BasemapError` (exit 1), not a failed block."""
    with Lease(storage) as lease:
        try:
            clean_temp_files(storage)
            yield lease
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            clean_temp_files(storage)
            raise BasemapError(
                f"no space left on the device of the output {storage.root} ({exc}): nothing "
                "half-written was kept under a final name; free some space (or choose "
                "another --out) and run the same command again: finished blocks are kept"
            ) from None
        finally:
            if not lease.lost:  # else a local .tmp/ may be the new lease holder's
                storage.clean_scratch()  # S3: this run's local scratch folder; local: if empty


@dataclass
class Prepared:
    """A build planned and searched, its blocks not run yet (:func:`prepare`)."""

    bbox: BBox
    settings: BuildSettings
    renderer: Renderer
    query: Query
    storage: Storage
    start: float
    summary: BuildSummary
    scenes: list[Scene] = field(default_factory=list)  # empty: nothing to build
    search_args: dict = field(default_factory=dict)
    jobs: list[BlockJob] = field(default_factory=list)


def prepare(bbox: BBox, settings: BuildSettings, query: Query, storage: Storage,
            start: float) -> Prepared:
    """Plan the blocks of ``bbox``, search and freeze the scenes, make the block jobs (under
    the output's lease: :func:`leased`); ``start``: when the build started."""
    renderer = settings.make_renderer()
    summary = BuildSummary(out=storage.root, bbox=bbox, area_km2=_area_km2(bbox))
    prepared = Prepared(bbox, settings, renderer, query, storage, start, summary)
    planned = plan_blocks(bbox_regions(bbox, settings.zmax), settings.block_size, settings.zmax)
    where = search_bbox(planned, settings, renderer)
    prepared.scenes, prepared.search_args = _frozen_scenes(query, where, storage)
    summary.period = prepared.search_args["datetime"]
    summary.scenes = len(prepared.scenes)
    summary.paths["manifest"] = str(storage.path("manifest.json"))
    if not prepared.scenes:
        log.warning("no items found for %s in %s: nothing to build", bbox,
                    redact_url(query.source))
        summary.seconds = time.perf_counter() - start
        return prepared
    assigned = assign_scenes(planned, prepared.scenes, settings, renderer)
    used = {s.id for _, sc in assigned for s in sc}
    # an unusable asset or a refusing archive: exit 2 before any block, not N failed blocks
    check_assets([s for s in prepared.scenes if s.id in used])
    prepared.jobs = [BlockJob(b, sc, settings, storage) for b, sc in assigned]
    return prepared


def finish(prepared: Prepared, results: list[BlockResult], pyramid: dict[int, int],
           missing: int) -> BuildSummary:
    """The build's summary, and its files besides the blocks' (``mosaic.vrt``, TileJSON, STAC,
    ``build.json``), from what its graph (:func:`basemap.pipeline.graph.run_graph`) gave."""
    settings, storage, summary = prepared.settings, prepared.storage, prepared.summary
    jobs, scenes = prepared.jobs, prepared.scenes
    _count(summary, results, pyramid, missing, settings)
    cogs = [(r.cog, r.block.region) for r in results if r.cog]
    write_vrt(cogs, settings.zmax, storage)
    zwritten = min(summary.tiles) if summary.tiles else settings.zmax
    tj = build_tilejson(prepared.bbox, settings, zwritten)
    storage.write_bytes("tilejson.json", json.dumps(tj, indent=1).encode())
    if cogs:
        _write_stac(storage, jobs, results, scenes, redact_url(prepared.query.source),
                    prepared.bbox, settings, tj)
    summary.seconds = time.perf_counter() - prepared.start
    halo = max((max(j.block.region.x0 - rr.x0, j.block.region.y0 - rr.y0) for j, rr in
                ((j, read_region(j.block, settings, prepared.renderer)) for j in jobs)),
               default=0)
    record = build_record(prepared.bbox, settings, prepared.search_args, scenes, results,
                          summary, halo)
    write_record(storage, record)
    summary.paths.update({
        "cogs": str(storage.path("cogs")),
        "tiles": str(storage.path("tiles")),
        "tilejson": str(storage.path("tilejson.json")),
        "vrt": str(storage.path("mosaic.vrt")) if cogs else "(none: no data)",
        "record": str(storage.path(RECORD_KEY)),
    })
    if cogs:
        summary.paths["stac"] = str(storage.path("stac/collection.json"))
    return summary


def _frozen_scenes(query: Query, where: BBox, storage: Storage) -> tuple[list[Scene], dict]:
    """(the scenes the build reads, the search as recorded): searched, chosen, then frozen in
    the ledger, so a rerun reads the first run's (docs/reliability.md, row 22); the default
    period is decided here (a STAC API: the last 12 complete months; a static catalog: up to
    its newest item) and kept by reruns."""
    datetime = query.datetime
    if "datetime" in query.defaults and datetime is None:
        datetime = _recorded_period(storage) or (
            default_period(None, date.today()) if is_api(query.source) else None)
    found = search(query.source, where, datetime, query.max_cloud, query.collection,
                   read_roots=query.read_roots)
    if datetime is None and "datetime" in query.defaults:
        datetime = default_period(found, date.today())
        found = within(found, datetime)
    search_args = query.record(where.as_tuple(), datetime)
    scenes = choose_scenes(found, query.collection, query.selection)
    scenes = freeze_manifest(storage, scenes, search_args)
    storage.write_bytes("manifest.json", manifest_bytes(scenes))
    return scenes, search_args


def _recorded_period(storage: Storage) -> str | None:
    """The default period an earlier run of this output chose (None: no such run)."""
    record = read_record(storage) or {}
    return record.get("datetime") if "datetime" in (record.get("defaults") or ()) else None


def _write_stac(storage: Storage, jobs: list[BlockJob], results: list[BlockResult],
                scenes: list[Scene], stac: str, bbox: BBox, settings: BuildSettings,
                tj: dict) -> None:
    """``OUT/stac/``: the build's COGs as a STAC Collection (:mod:`basemap.output.stac`)."""
    used = {j.block.name: tuple(s.id for s in j.scenes) for j in jobs}
    entries = [CogEntry(r.cog, r.block.region, used.get(r.block.name, ())) for r in results
               if r.cog]
    write_stac(storage, entries, settings.zmax, bbox.as_tuple(),
               source_items(scenes, stac, is_api(stac)), tj)


def _count(summary: BuildSummary, results: list[BlockResult], pyramid: dict, missing: int,
           settings: BuildSettings) -> None:
    """Add the blocks' and the pyramid's counts to the summary."""
    for r in results:
        summary.blocks[r.status] = summary.blocks.get(r.status, 0) + 1
        if r.reads is not None:
            summary.reads.add(r.reads)
        for z, n in r.tiles:
            summary.tiles[z] = summary.tiles.get(z, 0) + n
    for z, n in pyramid.items():
        summary.tiles[z] = summary.tiles.get(z, 0) + n
    summary.failed = [f"{r.block.name} ({r.message})" for r in results if r.status == "failed"]
    summary.tiles_missing = missing
    summary.megapixels = len(results) * settings.block_size**2 / 1e6


def build_record(bbox: BBox, settings: BuildSettings, search_args: dict, scenes: list[Scene],
                 results: list, summary: BuildSummary, halo: int) -> dict:
    """``OUT/build.json``: the settings, inputs and per-block results of a build."""
    return {
        "version": __version__,
        "bbox": list(bbox.as_tuple()),
        "zoom": [settings.zmin, settings.zmax],
        "stac": search_args["stac"],
        "collection": search_args["collection"],
        "datetime": search_args["datetime"],
        "max_cloud": search_args["max_cloud"],
        "max_items": search_args["max_items"],
        "months": search_args["months"],
        "defaults": search_args["defaults"],
        "settings": {f.name: getattr(settings, f.name) for f in fields(settings)},
        "stride": settings.window - settings.overlap,
        "halo": halo,
        "resampling": dict(RESAMPLING, pyramid="alpha-weighted 2x2 mean",
                           cog_overviews="average"),
        "compositing": {"method": settings.composite, "feather_px": settings.feather,
                        "rejected_scl": list(REJECTED_SCL), "cloud_buffer_px": CLOUD_BUFFER,
                        "holes": "filled from the rejected observations (best fallback quality)"},
        "model": model_checksum(settings.make_renderer()),
        "items": [s.id for s in scenes],
        "items_read": len(scenes),
        "blocks": [{"block": r.block.name, "status": r.status, "scenes": r.scenes,
                    "cog": r.cog, "tiles": dict(r.tiles), "message": r.message,
                    "filled": r.filled, "pixels": r.pixels,
                    "seconds": round(r.seconds, 3),
                    **({"reads": r.reads.record()} if r.reads is not None else {}),
                    **({"precision": r.precision} if r.precision else {})}
                   for r in results],
        "precision": {"asked": settings.precision,
                      "used": sorted({r.precision for r in results} - {""})},
        "filled_fraction": round(sum(r.filled * r.pixels for r in results if r.cog)
                                 / max(1, sum(r.pixels for r in results if r.cog)), 6),
        "tiles_written": {str(z): n for z, n in sorted(summary.tiles.items())},
        "seconds": round(summary.seconds, 2),
    }
