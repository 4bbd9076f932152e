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

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from rasterio.warp import transform

from basemap.grid import Region, px_to_mercator, world_size

__all__ = ["LATTICE", "BilinearTaps", "Lattice", "SourcePixels", "bilinear_taps", "padded",
           "sample_bilinear", "sample_nearest", "source_coordinates"]

#: Global pixels between two exact nodes of the coordinate mapping (divides the warp chunks).
LATTICE = 64
#: Rows of destination pixels sampled at a time (bounds the temporary arrays).
STRIP = 256
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


def _axis(start: int, stop: int, k0: int) -> tuple[np.ndarray, np.ndarray]:
    """(node index relative to k0, fraction) of global pixels start..stop-1 on one axis."""
    g = np.arange(start, stop)
    k = g // LATTICE
    return k - k0, ((g - k * LATTICE) / LATTICE).astype(np.float64)


def source_coordinates(nodes: np.ndarray, lattice: Lattice, part: Region) -> np.ndarray:
    """Values at every global pixel of ``part`` of a per-node quantity (e.g. a source pixel
    coordinate), bilinear between the lattice nodes: (part.height, part.width) float64."""
    jx, tx = _axis(part.x0, part.x1, lattice.kx0)
    iy, ty = _axis(part.y0, part.y1, lattice.ky0)
    rows = nodes[iy] * (1.0 - ty)[:, None] + nodes[iy + 1] * ty[:, None]
    return rows[:, jx] * (1.0 - tx) + rows[:, jx + 1] * tx


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
    def of(cls, lattice: Lattice, transform, shape: tuple[int, int]) -> SourcePixels:
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

    def strips(self, lattice: Lattice, part: Region | None = None):
        """(strip of ``part`` (default: all of it), source columns u, source rows v), STRIP
        rows at a time."""
        p = part or self.part
        for y in range(p.y0, p.y1, STRIP):
            s = Region(p.x0, y, p.x1, min(y + STRIP, p.y1))
            yield s, source_coordinates(self.u, lattice, s), source_coordinates(self.v, lattice, s)


def _inside(u: np.ndarray, v: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (u >= 0) & (v >= 0) & (u < w) & (v < h)


def padded(src: np.ndarray) -> np.ndarray:
    """A source window as float32 with a 1-px nodata border (the outside of the raster)."""
    out = np.zeros((src.shape[0] + 2, src.shape[1] + 2), np.float32)
    out[1:-1, 1:-1] = src
    return out


class BilinearTaps(NamedTuple):
    """The 2x2 source neighbours of destination pixels: their flat indices into a
    :func:`padded` window and weights (and the weights' sum), the index of the one holding
    the pixel's centre, whether the centre maps into the raster, and the box of the padded
    window all the taps fall in (rows, cols slices)."""

    indices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    total: np.ndarray
    centre: np.ndarray
    inside: np.ndarray
    box: tuple[slice, slice]


def bilinear_taps(pixels: SourcePixels, u: np.ndarray, v: np.ndarray) -> BilinearTaps:
    """The taps of GDAL's 4-sample bilinear at source pixel coordinates (u, v), shared by every
    band read in ``pixels.window``."""
    r0, r1, c0, c1 = pixels.window
    p, q = u - (c0 + 0.5), v - (r0 + 0.5)
    i, j = np.floor(p), np.floor(q)
    fx, fy = (p - i).astype(np.float32), (q - j).astype(np.float32)
    i = np.clip(i, -1, c1 - c0 - 1).astype(np.intp) + 1
    j = np.clip(j, -1, r1 - r0 - 1).astype(np.intp) + 1
    stride = c1 - c0 + 2
    gx, gy = 1 - fx, 1 - fy
    weights = (gx * gy, fx * gy, gx * fy, fx * fy)
    total = np.zeros(u.shape, np.float32)
    for w in weights:  # summed as sample_bilinear sums the valid ones
        total += w
    index = j * stride + i
    centre = index + (fx >= 0.5) + stride * (fy >= 0.5)
    box = (slice(j.min(), j.max() + 2), slice(i.min(), i.max() + 2))
    return BilinearTaps((index, index + 1, index + stride, index + stride + 1), weights, total,
                        centre, _inside(u, v, pixels.shape), box)


def sample_bilinear(source: np.ndarray, taps: BilinearTaps) -> np.ndarray:
    """GDAL's 4-sample bilinear of a :func:`padded` window (0 = nodata) at ``taps``: nodata (0)
    where the pixel holding the centre is nodata, else the valid neighbours' weights
    renormalised (nodata below MIN_WEIGHT), rounded half up; uint16. Where no tap is nodata
    (most of a scene) the same sums without the nodata bookkeeping."""
    flat = source.ravel()
    num = np.zeros(taps.centre.shape, np.float32)
    if source[taps.box].all():
        for index, weight in zip(taps.indices, taps.weights, strict=True):
            num += np.take(flat, index) * weight
        ok, den = taps.inside, taps.total
    else:
        den = np.zeros(taps.centre.shape, np.float32)
        for index, weight in zip(taps.indices, taps.weights, strict=True):
            value = np.take(flat, index)
            num += value * weight
            np.add(den, weight, out=den, where=value != 0)
        ok = taps.inside & (np.take(flat, taps.centre) != 0)
        ok &= den >= MIN_WEIGHT
    out = np.zeros(num.shape, np.float32)
    np.divide(num, den, out=out, where=ok)
    np.floor(out + 0.5, out=out)
    return np.minimum(out, 65535, out=out).astype(np.uint16)


def sample_nearest(src: np.ndarray, pixels: SourcePixels, u: np.ndarray,
                   v: np.ndarray) -> np.ndarray:  # fmt: skip
    """GDAL's nearest neighbour of ``src`` (the window of ``pixels``) at (u, v); 0 outside."""
    r0, _, c0, _ = pixels.window
    inside = _inside(u, v, pixels.shape)
    i = np.clip(np.floor(u).astype(np.intp) - c0, 0, src.shape[1] - 1)
    j = np.clip(np.floor(v).astype(np.intp) - r0, 0, src.shape[0] - 1)
    out = src[j, i]
    out[~inside] = 0
    return out
