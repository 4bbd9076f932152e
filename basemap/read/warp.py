"""Warp once per (region, CRS): one coordinate mapping from the global grid into a source CRS,
sampled for every band of every scene in that CRS.

**The mapping** (:class:`Lattice`): exact transforms (GDAL's, ``rasterio.warp.transform``) of
the centres of the global pixels ``(k * LATTICE, l * LATTICE)``, a fixed lattice of the global
grid at the max zoom, and bilinear interpolation between the four nodes around each pixel. A
pixel's source coordinates depend only on its global position and the CRS, never on the region
that asked for it, so partition invariance holds by construction (the same floating-point
operations per pixel in any region). Error of the interpolation against the exact transform of
every pixel (UTM -> z14, ``tests/test_warp.py``): under 2e-7 source px (asserted < 1e-5).

**The samplers** are GDAL's warp kernels at those source positions: the 4-sample **bilinear**
(nodata where the source pixel holding the centre is nodata; else the 2x2 neighbours' weights,
DN 0 left out and the rest renormalised, nodata where their weight is below 1e-5; rounded half
up) for reflectance, **nearest** for classes (SCL); a destination
pixel whose centre maps outside the source raster is nodata. Against GDAL's warp
(``rasterio.warp.reproject``, ``tolerance=0``, ``src_nodata=0``, in the 128 px chunks the
pipeline used before; ``tests/test_warp.py``): same grid shifted and finer, the same nodata
pixels and at most 1 DN apart (float32 against GDAL's doubles); UTM -> Web Mercator, the same
nodata pixels, values max 1 DN / mean 0.008 DN apart on the real 29RKH sample and max 13 DN /
mean 0.05 DN (4 % of the pixels differ) on the demo world's sharper synthetic texture, because
GDAL's warper places rows up to 1.8e-3 px off the exact transform (measured by warping a
coordinate ramp); SCL (nearest) differs at 1e-5 of the pixels (ties at pixel edges).
GDAL widens its bilinear kernel when the output pixel is coarser than the source one (max zooms
below 14); this sampler does not (a point sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine
from numba import njit
from rasterio.warp import transform

from basemap.grid import Region, px_to_mercator, world_size

__all__ = ["LATTICE", "Lattice", "SourcePixels", "padded", "sample_bilinear", "sample_nearest",
           "source_coordinates"]

#: Global pixels between two exact nodes of the coordinate mapping (divides the warp chunks).
LATTICE = 64
#: GDAL's threshold on the summed weight of the valid neighbours (else nodata).
MIN_WEIGHT = 1e-5


@dataclass(frozen=True)
class Lattice:
    """The source-CRS coordinates of the lattice nodes covering a region (the part of it inside
    the world): ``xs``, ``ys`` (rows, cols) float64, node (i, j) at global pixel
    ``(kx0 + j, ky0 + i) * LATTICE``."""

    region: Region
    kx0: int
    ky0: int
    xs: np.ndarray
    ys: np.ndarray

    @classmethod
    def of(cls, region: Region, zoom: int, crs_wkt: str) -> Lattice:
        """The lattice of ``region`` (clipped to the world) in the CRS given as WKT."""
        w = world_size(zoom)
        clipped = Region(max(region.x0, 0), max(region.y0, 0), min(region.x1, w),
                         min(region.y1, w))
        kx0, ky0 = clipped.x0 // LATTICE, clipped.y0 // LATTICE
        kx1, ky1 = (clipped.x1 - 1) // LATTICE + 1, (clipped.y1 - 1) // LATTICE + 1
        gx = np.arange(kx0, kx1 + 1, dtype=np.float64) * LATTICE + 0.5
        gy = np.arange(ky0, ky1 + 1, dtype=np.float64) * LATTICE + 0.5
        mx, my = px_to_mercator(gx[None, :], gy[:, None], zoom)
        mx, my = np.broadcast_arrays(mx, my)
        xs, ys = transform("EPSG:3857", crs_wkt, mx.ravel(), my.ravel())
        shape = mx.shape
        return cls(clipped, kx0, ky0, np.reshape(xs, shape), np.reshape(ys, shape))


@njit(cache=True, nogil=True)
def _columns(kx0: int, x0: int,  # pragma: no cover (compiled)
             width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per destination column x of a part starting at global column ``x0``: the lattice column
    left of it (relative to ``kx0``) and its fraction of the way to the next node."""
    jx = np.empty(width, np.int64)
    tx = np.empty(width, np.float64)
    for x in range(width):
        gx = x0 + x
        kx = gx // LATTICE
        jx[x], tx[x] = kx - kx0, (gx - kx * LATTICE) / LATTICE
    return jx, tx


@njit(cache=True, nogil=True, inline="always")
def _row_nodes(nodes: np.ndarray, ky0: int, gy: int,  # pragma: no cover (compiled)
               out: np.ndarray) -> None:
    """The per-node quantity interpolated to global row ``gy`` at every lattice column, into
    ``out``: the first of the two bilinear steps, once per row."""
    ky = gy // LATTICE
    ty = (gy - ky * LATTICE) / LATTICE
    iy = ky - ky0
    for j in range(out.shape[0]):
        out[j] = nodes[iy, j] * (1.0 - ty) + nodes[iy + 1, j] * ty


@njit(cache=True, nogil=True, inline="always")
def _along_row(row: np.ndarray, jx: np.ndarray, tx: np.ndarray,  # pragma: no cover (compiled)
               x: int) -> float:
    """The second bilinear step: the quantity at column x of the row from its two nodes."""
    return row[jx[x]] * (1.0 - tx[x]) + row[jx[x] + 1] * tx[x]


@njit(cache=True, nogil=True)
def _node_values(nodes: np.ndarray, kx0: int, ky0: int, x0: int,  # pragma: no cover (compiled)
                 y0: int, out: np.ndarray) -> np.ndarray:
    jx, tx = _columns(kx0, x0, out.shape[1])
    row = np.empty(nodes.shape[1], np.float64)
    for y in range(out.shape[0]):
        _row_nodes(nodes, ky0, y0 + y, row)
        for x in range(out.shape[1]):
            out[y, x] = _along_row(row, jx, tx, x)
    return out


def source_coordinates(nodes: np.ndarray, lattice: Lattice, part: Region) -> np.ndarray:
    """Values at every global pixel of ``part`` of a per-node quantity (e.g. a source pixel
    coordinate), bilinear between the lattice nodes: (part.height, part.width) float64. The
    samplers compute the same values, pixel by pixel, as they go."""
    return _node_values(nodes, lattice.kx0, lattice.ky0, part.x0, part.y0,
                        np.empty((part.height, part.width), np.float64))


@dataclass(frozen=True)
class SourcePixels:
    """Where the pixels of a lattice's region fall in one source raster grid: the destination
    part that can touch the raster, its source pixel coordinates and the source window to read.

    Attributes:
        part: global pixels whose centres may map into the raster (None: no pixel does).
        u, v: per lattice node, the source column / row coordinate (GDAL pixel space: pixel i
            spans [i, i + 1)).
        window: (row0, row1, col0, col1) of the raster to read for ``part``.
        shape: the raster's (height, width).
    """

    part: Region | None
    u: np.ndarray
    v: np.ndarray
    window: tuple[int, int, int, int]
    shape: tuple[int, int]

    @classmethod
    def of(cls, lattice: Lattice, transform: Affine, shape: tuple[int, int]) -> SourcePixels:
        """The pixels of ``lattice`` in a raster of ``transform`` (affine) and (height, width)."""
        inv = ~transform
        u = inv.a * lattice.xs + inv.b * lattice.ys + inv.c
        v = inv.d * lattice.xs + inv.e * lattice.ys + inv.f
        h, w = shape
        corners_u = np.stack([u[:-1, :-1], u[:-1, 1:], u[1:, :-1], u[1:, 1:]])
        corners_v = np.stack([v[:-1, :-1], v[:-1, 1:], v[1:, :-1], v[1:, 1:]])
        # A cell's pixels are convex combinations of its corners: its corners' box bounds them.
        hit = ((corners_u.max(0) >= 0) & (corners_u.min(0) < w)
               & (corners_v.max(0) >= 0) & (corners_v.min(0) < h))
        if not hit.any():
            return cls(None, u, v, (0, 0, 0, 0), shape)
        rows, cols = np.nonzero(hit.any(1))[0], np.nonzero(hit.any(0))[0]
        r = lattice.region
        part = Region(max(r.x0, (lattice.kx0 + cols[0]) * LATTICE),
                      max(r.y0, (lattice.ky0 + rows[0]) * LATTICE),
                      min(r.x1, (lattice.kx0 + cols[-1] + 1) * LATTICE),
                      min(r.y1, (lattice.ky0 + rows[-1] + 1) * LATTICE))
        cell = (slice(rows[0], rows[-1] + 2), slice(cols[0], cols[-1] + 2))
        c0 = int(np.clip(np.floor(u[cell].min() - 0.5), 0, w - 1))
        c1 = int(np.clip(np.floor(u[cell].max() + 0.5) + 1, 1, w))
        r0 = int(np.clip(np.floor(v[cell].min() - 0.5), 0, h - 1))
        r1 = int(np.clip(np.floor(v[cell].max() + 0.5) + 1, 1, h))
        return cls(part, u, v, (r0, r1, c0, c1), shape)


def padded(srcs: Sequence[np.ndarray]) -> np.ndarray:
    """Source windows of one grid (bands, each (h, w)) as one float32 (bands, h + 2, w + 2)
    array with a 1-px nodata border (the outside of the raster)."""
    h, w = srcs[0].shape
    out = np.zeros((len(srcs), h + 2, w + 2), np.float32)
    for band, src in enumerate(srcs):
        out[band, 1:-1, 1:-1] = src
    return out


@njit(cache=True, nogil=True, inline="always")
def _source_position(row_u: np.ndarray, row_v: np.ndarray,  # pragma: no cover (compiled)
                     jx: np.ndarray, tx: np.ndarray, x: int, height: int,
                     width: int) -> tuple[float, float, bool]:
    """(column, row, whether the centre is inside the raster) of column x of the current row,
    from the rows' interpolated nodes (:func:`_row_nodes`)."""
    uu, vv = _along_row(row_u, jx, tx, x), _along_row(row_v, jx, tx, x)
    return uu, vv, uu >= 0 and vv >= 0 and uu < width and vv < height


def _geometry(pixels: SourcePixels, lattice: Lattice, part: Region) -> np.ndarray:
    """What the kernels need besides the arrays: (kx0, ky0, x0, y0, r0, r1, c0, c1, h, w)."""
    return np.array([lattice.kx0, lattice.ky0, part.x0, part.y0, *pixels.window, *pixels.shape],
                    np.int64)


def sample_bilinear(sources: np.ndarray, pixels: SourcePixels, lattice: Lattice,
                    part: Region) -> np.ndarray:  # fmt: skip
    """GDAL's 4-sample bilinear of bands at the global pixels of ``part``, all bands in one
    pass: ``sources`` (bands, h + 2, w + 2) float32, the :func:`padded` windows of ``pixels``
    (0 = nodata) -> (bands, part.height, part.width) uint16. Nodata where the centre maps
    outside the raster or the source pixel holding it is nodata, else the valid neighbours'
    weights renormalised (nodata below MIN_WEIGHT), rounded half up."""
    out = np.empty((sources.shape[0], part.height, part.width), np.uint16)
    _bilinear_kernel(sources, pixels.u, pixels.v, _geometry(pixels, lattice, part), out)
    return out


@njit(cache=True, nogil=True)
def _bilinear_kernel(sources: np.ndarray, nodes_u: np.ndarray,  # pragma: no cover (compiled)
                     nodes_v: np.ndarray, geometry: np.ndarray, out: np.ndarray) -> None:
    """:func:`sample_bilinear`, per pixel: its source position and taps once, then every band
    (float32 throughout, in the order GDAL sums)."""
    kx0, ky0, x0, y0, r0, r1, c0, c1, height, width = geometry
    one, half, floor_weight = np.float32(1.0), np.float32(0.5), np.float32(MIN_WEIGHT)
    jx, tx = _columns(kx0, x0, out.shape[2])
    row_u, row_v = np.empty(nodes_u.shape[1]), np.empty(nodes_v.shape[1])
    for y in range(out.shape[1]):
        _row_nodes(nodes_u, ky0, y0 + y, row_u)
        _row_nodes(nodes_v, ky0, y0 + y, row_v)
        for x in range(out.shape[2]):
            uu, vv, inside = _source_position(row_u, row_v, jx, tx, x, height, width)
            if not inside:
                for b in range(sources.shape[0]):
                    out[b, y, x] = 0
                continue
            p, q = uu - (c0 + 0.5), vv - (r0 + 0.5)
            fi, fj = np.floor(p), np.floor(q)
            fx, fy = np.float32(p - fi), np.float32(q - fj)
            i = int(min(max(fi, -1.0), c1 - c0 - 1)) + 1
            j = int(min(max(fj, -1.0), r1 - r0 - 1)) + 1
            gx, gy = one - fx, one - fy
            w00, w01, w10, w11 = gx * gy, fx * gy, gx * fy, fx * fy
            ci, cj = i + (1 if fx >= half else 0), j + (1 if fy >= half else 0)
            for b in range(sources.shape[0]):
                s = sources[b]
                if s[cj, ci] == 0:
                    out[b, y, x] = 0
                    continue
                a00, a01, a10, a11 = s[j, i], s[j, i + 1], s[j + 1, i], s[j + 1, i + 1]
                num = a00 * w00
                num += a01 * w01
                num += a10 * w10
                num += a11 * w11
                den = np.float32(0.0)
                if a00 != 0:
                    den += w00
                if a01 != 0:
                    den += w01
                if a10 != 0:
                    den += w10
                if a11 != 0:
                    den += w11
                if den < floor_weight:
                    out[b, y, x] = 0
                    continue
                value = np.floor(num / den + half)
                out[b, y, x] = np.uint16(min(value, np.float32(65535.0)))


def sample_nearest(src: np.ndarray, pixels: SourcePixels, lattice: Lattice,
                   part: Region) -> np.ndarray:  # fmt: skip
    """GDAL's nearest neighbour of ``src`` (the window of ``pixels``) at the global pixels of
    ``part`` -> (part.height, part.width) of src's dtype; 0 where the centre maps outside."""
    out = np.empty((part.height, part.width), src.dtype)
    _nearest_kernel(src, pixels.u, pixels.v, _geometry(pixels, lattice, part), out)
    return out


@njit(cache=True, nogil=True)
def _nearest_kernel(src: np.ndarray, nodes_u: np.ndarray,  # pragma: no cover (compiled)
                    nodes_v: np.ndarray, geometry: np.ndarray, out: np.ndarray) -> None:
    kx0, ky0, x0, y0, r0, _, c0, _, height, width = geometry
    jx, tx = _columns(kx0, x0, out.shape[1])
    row_u, row_v = np.empty(nodes_u.shape[1]), np.empty(nodes_v.shape[1])
    for y in range(out.shape[0]):
        _row_nodes(nodes_u, ky0, y0 + y, row_u)
        _row_nodes(nodes_v, ky0, y0 + y, row_v)
        for x in range(out.shape[1]):
            uu, vv, inside = _source_position(row_u, row_v, jx, tx, x, height, width)
            if not inside:
                out[y, x] = 0
                continue
            i = min(max(int(np.floor(uu)) - c0, 0), src.shape[1] - 1)
            j = min(max(int(np.floor(vv)) - r0, 0), src.shape[0] - 1)
            out[y, x] = src[j, i]
