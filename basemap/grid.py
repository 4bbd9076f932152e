"""The global Web Mercator pixel grid: pixels <-> EPSG:3857 <-> lon/lat <-> XYZ tiles, and blocks.

Everything the build addresses (blocks, windows, tiles, reprojection chunks) is a rectangle of
global pixels at the maximum zoom ``z``: pixel (X, Y) counted from the top-left corner of the
world, which is ``256 * 2**z`` pixels wide (docs/design.md, invariant 1). Tiles follow the
Google/OSM XYZ scheme (y grows southwards), the same as mercantile and morecantile's
WebMercatorQuad.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from affine import Affine

from basemap.errors import InputError
from basemap.types import MERCATOR_MAX_LAT, BBox

#: XYZ tile size in pixels.
TILE_SIZE = 256
#: Half the Web Mercator world width in metres (the EPSG:3857 x of longitude 180).
ORIGIN_SHIFT = 20037508.342789244
#: Spherical radius used by EPSG:3857.
EARTH_RADIUS = 6378137.0


@dataclass(frozen=True)
class Region:
    """A half-open rectangle [x0, x1) x [y0, y1) of global pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.y1 - self.y0

    def aligned_out(self, step: int) -> Region:
        """The smallest region containing this one whose edges are multiples of `step`."""
        return Region(
            (self.x0 // step) * step,
            (self.y0 // step) * step,
            -(-self.x1 // step) * step,
            -(-self.y1 // step) * step,
        )

    def slices(self, origin: tuple[int, int]) -> tuple[slice, slice]:
        """(rows, cols) slices of this region in an array whose top-left global pixel is origin."""
        ox, oy = origin
        return slice(self.y0 - oy, self.y1 - oy), slice(self.x0 - ox, self.x1 - ox)


def world_size(z: int) -> int:
    """Width (and height) of the world in pixels at zoom ``z``."""
    return TILE_SIZE << z


def resolution(z: int) -> float:
    """Metres (EPSG:3857) per pixel at zoom ``z``."""
    return 2.0 * ORIGIN_SHIFT / world_size(z)


def px_to_mercator(x: float, y: float, z: int) -> tuple[float, float]:
    """Global pixel edge coordinates -> EPSG:3857 metres."""
    res = resolution(z)
    return -ORIGIN_SHIFT + x * res, ORIGIN_SHIFT - y * res


def mercator_to_px(mx: float, my: float, z: int) -> tuple[float, float]:
    """EPSG:3857 metres -> fractional global pixel coordinates."""
    res = resolution(z)
    return (mx + ORIGIN_SHIFT) / res, (ORIGIN_SHIFT - my) / res


def lonlat_to_mercator(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 degrees -> EPSG:3857 metres (latitude clamped to the Web Mercator limit)."""
    lat = max(-MERCATOR_MAX_LAT, min(MERCATOR_MAX_LAT, lat))
    mx = EARTH_RADIUS * math.radians(lon)
    my = EARTH_RADIUS * math.log(math.tan(math.pi / 4.0 + math.radians(lat) / 2.0))
    return mx, my


def mercator_to_lonlat(mx: float, my: float) -> tuple[float, float]:
    """EPSG:3857 metres -> WGS84 degrees."""
    lon = math.degrees(mx / EARTH_RADIUS)
    lat = math.degrees(2.0 * math.atan(math.exp(my / EARTH_RADIUS)) - math.pi / 2.0)
    return lon, lat


def lonlat_to_px(lon: float, lat: float, z: int) -> tuple[float, float]:
    """WGS84 degrees -> fractional global pixel coordinates at zoom ``z``."""
    return mercator_to_px(*lonlat_to_mercator(lon, lat), z)


def px_to_lonlat(x: float, y: float, z: int) -> tuple[float, float]:
    """Global pixel edge coordinates -> WGS84 degrees."""
    return mercator_to_lonlat(*px_to_mercator(x, y, z))


def region_transform(region: Region, z: int) -> Affine:
    """The affine transform (EPSG:3857) of an array covering ``region`` at zoom ``z``.

    Built from the region's top-left pixel alone, so a region gets the same transform whatever
    it is part of.
    """
    res = resolution(z)
    mx, my = px_to_mercator(region.x0, region.y0, z)
    return Affine(res, 0.0, mx, 0.0, -res, my)


def region_mercator_bounds(region: Region, z: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a region in EPSG:3857 metres."""
    left, top = px_to_mercator(region.x0, region.y0, z)
    right, bottom = px_to_mercator(region.x1, region.y1, z)
    return left, bottom, right, top


def region_lonlat_bounds(region: Region, z: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a region in WGS84 degrees (clipped to the world)."""
    w = world_size(z)
    clipped = Region(max(region.x0, 0), max(region.y0, 0), min(region.x1, w), min(region.y1, w))
    west, north = px_to_lonlat(clipped.x0, clipped.y0, z)
    east, south = px_to_lonlat(clipped.x1, clipped.y1, z)
    return west, south, east, north


def bbox_regions(bbox: BBox, z: int) -> list[Region]:
    """Global-pixel regions covering a WGS84 bbox at zoom ``z`` (two across the antimeridian)."""
    out = []
    for part in bbox.split_antimeridian():
        x0, y0 = lonlat_to_px(part.west, part.north, z)
        x1, y1 = lonlat_to_px(part.east, part.south, z)
        w = world_size(z)
        region = Region(
            max(0, math.floor(x0)), max(0, math.floor(y0)),
            min(w, math.ceil(x1)), min(w, math.ceil(y1)),
        )
        if region.width > 0 and region.height > 0:
            out.append(region)
    return out


def intersects(a: Region, b: Region) -> bool:
    """True when two regions share at least one pixel."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def union(regions: list[Region]) -> Region:
    """The smallest region containing all ``regions``."""
    return Region(
        min(r.x0 for r in regions), min(r.y0 for r in regions),
        max(r.x1 for r in regions), max(r.y1 for r in regions),
    )


def paste(array: np.ndarray, at: tuple[slice, slice], shape: tuple[int, int]) -> np.ndarray:
    """``array`` placed at the slices ``at`` (its last two axes) of a zero array of ``shape``."""
    out = np.zeros((*array.shape[:-2], *shape), array.dtype)
    out[(..., *at)] = array
    return out


def expand(region: Region, margin: int) -> Region:
    """The region grown by ``margin`` pixels on every side."""
    return Region(region.x0 - margin, region.y0 - margin, region.x1 + margin, region.y1 + margin)


# ---- tiles -------------------------------------------------------------------------------------


def tile_region(x: int, y: int, tz: int, z: int) -> Region:
    """Global pixels (at zoom ``z`` >= ``tz``) covered by XYZ tile (x, y) of zoom ``tz``."""
    size = TILE_SIZE << (z - tz)
    return Region(x * size, y * size, (x + 1) * size, (y + 1) * size)


def tile_bounds_mercator(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of XYZ tile (x, y, z) in EPSG:3857 metres."""
    return region_mercator_bounds(tile_region(x, y, z, z), z)


def tile_bounds_lonlat(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of XYZ tile (x, y, z) in degrees."""
    return region_lonlat_bounds(tile_region(x, y, z, z), z)


def tiles_in(region: Region, z: int) -> Iterator[tuple[int, int]]:
    """(x, y) of the zoom-``z`` tiles of a tile-aligned region at zoom ``z``, row-major."""
    if region != region.aligned_out(TILE_SIZE):
        raise ValueError(f"{region} is not aligned to {TILE_SIZE}-px tiles")
    for ty in range(region.y0 // TILE_SIZE, region.y1 // TILE_SIZE):
        for tx in range(region.x0 // TILE_SIZE, region.x1 // TILE_SIZE):
            yield tx, ty


# ---- blocks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A processing block: a square of ``size`` global pixels at zoom ``z``, aligned to ``size``.

    ``size`` is ``256 * 2**k``, so a block is exactly XYZ tile (bx, by) of zoom ``z - k``: its
    "root tile", from which the pyramid above the block is built.
    """

    bx: int
    by: int
    size: int
    z: int

    @property
    def region(self) -> Region:
        """The block's own pixels."""
        return Region(
            self.bx * self.size, self.by * self.size,
            (self.bx + 1) * self.size, (self.by + 1) * self.size,
        )

    @property
    def levels(self) -> int:
        """k: the number of 2x reductions from the max zoom down to the root tile."""
        return (self.size // TILE_SIZE).bit_length() - 1

    @property
    def root(self) -> tuple[int, int, int]:
        """(z, x, y) of the XYZ tile that is exactly this block."""
        return self.z - self.levels, self.bx, self.by

    @property
    def name(self) -> str:
        """A stable short name, "z/x/y" of the root tile."""
        rz, rx, ry = self.root
        return f"{rz}/{rx}/{ry}"

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.grid.Block", self.bx, self.by, self.size, self.z)


def check_block_size(size: int) -> int:
    """Validate a block size: 256 times a power of two.

    Raises:
        InputError: otherwise, with the nearest valid sizes.
    """
    n = size // TILE_SIZE
    if size <= 0 or size % TILE_SIZE or n & (n - 1):
        raise InputError(
            "--block-size must be 256 times a power of two (256, 512, 1024, 2048, 4096), "
            f"got {size}"
        )
    return size


def plan_blocks(regions: list[Region], size: int, z: int) -> list[Block]:
    """Every block of the global block grid that intersects one of ``regions``, sorted by (by, bx).

    Raises:
        InputError: ``size`` is not 256 times a power of two, or larger than the world at ``z``.
    """
    check_block_size(size)
    if size > world_size(z):
        raise InputError(
            f"--block-size {size} is larger than the whole world at zoom {z} ({world_size(z)} px); "
            f"use --block-size {world_size(z)} or less"
        )
    found = set()
    for r in regions:
        for by in range(r.y0 // size, -(-r.y1 // size)):
            for bx in range(r.x0 // size, -(-r.x1 // size)):
                found.add((by, bx))
    return [Block(bx, by, size, z) for by, bx in sorted(found)]


def footprint_px_rings(footprint: str, z: int) -> list[list[tuple[float, float]]]:
    """Outer rings of a GeoJSON (Multi)Polygon footprint in global pixels at zoom ``z``."""
    geom = json.loads(footprint)
    if geom.get("type") == "Polygon":
        polys = [geom["coordinates"]]
    elif geom.get("type") == "MultiPolygon":
        polys = geom["coordinates"]
    else:
        return []
    return [[lonlat_to_px(lon, lat, z) for lon, lat, *_ in poly[0]] for poly in polys if poly]


def ring_intersects(ring: list[tuple[float, float]], region: Region) -> bool:
    """True when a polygon ring (global px) and a region overlap (matplotlib's exact path test)."""
    from matplotlib.path import Path
    from matplotlib.transforms import Bbox

    if len(ring) < 3:
        return False
    box = Bbox.from_extents(region.x0, region.y0, region.x1, region.y1)
    return bool(Path(ring).intersects_bbox(box, filled=True))
