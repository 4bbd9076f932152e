"""`basemap tiles`: XYZ tiles from any 8-bit raster, with the build's pyramid code.

The source is warped once into the global Web Mercator pixel grid of the max zoom (a GDAL warped
VRT over the whole world, read block by block: every source pixel is read once per block that
needs it, and no tile is ever decoded again). Each block (``block_size`` px, aligned to the global
grid, so it is exactly one tile of a lower zoom) writes its max-zoom tiles and reduces itself 2x
down to its root tile (:func:`basemap.output.pyramid.write_levels`); the levels above the blocks
come from the roots by the same exact alpha-aware 2x reduction and the same level loop
(:func:`basemap.output.pyramid.reduce_tiles`). Blocks run in ``workers`` threads of this process:
the warp (GDAL), the reductions (numpy) and the PNG deflate (zlib) all release the GIL, and threads
start in no time where each spawned process imported the whole CLI again (1-2 s each).

Alpha: the source's alpha band, else its mask or nodata (GDAL's dataset mask), and pixels outside
the source, are transparent; tiles with no visible pixel are not written (as in the build).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from basemap import config
from basemap.errors import ConfigError, InputError
from basemap.grid import (
    TILE_SIZE,
    Block,
    Region,
    mercator_to_lonlat,
    mercator_to_px,
    plan_blocks,
    region_transform,
    world_size,
)
from basemap.output.media import TILE_FORMATS
from basemap.output.pyramid import reduce_tiles, write_levels
from basemap.output.storage import open_storage
from basemap.output.tilejson import tilejson
from basemap.output.tiles import TileOutput
from basemap.progress import SILENT, Progress

#: Resampling names accepted by ``--resampling`` (GDAL warp kernels).
RESAMPLINGS = ("nearest", "bilinear", "cubic", "average", "lanczos")


@dataclass(frozen=True)
class TilesJob:
    """Everything a worker needs to tile one block (frozen, picklable)."""

    src: str
    zmax: int
    zmin: int
    fmt: str
    resampling: str
    out: str


def source_region(src: str, zmax: int) -> tuple[Region, tuple[float, float, float, float]]:
    """The global-pixel region (at ``zmax``) and WGS84 bounds covered by an 8-bit raster.

    Raises:
        ConfigError: unreadable file. InputError: not 8-bit, no CRS, wrong band count.
    """
    try:
        ds = rasterio.open(src)
    except RasterioIOError as exc:
        raise ConfigError(f"cannot open {src}: {exc}") from exc
    with ds:
        if ds.crs is None:
            raise InputError(f"{src} has no CRS: georeference it first (gdal_translate -a_srs)")
        if ds.dtypes[0] != "uint8":
            raise InputError(f"{src} is {ds.dtypes[0]}; `basemap tiles` takes an 8-bit raster "
                             "(scale it first, e.g. gdal_translate -ot Byte -scale)")
        if ds.count not in (1, 2, 3, 4):
            raise InputError(f"{src} has {ds.count} bands; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
        left, bottom, right, top = transform_bounds(ds.crs, "EPSG:3857", *ds.bounds,
                                                    densify_pts=21)
    x0, y0 = mercator_to_px(left, top, zmax)
    x1, y1 = mercator_to_px(right, bottom, zmax)
    w = world_size(zmax)
    region = Region(max(0, int(np.floor(x0 + 1e-6))), max(0, int(np.floor(y0 + 1e-6))),
                    min(w, int(np.ceil(x1 - 1e-6))), min(w, int(np.ceil(y1 - 1e-6))))
    west, north = mercator_to_lonlat(left, top)
    east, south = mercator_to_lonlat(right, bottom)
    return region, (west, south, east, north)


def _warped(job: TilesJob) -> WarpedVRT:
    """The world-wide WarpedVRT in EPSG:3857 at zmax of this thread, opened once per source
    (GDAL handles are not shared between threads)."""
    key = (job.src, job.zmax, job.resampling)
    if getattr(_OPEN, "key", None) != key:
        for handle in getattr(_OPEN, "handles", ()):
            handle.close()
        _OPEN.key, _OPEN.handles = None, ()
        ds = rasterio.open(job.src)
        w = world_size(job.zmax)
        vrt = WarpedVRT(ds, crs="EPSG:3857", transform=region_transform(Region(0, 0, w, w),
                        job.zmax), width=w, height=w, resampling=Resampling[job.resampling],
                        add_alpha=ds.count in (1, 3), warp_mem_limit=256)
        _OPEN.key, _OPEN.handles, _OPEN.vrt = key, (vrt, ds), vrt
    return _OPEN.vrt


#: Per-thread cache of the open source (a worker thread tiles many blocks of one source).
_OPEN = threading.local()


def read_rgba(job: TilesJob, region: Region) -> np.ndarray:
    """The source warped into ``region`` of the global grid: uint8 RGBA (4, h, w)."""
    vrt = _warped(job)
    data = vrt.read(window=Window(region.x0, region.y0, region.width, region.height))
    if data.shape[0] == 2:  # grey + alpha
        data = data[[0, 0, 0, 1]]
    if data.shape[0] == 4 and vrt.count == 4 and not _has_alpha(vrt):
        data[3] = vrt.read_masks(1, window=Window(region.x0, region.y0, region.width,
                                                  region.height))
    out = np.ascontiguousarray(data, dtype=np.uint8)
    clear = out[3] == 0
    if clear.any():  # most blocks have none: skip the masked write
        np.copyto(out[:3], 0, where=clear)
    return out


def _has_alpha(vrt: WarpedVRT) -> bool:
    return vrt.colorinterp[-1] == ColorInterp.alpha


def tile_block(job: TilesJob, block: Block) -> tuple[Block, dict[int, int], np.ndarray | None]:
    """Worker task: warp one block, write its tiles from zmax down to its root (or zmin).

    Returns:
        (block, tiles written per zoom, RGBA of its root tile when the pyramid continues above it
        and the block has a visible pixel, else None).
    """
    rgba = read_rgba(job, block.region)
    if not rgba[3].any():
        return block, {}, None
    out = TileOutput(open_storage(job.out), job.fmt)
    tx, ty = block.region.x0 // TILE_SIZE, block.region.y0 // TILE_SIZE
    counts, root = write_levels(rgba, tx, ty, job.zmax, job.zmin, out)
    rz = block.root[0]
    return block, counts, (root if min(counts) == rz and rz > job.zmin else None)


@dataclass
class TilesSummary:
    """What `basemap tiles` did."""

    out: str
    bounds: tuple[float, float, float, float]
    blocks: int = 0
    tiles: dict[int, int] | None = None
    seconds: float = 0.0

    def text(self) -> str:
        """Human-readable summary."""
        tiles = self.tiles or {}
        per_zoom = ", ".join(f"z{z}: {n}" for z, n in sorted(tiles.items()))
        return (f"tiles     {sum(tiles.values())} ({per_zoom or 'none'})\n"
                f"blocks    {self.blocks}\n"
                f"time      {self.seconds:.1f} s\n"
                f"out       {self.out}")


def make_tiles(src: str | os.PathLike, out: str, zmin: int, zmax: int, fmt: str = "png",
               workers: int | None = None, block_size: int = config.BLOCK_SIZE,
               resampling: str = "bilinear",
               progress: Progress = SILENT) -> TilesSummary:
    """Tile an 8-bit raster into ``OUT/tiles/{z}/{x}/{y}.{ext}`` plus ``OUT/tilejson.json``.

    Args:
        src: any GDAL-readable 8-bit raster with a CRS (1, 3 or 4 bands; alpha, mask or nodata).
        out: output folder (or s3:// prefix).
        zmin, zmax: zoom range.
        fmt: webp, png or jpeg (:data:`basemap.output.media.TILE_FORMATS`).
        workers: threads (default: CPU count; 0 = in the calling thread).
        block_size: block side in px at zmax (256 times a power of two).
        resampling: GDAL warp kernel into the global grid.
        progress: where the blocks done are reported.

    Raises:
        InputError: bad options or source. ConfigError: unreadable source or output.
    """
    start = time.perf_counter()
    src = str(src)
    if not src.startswith("/vsi") and "://" not in src and not Path(src).is_file():
        raise ConfigError(f"{src}: no such file")
    if fmt not in TILE_FORMATS:
        raise InputError(f"--tile-format {fmt!r}: one of {tuple(TILE_FORMATS)}")
    if resampling not in RESAMPLINGS:
        raise InputError(f"--resampling {resampling!r}: one of {RESAMPLINGS}")
    region, bounds = source_region(src, zmax)
    if region.width <= 0 or region.height <= 0:
        raise InputError(f"{src} does not overlap the Web Mercator world")
    storage = open_storage(out)
    storage.check_writable()
    block_size = min(block_size, world_size(zmax))
    blocks = plan_blocks([region], block_size, zmax)
    job = TilesJob(src, zmax, zmin, fmt, resampling, out)
    counts: dict[int, int] = {}
    roots: dict[tuple[int, int], np.ndarray] = {}
    bar = progress.stage("blocks", len(blocks), "block")
    for block, c, root in _run(job, blocks, workers):
        for z, n in c.items():
            counts[z] = counts.get(z, 0) + n
        if root is not None:
            roots[(block.bx, block.by)] = root
        bar.advance()
    bar.close()

    # The pyramid above the blocks' roots: the same level loop, in this process (few tiles).
    reduce_tiles(roots, blocks[0].root[0], zmin, TileOutput(storage, fmt), counts=counts)
    doc = tilejson(Path(src).stem, fmt, bounds, zmin, zmax, zmin)  # not ours: no attribution
    storage.write_bytes("tilejson.json", json.dumps(doc, indent=1).encode())
    return TilesSummary(storage.root, bounds, len(blocks), counts,
                        time.perf_counter() - start)


def _run(job: TilesJob, blocks: list[Block], workers: int | None) -> Iterator[tuple]:
    """Yield tile_block results, in this thread (workers=0) or in a pool of threads."""
    n = (os.cpu_count() or 1) if workers is None else workers
    if n <= 0 or len(blocks) == 1:
        for block in blocks:
            yield tile_block(job, block)
        return
    config.export_env(config.gdal_env())
    with ThreadPoolExecutor(max_workers=min(n, len(blocks))) as pool:
        futures = [pool.submit(tile_block, job, b) for b in blocks]
        for fut in as_completed(futures):
            yield fut.result()
