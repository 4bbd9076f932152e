"""`basemap build`: STAC -> frozen manifest -> blocks -> seamless COGs and XYZ tiles.

The run, top to bottom (:func:`build`):

1. Validate the options (exit 2 before any network call), probe the output.
2. Plan blocks on the global grid at the max zoom: squares of ``block_size`` px aligned to it.
3. Search with the bounds of the planned blocks' **read regions** (block + everything the
   renderer, the feathering and the warp need), so a block's inputs never depend on the bbox it
   was planned from; freeze the items into ``OUT/manifest.json``. Keep the blocks that intersect an
   item footprint.
4. Per block, one pure task (:func:`build_block`: (block, frozen scenes, settings) -> files): warp
   every touching scene (:mod:`basemap.read`), composite (:mod:`basemap.composite`), render on
   the global window grid (:mod:`basemap.renderers`), write a validated COG (:mod:`basemap.cog`)
   and the block's tiles from the max zoom down to its root tile (:mod:`basemap.tiles`).
5. The pyramid above the blocks, from child tiles across blocks (:mod:`basemap.graph`).
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
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from basemap import __version__
from basemap.errors import BasemapError, InputError
from basemap.grid import (
    TILE_SIZE,
    Block,
    Region,
    bbox_regions,
    check_block_size,
    expand,
    footprint_px_rings,
    plan_blocks,
    region_lonlat_bounds,
    ring_intersects,
    union,
)
from basemap.ledger import freeze_manifest
from basemap.types import BBox, ZoomRange

log = logging.getLogger(__name__)

#: Attribution required for products made from Copernicus Sentinel data.
ATTRIBUTION = "Contains modified Copernicus Sentinel data"


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the output pixels (recorded in build.json).

    Attributes:
        zmin, zmax: zoom range; the global pixel grid is the one of ``zmax``.
        renderer: renderer name (:data:`basemap.renderers.RENDERER_NAMES`).
        model: U-Net weights file (None: the shipped default).
        window, overlap: the U-Net's window grid (global pixels).
        block_size: processing block side in pixels (256 times a power of two).
        composite: compositing method (:class:`basemap.composite.Method`).
        feather: feather distance in pixels of the ``mean`` composite.
        tile_format: webp, png or jpeg.
        chunk, margin: warp chunk size (global px) and source margin (source px).
    """

    zmin: int = 0
    zmax: int = 14
    renderer: str = "unet"
    model: str | None = None
    window: int = 512
    overlap: int = 64
    block_size: int = 2048
    composite: str = "mean"
    feather: int = 64
    tile_format: str = "webp"
    chunk: int = 128
    margin: int = 4

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.build.BuildSettings", *(getattr(self, f.name) for f in fields(self)))

    def validated(self) -> BuildSettings:
        """Check every option; raise InputError naming it and the fix."""
        from basemap.composite import METHOD_NAMES
        from basemap.renderers import RENDERER_NAMES
        from basemap.tiles import TILE_FORMATS
        from basemap.windows import WindowGrid

        ZoomRange(self.zmin, self.zmax).validated()
        check_block_size(self.block_size)
        WindowGrid(self.window, self.overlap)
        if self.renderer not in RENDERER_NAMES:
            raise InputError(f"--renderer {self.renderer!r}: choose one of {RENDERER_NAMES}")
        if self.composite not in METHOD_NAMES:
            raise InputError(f"--composite {self.composite!r}: choose one of {METHOD_NAMES}")
        if self.tile_format not in TILE_FORMATS:
            raise InputError(f"--tile-format {self.tile_format!r}: one of {tuple(TILE_FORMATS)}")
        if self.feather < 0:
            raise InputError(f"--feather must be >= 0 pixels, got {self.feather}")
        if self.chunk <= 0 or self.chunk % 64 or self.block_size % self.chunk:
            raise InputError(f"warp chunk {self.chunk} must be a multiple of 64 dividing the block")
        return self

    def make_renderer(self):
        """The renderer (cheap: the U-Net's weights load lazily, once per process)."""
        from basemap.renderers import get_renderer

        if self.renderer == "unet":
            from basemap.colorize import UNetRenderer

            return UNetRenderer(self.model, window=self.window, overlap=self.overlap)
        return get_renderer(self.renderer, self.model)

    def read_settings(self):
        """The warp settings (:class:`basemap.read.ReadSettings`)."""
        from basemap.read import ReadSettings

        return ReadSettings(zoom=self.zmax, chunk=self.chunk, margin=self.margin)


def input_region(block: Block, renderer) -> Region:
    """The pixels the renderer needs to render ``block`` exactly."""
    need = renderer.input_region(block.region)
    return union([Region(*need) if isinstance(need, tuple) else need, block.region])


def read_region(block: Block, settings: BuildSettings, renderer) -> Region:
    """The chunk-aligned region a block warps and composites: input region + feather padding."""
    from basemap.composite import Method, required_padding

    pad = required_padding(settings.feather) if Method(settings.composite).uses_feather else 0
    return expand(input_region(block, renderer), pad).aligned_out(settings.chunk)


@dataclass(frozen=True)
class BlockJob:
    """The frozen argument of one block task: (block, scenes touching it, settings, output)."""

    block: Block
    scenes: tuple  # tuple[basemap.stac.Scene, ...] in manifest order
    settings: BuildSettings
    storage: object  # basemap.storage.LocalStorage

    def __dask_tokenize__(self) -> tuple:
        from dask.base import tokenize

        return ("basemap.build.BlockJob", tokenize(self.block, self.scenes, self.settings,
                                                    self.storage))


@dataclass(frozen=True)
class BlockResult:
    """The record of one block: status ok / empty / degraded / failed, and what it wrote.

    ``empty`` means the block was computed and has no valid pixel (all cloud or nodata: nothing
    written, the model not run), which is not the same as ``failed`` (not computed).
    """

    block: Block
    status: str
    scenes: int = 0
    tiles: tuple[tuple[int, int], ...] = ()
    cog: str | None = None
    message: str = ""
    seconds: float = 0.0
    rgba: np.ndarray | None = field(default=None, compare=False, repr=False)


def build_block(job: BlockJob) -> BlockResult:
    """Dask task: build one block's COG and tiles; a pure function of the job.

    Returns:
        The block's record, carrying its root tile's RGBA for the pyramid above it (None when
        the block is empty or the pyramid starts below it).
    """
    import rasterio

    from basemap.cog import cog_key, write_cog
    from basemap.composite import Method
    from basemap.read import gdal_env, observations
    from basemap.tiles import TileOutput, write_levels

    start = time.perf_counter()
    s = job.settings
    block = job.block
    renderer = s.make_renderer()
    need = input_region(block, renderer)
    region = read_region(block, s, renderer)
    rsettings = s.read_settings()
    comp = Method(s.composite).compositor((region.height, region.width), s.feather)
    used, skipped = 0, []
    with rasterio.Env(**gdal_env()):
        for _, refl, observed in observations(job.scenes, region, rsettings, skipped):
            comp.add(refl, observed)
            used += 1
    refl, valid = comp.result()
    status = "degraded" if skipped else "ok"
    message = f"missing assets of {', '.join(skipped)}" if skipped else ""
    rows, cols = block.region.slices((region.x0, region.y0))
    alpha = valid[rows, cols]
    if not alpha.any():  # all cloud / nodata: the renderer is not run, nothing is written
        return BlockResult(block, "degraded" if skipped else "empty", used, message=message,
                           seconds=time.perf_counter() - start)
    nr, nc = need.slices((region.x0, region.y0))
    rgb = renderer.render(refl[:, nr, nc], valid[nr, nc], (need.x0, need.y0), block.region)
    rgba = np.concatenate([rgb, (alpha * np.uint8(255))[None]]).astype(np.uint8)
    rgba[:3, ~alpha] = 0
    key = cog_key(block)
    write_cog(rgba, block.region, s.zmax, job.storage, key)
    out = TileOutput(job.storage, s.tile_format)
    tx, ty = block.region.x0 // TILE_SIZE, block.region.y0 // TILE_SIZE
    counts, root = write_levels(rgba, tx, ty, s.zmax, s.zmin, out)
    rz = block.root[0]
    return BlockResult(
        block, status, used, tuple(sorted(counts.items(), reverse=True)), key, message,
        time.perf_counter() - start, rgba=root if min(counts) == rz and rz > s.zmin else None,
    )


# ---- planning ------------------------------------------------------------------------------


def search_bbox(blocks: list[Block], settings: BuildSettings, renderer) -> BBox:
    """The WGS84 box to search: the union of the blocks' read regions (two boxes across the
    antimeridian are returned as one box with west > east)."""
    world = TILE_SIZE << settings.zmax
    west_half = [b for b in blocks if b.region.x0 < world // 2]
    east_half = [b for b in blocks if b.region.x0 >= world // 2]
    parts = []
    for group in (west_half, east_half):
        if group:
            r = union([read_region(b, settings, renderer) for b in group])
            parts.append(region_lonlat_bounds(r, settings.zmax))
    if len(parts) == 2 and parts[1][2] - parts[0][0] > 180.0:
        # blocks near both edges of the world: a box across the antimeridian
        (w0, s0, e0, n0), (w1, s1, e1, n1) = parts
        return BBox(w1, min(s0, s1), e0, max(n0, n1))
    w = min(p[0] for p in parts)
    return BBox(w, min(p[1] for p in parts), max(p[2] for p in parts), max(p[3] for p in parts))


def assign_scenes(blocks, scenes, settings, renderer):
    """(block, scenes whose footprint touches its read region) for every block with data in it.

    A block is kept when some footprint intersects the block itself; its scenes are those whose
    footprint intersects its read region, in manifest order.
    """
    rings = [(s, footprint_px_rings(s.footprint, settings.zmax)) for s in scenes]
    out = []
    for block in blocks:
        if not any(ring_intersects(r, block.region) for _, rs in rings for r in rs):
            continue
        rr = read_region(block, settings, renderer)
        touching = tuple(s for s, rs in rings if any(ring_intersects(r, rr) for r in rs))
        out.append((block, touching))
    return out


# ---- outputs -------------------------------------------------------------------------------


def tilejson(bbox: BBox, settings: BuildSettings, zmin_written: int) -> dict:
    """TileJSON 3.0.0 for the tiles (template relative to the output folder)."""
    from basemap.tiles import TILE_FORMATS

    w, s, e, n = bbox.as_tuple()
    cx = (w + e) / 2 if w <= e else ((w + e + 360) / 2 + 180) % 360 - 180
    return {
        "tilejson": "3.0.0",
        "name": "basemap",
        "description": f"Sentinel-2 L2A basemap, renderer {settings.renderer}",
        "version": __version__,
        "attribution": ATTRIBUTION,
        "scheme": "xyz",
        "tiles": [f"tiles/{{z}}/{{x}}/{{y}}.{TILE_FORMATS[settings.tile_format]}"],
        "minzoom": min(zmin_written, settings.zmax),
        "maxzoom": settings.zmax,
        "bounds": [w, s, e, n],
        "center": [cx, (s + n) / 2, min(settings.zmax, max(settings.zmin, 10))],
    }


def model_checksum(settings: BuildSettings) -> dict | None:
    """Path and sha256 of the U-Net weights used (None for the classic renderers)."""
    if settings.renderer != "unet":
        return None
    from basemap.model.weights import DEFAULT_WEIGHTS, sha256

    path = Path(settings.model) if settings.model else DEFAULT_WEIGHTS
    return {"path": str(path), "sha256": sha256(path) if path.is_file() else None}


def check_weights(settings: BuildSettings) -> None:
    """Preflight: the U-Net's weights file exists (before any search or compute).

    Raises:
        WeightsError: naming the file and how to get one.
    """
    if settings.renderer != "unet":
        return
    from basemap.errors import WeightsError
    from basemap.model.weights import DEFAULT_WEIGHTS

    path = Path(settings.model) if settings.model else DEFAULT_WEIGHTS
    if not path.is_file():
        raise WeightsError(
            f"U-Net weights {path} not found: pass --model PATH (from `basemap train`), or use "
            "a classic renderer, e.g. --renderer linear"
        )


@dataclass
class BuildSummary:
    """What a build did (printed at the end, and kept in build.json)."""

    out: str
    bbox: BBox
    scenes: int = 0
    blocks: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    tiles: dict[int, int] = field(default_factory=dict)
    tiles_missing: int = 0
    seconds: float = 0.0
    megapixels: float = 0.0
    area_km2: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """Human-readable summary."""
        lines = [
            f"area      {self.area_km2:,.1f} km2 ({self.bbox})",
            f"scenes    {self.scenes}",
            "blocks    " + (", ".join(f"{v} {k}" for k, v in self.blocks.items()) or "none"),
            "tiles     " + (", ".join(f"z{z}: {n}" for z, n in sorted(self.tiles.items()))
                            or "none"),
            f"time      {self.seconds:.1f} s, {self.megapixels / max(self.seconds, 1e-9):.2f} "
            f"Mpx/s ({self.megapixels:.1f} Mpx at max zoom)",
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
    stac: str,
    collection: str | None = None,
    datetime: str | None = None,
    max_cloud: float | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> BuildSummary:
    """Run a whole build (see the module docstring); returns its summary.

    Raises:
        InputError / ConfigError: bad options or an unusable output (exit 2), before any search.
        StacError: the search failed.
        BasemapError: the output's disk is full (exit 1; the run stops, temp files are removed).
    """
    from dataclasses import replace

    from basemap.ledger import Lease, clean_temp_files
    from basemap.stac import check_max_cloud, parse_datetime
    from basemap.storage import open_storage

    start = time.perf_counter()
    settings = replace(settings, zmin=zoom.min, zmax=zoom.max).validated()
    parse_datetime(datetime)
    check_max_cloud(max_cloud)
    storage = open_storage(out)
    check_weights(settings)
    storage.check_writable()
    try:
        with Lease(storage):  # one run per output at a time (RELIABILITY.md row 21)
            clean_temp_files(storage)
            return _build(bbox, settings, stac, collection, datetime, max_cloud, workers,
                          scheduler, progress, storage, start)
    except OSError as exc:  # disk full is fatal, not a failed block (RELIABILITY.md row 18)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise BasemapError(
            f"no space left on the device of the output {out} ({exc}): nothing half-written "
            "was kept under a final name; free some space (or choose another --out) and run "
            "the same command again: finished blocks are kept"
        ) from exc


def _build(bbox, settings, stac, collection, datetime, max_cloud, workers, scheduler,
           progress, storage, start) -> BuildSummary:
    """The build proper, run under the output's lease (see :func:`build`)."""
    from basemap.cog import write_vrt
    from basemap.graph import dask_client, run_graph
    from basemap.stac import search
    from basemap.tiles import TileOutput

    renderer = settings.make_renderer()
    summary = BuildSummary(out=storage.root, bbox=bbox, area_km2=_area_km2(bbox))

    planned = plan_blocks(bbox_regions(bbox, settings.zmax), settings.block_size, settings.zmax)
    where = search_bbox(planned, settings, renderer)
    scenes = search(stac, where, datetime, max_cloud, collection)
    scenes = freeze_manifest(storage, scenes, {  # reruns use the first run's items (row 22)
        "stac": stac, "bbox": list(where.as_tuple()), "datetime": datetime,
        "max_cloud": max_cloud, "collection": collection})
    storage.write_bytes("manifest.json", json.dumps(
        {"version": 1, "scenes": [s.to_dict() for s in scenes]}, indent=1).encode())
    summary.scenes = len(scenes)
    summary.paths["manifest"] = str(storage.path("manifest.json"))
    if not scenes:
        log.warning("no items found for %s in %s: nothing to build", bbox, stac)
        summary.seconds = time.perf_counter() - start
        return summary
    assigned = assign_scenes(planned, scenes, settings, renderer)
    jobs = [BlockJob(b, sc, settings, storage) for b, sc in assigned]
    tile_out = TileOutput(storage, settings.tile_format)
    with dask_client(workers, scheduler, want_gpu=settings.renderer == "unet") as client:
        results, pyramid, missing = run_graph(client, jobs, tile_out, settings.zmin, progress)

    for r in results:
        summary.blocks[r.status] = summary.blocks.get(r.status, 0) + 1
        for z, n in r.tiles:
            summary.tiles[z] = summary.tiles.get(z, 0) + n
    for z, n in pyramid.items():
        summary.tiles[z] = summary.tiles.get(z, 0) + n
    summary.failed = [f"{r.block.name} ({r.message})" for r in results if r.status == "failed"]
    summary.tiles_missing = missing
    summary.megapixels = len(results) * settings.block_size**2 / 1e6

    if hasattr(storage, "clean_scratch"):  # local folders: remove the empty scratch folder
        storage.clean_scratch()
    cogs = [(r.cog, r.block.region) for r in results if r.cog]
    write_vrt(cogs, settings.zmax, storage)
    zwritten = min(summary.tiles) if summary.tiles else settings.zmax
    storage.write_bytes("tilejson.json", json.dumps(tilejson(bbox, settings, zwritten),
                                                    indent=1).encode())
    summary.seconds = time.perf_counter() - start
    record = {
        "version": __version__,
        "bbox": list(bbox.as_tuple()),
        "zoom": [settings.zmin, settings.zmax],
        "stac": stac,
        "collection": collection,
        "datetime": datetime,
        "max_cloud": max_cloud,
        "settings": {f.name: getattr(settings, f.name) for f in fields(settings)},
        "stride": settings.window - settings.overlap,
        "halo": max(max(b.region.x0 - rr.x0, b.region.y0 - rr.y0) for b, rr in
                    ((j.block, read_region(j.block, settings, renderer)) for j in jobs))
        if jobs else 0,
        "resampling": _resampling(),
        "compositing": {"method": settings.composite, "feather_px": settings.feather,
                        "rejected_scl": list(_rejected())},
        "model": model_checksum(settings),
        "items": [s.id for s in scenes],
        "blocks": [{"block": r.block.name, "status": r.status, "scenes": r.scenes,
                    "cog": r.cog, "tiles": dict(r.tiles), "message": r.message,
                    "seconds": round(r.seconds, 3)} for r in results],
        "tiles_written": {str(z): n for z, n in sorted(summary.tiles.items())},
        "seconds": round(summary.seconds, 2),
    }
    storage.write_bytes("build.json", json.dumps(record, indent=1).encode())
    summary.paths.update({
        "cogs": str(storage.path("cogs")),
        "tiles": str(storage.path("tiles")),
        "tilejson": str(storage.path("tilejson.json")),
        "vrt": str(storage.path("mosaic.vrt")) if cogs else "(none: no data)",
        "record": str(storage.path("build.json")),
    })
    return summary


def _resampling() -> dict:
    from basemap.read import RESAMPLING

    return dict(RESAMPLING, pyramid="alpha-weighted 2x2 mean", cog_overviews="average")


def _rejected() -> tuple:
    from basemap.composite import REJECTED_SCL

    return REJECTED_SCL
