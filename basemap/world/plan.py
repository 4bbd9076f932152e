"""World-scale planning (`basemap plan`): the global block grid cut into shards, each one
resumable `build` run.

A shard is a square of `shard_size` x `shard_size` blocks on the global Web Mercator grid at the
max zoom (blocks as in the build). Its bbox is pulled in by a fraction of a pixel from the block
edges, so a build over it covers exactly its blocks and never a neighbour's. With `land_only`,
shards without a land block (by the coarse mask shipped in basemap/data) are skipped.

Each shard builds zooms `shard_zoom(...)`..max: from the zoom where a shard is one tile upwards,
so the tiles of different shards never overlap. The low zooms (0..shard_zoom-1) are one final
pyramid step over the whole output, run after every shard has finished (:mod:`basemap.world.run`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from basemap import config, grid
from basemap.errors import InputError
from basemap.types import BBox

TILE = grid.TILE_SIZE
#: Inward margin (in max-zoom pixels) of a shard's bbox: keeps the build off neighbour blocks.
EDGE_MARGIN_PX = 0.25


@dataclass(frozen=True)
class Shard:
    """One unit of scheduled work: a block-aligned rectangle, built by one `basemap build`."""

    id: str
    bbox: tuple[float, float, float, float]  # W, S, E, N degrees, shrunk by EDGE_MARGIN_PX
    blocks: tuple[int, int, int, int]  # block columns/rows [bx0, by0, bx1, by1), half-open
    land_blocks: int

    def bbox_arg(self) -> str:
        """The bbox as `basemap build --bbox` takes it."""
        return ",".join(repr(round(v, 10)) for v in self.bbox)


@dataclass(frozen=True)
class Plan:
    """A list of shards over the world (or regions) at one max zoom."""

    zoom: int
    block_size: int
    shard_size: int
    land_only: bool
    shards: tuple[Shard, ...]
    blocks_total: int  # blocks in the planned area, land or not

    @property
    def shard_zoom(self) -> int:
        """Lowest zoom a shard builds itself: where one shard is exactly one tile."""
        return shard_zoom(self.zoom, self.block_size, self.shard_size)

    @property
    def land_blocks(self) -> int:
        """Blocks with land in the kept shards."""
        return sum(s.land_blocks for s in self.shards)

    def to_json(self) -> dict:
        """Plain JSON (what `basemap plan --out` writes and `basemap world run` reads)."""
        doc = asdict(self)
        doc["shard_zoom"] = self.shard_zoom
        doc["summary"] = summary(self)
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> Plan:
        """Inverse of to_json."""
        shards = tuple(
            Shard(s["id"], tuple(s["bbox"]), tuple(s["blocks"]), s["land_blocks"])
            for s in doc["shards"]
        )
        return cls(doc["zoom"], doc["block_size"], doc["shard_size"], doc["land_only"], shards,
                   doc["blocks_total"])

    def write(self, path: Path) -> None:
        """Write the plan as JSON."""
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        """Read a plan written by `write`; InputError naming the file when it isn't one."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path} is not a shard plan ({exc}); make one with `basemap plan --world "
                "--out shards.json`"
            ) from exc


def shard_zoom(zoom: int, block_size: int, shard_size: int) -> int:
    """Zoom at which one shard of `shard_size`**2 blocks is one 256-px tile."""
    tiles = shard_size * block_size // TILE
    return zoom - int(math.log2(tiles))


@lru_cache(maxsize=1)
def land_mask() -> tuple[np.ndarray, float]:
    """The shipped coarse land mask: (rows, cols) bool, north-up from 90N/180W, and its cell size.

    Derived from the `global-land-mask` package (GLOBE 1 km, MIT) by workflows/make_land_mask.py:
    a 0.25 degree cell is land when any of its 1 km pixels is.
    """
    ref = resources.files("basemap") / "data" / "land_mask_0p25.npz"
    with resources.as_file(ref) as path, np.load(path) as npz:
        rows, cols = (int(v) for v in npz["shape"])
        land = np.unpackbits(npz["land"], axis=1, count=cols).astype(bool)
        return land.reshape(rows, cols), float(npz["cell_deg"])


def land_blocks(zoom: int, block_size: int, margin_cells: int = 1) -> np.ndarray:
    """(n, n) bool over the global block grid: True where a block touches land.

    `margin_cells` dilates the mask (one 0.25-degree cell by default), so coasts and islands the
    coarse mask clips are kept: the plan errs on the side of building a little ocean.
    """
    land, cell = land_mask()
    rows, cols = land.shape
    n = TILE * 2**zoom // block_size
    # Cumulative sums answer "any land in this cell rectangle" in O(1) per block.
    csum = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    csum[1:, 1:] = land.cumsum(0).cumsum(1)
    edges = [grid.px_to_lonlat(v, v, zoom) for v in range(0, n * block_size + 1, block_size)]
    lon = np.array([e[0] for e in edges])
    lat = np.array([e[1] for e in edges])
    c0 = np.clip(np.floor((lon[:-1] + 180.0) / cell).astype(int) - margin_cells, 0, cols)
    c1 = np.clip(np.ceil((lon[1:] + 180.0) / cell).astype(int) + margin_cells, 0, cols)
    r0 = np.clip(np.floor((90.0 - lat[:-1]) / cell).astype(int) - margin_cells, 0, rows)
    r1 = np.clip(np.ceil((90.0 - lat[1:]) / cell).astype(int) + margin_cells, 0, rows)
    a = csum[r1[:, None], c1[None, :]] - csum[r0[:, None], c1[None, :]]
    b = csum[r1[:, None], c0[None, :]] - csum[r0[:, None], c0[None, :]]
    return (a - b) > 0  # [block row, block column]


def plan(
    zoom: int = 14,
    block_size: int = config.BLOCK_SIZE,
    shard_size: int = 8,
    land_only: bool = True,
    regions: list[BBox] | None = None,
) -> Plan:
    """Cut the world (or `regions`) into shards of `shard_size` x `shard_size` blocks.

    Shards sit on a fixed global shard grid (shard (i, j) covers blocks i*shard_size.. and
    j*shard_size..), so plans of overlapping regions name the same shards and never split a block.

    Raises:
        InputError: block or shard sizes that don't tile the world, or a zoom out of range.
    """
    grid.check_block_size(block_size)
    n = grid.world_size(zoom) // block_size
    if n < 1:
        raise InputError(f"--block-size {block_size} is larger than the world at z{zoom}")
    if shard_size < 1 or shard_size & (shard_size - 1) or shard_size > n:
        raise InputError(f"--shard-size {shard_size} must be a power of two from 1 to {n} blocks")
    wanted = np.zeros((n, n), dtype=bool)
    if regions:
        px_regions = [r for bbox in regions for r in grid.bbox_regions(bbox, zoom)]
        for block in grid.plan_blocks(px_regions, block_size, zoom):
            wanted[block.by, block.bx] = True
    else:
        wanted[:] = True
    keep = wanted & land_blocks(zoom, block_size) if land_only else wanted
    ns = n // shard_size
    counts = keep.reshape(ns, shard_size, ns, shard_size).sum(axis=(1, 3))
    margin = EDGE_MARGIN_PX
    shards = []
    for j, i in zip(*np.nonzero(counts), strict=True):
        bx0, by0 = int(i) * shard_size, int(j) * shard_size
        bx1, by1 = bx0 + shard_size, by0 + shard_size
        west, north = grid.px_to_lonlat(bx0 * block_size + margin, by0 * block_size + margin, zoom)
        east, south = grid.px_to_lonlat(bx1 * block_size - margin, by1 * block_size - margin, zoom)
        bbox = (west, south, east, north)
        shards.append(Shard(f"z{zoom}-b{block_size}-s{shard_size}-x{i}-y{j}", bbox,
                            (bx0, by0, bx1, by1), int(counts[j, i])))
    return Plan(zoom, block_size, shard_size, land_only, tuple(shards), int(wanted.sum()))


def summary(p: Plan) -> dict:
    """Sizes of the job: pixels, blocks and tiles at the max zoom, land fraction."""
    block_px = p.block_size**2
    tiles_per_block = (p.block_size // TILE) ** 2
    return {
        "shards": len(p.shards),
        "blocks_planned_area": p.blocks_total,
        "blocks_with_land": p.land_blocks,
        "land_fraction_of_blocks": round(p.land_blocks / max(p.blocks_total, 1), 4),
        "pixels_max_zoom": p.land_blocks * block_px,
        "tiles_max_zoom": p.land_blocks * tiles_per_block,
        # Each zoom below has a quarter of the tiles above it (at most): a geometric series.
        "tiles_all_zooms_upper_bound": round(p.land_blocks * tiles_per_block * 4 / 3),
    }
