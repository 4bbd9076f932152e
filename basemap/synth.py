"""A synthetic Sentinel-2 L2A world: UTM tiles in two zones, several dates, clouds, SCL and STAC.

Real Sentinel-2 data cannot be downloaded everywhere the project is built and tested, so this
module makes its own. The ground is ONE continuous world: every field (elevation, land cover,
texture, clouds, haze) is a deterministic function of geographic position, evaluated at each
pixel's longitude/latitude. Each MGRS-like tile then samples that world on its own UTM 10 m grid,
so overlapping tiles, including tiles of EPSG:32631 and EPSG:32632 either side of 6 E, agree
wherever the sky is clear -- what a seamless mosaic needs. See docs/synthetic-world.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal

import numpy as np

from basemap.errors import InputError
from basemap.types import BBox

Preset = Literal["test", "demo"]

#: Centre of the world: the UTM zone edge between 31 and 32 (6 E), at 45 N.
LON0, LAT0 = 6.0, 45.0
#: Metres per degree at the centre (local equirectangular "world metres").
KX = 111319.49 * math.cos(math.radians(LAT0))
KY = 111132.95


class Landscape(IntEnum):
    """Land-cover classes of the synthetic ground (the `landcover` asset holds these codes)."""

    WATER = 1
    FOREST = 2
    CROP = 3  # green crop parcels
    BARE_PARCEL = 4  # ploughed / harvested parcels
    GRASS = 5  # pasture parcels
    BARE_SOIL = 6
    DESERT = 7
    ROCK = 8
    SNOW = 9
    TOWN = 10
    ROAD = 11


#: Mean surface reflectance (R, G, B, NIR) per class, typical L2A values (see the docs' table).
REFLECTANCE: dict[Landscape, tuple[float, float, float, float]] = {
    Landscape.WATER: (0.015, 0.025, 0.034, 0.010),
    Landscape.FOREST: (0.021, 0.034, 0.018, 0.22),
    Landscape.CROP: (0.050, 0.080, 0.038, 0.38),
    Landscape.BARE_PARCEL: (0.160, 0.130, 0.095, 0.22),
    Landscape.GRASS: (0.045, 0.078, 0.034, 0.42),
    Landscape.BARE_SOIL: (0.200, 0.160, 0.120, 0.26),
    Landscape.DESERT: (0.328, 0.230, 0.160, 0.38),
    Landscape.ROCK: (0.150, 0.140, 0.125, 0.20),
    Landscape.SNOW: (0.840, 0.870, 0.900, 0.72),
    Landscape.TOWN: (0.130, 0.120, 0.110, 0.20),
    Landscape.ROAD: (0.120, 0.120, 0.120, 0.15),
}

BANDS = ("red", "green", "blue", "nir")
BAND_FILES = {"red": "B04", "green": "B03", "blue": "B02", "nir": "B08"}


@dataclass(frozen=True)
class Layout:
    """Geometry and sizes of one preset (pixels are 10 m)."""

    tile_px: int  # tile width and height at 10 m (even: SCL is 20 m)
    overlap_px: int  # overlap of neighbouring tiles in a zone (~9%)
    cols: int  # tiles per zone, west to east
    zone_reach_m: float  # how far each zone's tiles reach past 6 E into the other zone
    dates: tuple[tuple[str, str], ...]  # (datetime, processing baseline)
    blocksize: int  # COG internal tile size
    half_x: float  # half extent of the world's layout (world metres)
    half_y: float
    shadow_m: float  # cloud-shadow displacement
    cloud_scale_m: float  # size of cloud structures
    bbox_margin: float  # fraction of the covered area left out of world_bbox


PRESETS: dict[str, Layout] = {
    "test": Layout(
        tile_px=300, overlap_px=27, cols=2, zone_reach_m=2300.0,
        dates=(("2020-07-14T10:37:21.024000Z", "02.14"), ("2023-07-24T10:37:19.031000Z", "05.09")),
        blocksize=128, half_x=3200.0, half_y=1500.0, shadow_m=200.0, cloud_scale_m=700.0,
        bbox_margin=0.2,
    ),
    "demo": Layout(
        tile_px=1800, overlap_px=162, cols=2, zone_reach_m=9000.0,
        dates=(
            ("2020-07-14T10:37:21.024000Z", "02.14"),
            ("2022-07-19T10:37:18.012000Z", "04.00"),
            ("2023-07-24T10:37:19.031000Z", "05.09"),
        ),
        blocksize=512, half_x=26000.0, half_y=9000.0, shadow_m=900.0, cloud_scale_m=3500.0,
        bbox_margin=0.12,
    ),
}


def _layout(preset: str) -> Layout:
    try:
        return PRESETS[preset]
    except KeyError:
        raise InputError(
            f"unknown synth preset {preset!r}; choose one of {', '.join(PRESETS)}"
        ) from None


# ---- procedural fields (pure numpy, functions of world metres) ------------------------------


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic pseudo-random float32 in [0, 1) per integer lattice point."""
    h = ix.astype(np.int64).astype(np.uint32) * np.uint32(0x27D4EB2D)
    h ^= iy.astype(np.int64).astype(np.uint32) * np.uint32(0x165667B1)
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _value_noise(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1] with unit lattice spacing."""
    fx, fy = np.floor(x), np.floor(y)
    tx, ty = (x - fx).astype(np.float32), (y - fy).astype(np.float32)
    tx = tx * tx * (3 - 2 * tx)
    ty = ty * ty * (3 - 2 * ty)
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)
    a = _hash01(ix, iy, salt)
    b = _hash01(ix + 1, iy, salt)
    c = _hash01(ix, iy + 1, salt)
    d = _hash01(ix + 1, iy + 1, salt)
    top = a + (b - a) * tx
    bottom = c + (d - c) * tx
    return top + (bottom - top) * ty


def fbm(wx: np.ndarray, wy: np.ndarray, scale: float, octaves: int, salt: int) -> np.ndarray:
    """Fractal Brownian motion in [0, 1] (mean ~0.5): `octaves` of value noise from `scale` m."""
    total = np.zeros(np.shape(wx), np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        s = scale / 2**k
        total += np.float32(amp) * _value_noise(wx / s, wy / s, salt * 7919 + k * 104729)
        norm += amp
        amp *= 0.5
    return total / np.float32(norm)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def _voronoi(wx: np.ndarray, wy: np.ndarray, cell: float, salt: int):
    """Jittered-grid Voronoi: (cell id hash in [0,1), distance to the cell border in metres)."""
    gx, gy = np.floor(wx / cell).astype(np.int64), np.floor(wy / cell).astype(np.int64)
    best = np.full(np.shape(wx), np.inf, np.float32)
    second = np.full(np.shape(wx), np.inf, np.float32)
    ident = np.zeros(np.shape(wx), np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx, cy = gx + dx, gy + dy
            px = (cx + 0.1 + 0.8 * _hash01(cx, cy, salt)) * cell
            py = (cy + 0.1 + 0.8 * _hash01(cx, cy, salt + 1)) * cell
            d = np.hypot(wx - px, wy - py).astype(np.float32)
            closer = d < best
            second = np.where(closer, best, np.minimum(second, d))
            ident = np.where(closer, _hash01(cx, cy, salt + 2), ident)
            best = np.minimum(best, d)
    return ident, (second - best) * 0.5


def _lines(dist: np.ndarray, width: float) -> np.ndarray:
    return np.abs(dist) < width / 2


@dataclass(frozen=True)
class Ground:
    """The ground at a set of points: land cover, reflectance (4, ...) R,G,B,NIR and hillshade."""

    landcover: np.ndarray
    reflectance: np.ndarray
    shade: np.ndarray


def _elevation(wx, wy, lay: Layout, seed: int) -> np.ndarray:
    """Elevation in [0, ~1.2]: a ridge along the north of the world plus rolling hills."""
    u, v = wx / lay.half_x, wy / lay.half_y
    ridge_v = 0.62 + 0.12 * np.sin(2.2 * u + 0.5)
    ridge = np.exp(-(((v - ridge_v) / 0.38) ** 2))
    detail = fbm(wx, wy, lay.half_y * 0.5, 5, seed * 31 + 1)
    return ridge * (0.55 + 0.75 * detail) + 0.15 * fbm(wx, wy, lay.half_y, 2, seed * 31 + 2)


def ground(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int, coarse: dict) -> Ground:
    """Evaluate the ground at world metres (wx, wy). `coarse` holds smooth fields pre-sampled."""
    u, v = wx / lay.half_x, wy / lay.half_y
    warp_u = u + 0.12 * (coarse["warp_a"] - 0.5)
    warp_v = v + 0.12 * (coarse["warp_b"] - 0.5)
    elev = coarse["elev"]
    lc = np.full(wx.shape, Landscape.CROP, np.uint8)

    # Parcels: jittered Voronoi cells of ~250 m; crop, bare, grass or ripe per cell.
    pid, edge = _voronoi(wx, wy, 260.0, seed * 13 + 5)
    lc = np.where(pid < 0.48, Landscape.CROP, lc)
    lc = np.where((pid >= 0.48) & (pid < 0.70), Landscape.BARE_PARCEL, lc)
    lc = np.where(pid >= 0.70, Landscape.GRASS, lc).astype(np.uint8)
    forest_f = coarse["forest"]
    lc[forest_f > 0.60] = Landscape.FOREST
    # Desert in the south-west, ringed by bare soil.
    rd = np.hypot((warp_u + 0.58) / 0.42, (warp_v + 0.45) / 0.62)
    lc[rd < 1.25] = Landscape.BARE_SOIL
    lc[rd < 1.0] = Landscape.DESERT
    # Mountain: forest belt, rock, snow above a (noisy) snow line.
    lc[(elev > 0.55) & (elev <= 0.78)] = Landscape.FOREST
    lc[elev > 0.78] = Landscape.ROCK
    lc[elev > 0.95 + 0.08 * (coarse["warp_a"] - 0.5)] = Landscape.SNOW
    # Town, roads, lake and river.
    rt = np.hypot((warp_u - 0.12) / 0.17, (warp_v + 0.12) / 0.30)
    town = rt < 1.0
    lc[town] = Landscape.TOWN
    road_ew = (wy - (-0.12 * lay.half_y + 0.08 * lay.half_y * np.sin(1.7 * u + 0.3)))
    road_ns = (wx - (0.12 * lay.half_x + 0.05 * lay.half_x * np.sin(2.3 * v)))
    roads = (_lines(road_ew, 14.0) | _lines(road_ns, 12.0)) & (elev < 0.9)
    streets = town & (_lines((wx % 90.0) - 45.0, 9.0) | _lines((wy % 110.0) - 55.0, 9.0))
    lc[roads | streets] = Landscape.ROAD
    rl = np.hypot((warp_u - 0.50) / 0.16, (warp_v + 0.42) / 0.30)
    river_x = (0.33 + 0.07 * np.sin(5.0 * v + 1.0) + 0.04 * (coarse["warp_b"] - 0.5)) * lay.half_x
    river_w = 22.0 + 14.0 * coarse["warp_a"]
    river = (np.abs(wx - river_x) < river_w / 2) & (v > -0.45) & (elev < 0.8)
    lc[(rl < 1.0) | river] = Landscape.WATER

    refl = np.zeros((4,) + wx.shape, np.float32)
    base = np.array([REFLECTANCE[Landscape(k)] for k in range(1, len(Landscape) + 1)], np.float32)
    for b in range(4):
        refl[b] = base[lc - 1, b]

    # Per-parcel and per-class variation, then multi-scale texture.
    t_fine = fbm(wx, wy, 60.0, 3, seed * 31 + 7)
    t_mid = coarse["texture"]
    crop = lc == Landscape.CROP
    refl[:3, crop] *= 0.75 + 0.6 * pid[crop]
    refl[3, crop] *= 0.85 + 0.3 * pid[crop]
    bare = lc == Landscape.BARE_PARCEL
    refl[:, bare] *= 0.85 + 0.45 * (pid[bare] - 0.48)
    hedge = (edge < 4.0) & ((lc == Landscape.CROP) | (lc == Landscape.BARE_PARCEL) |
                            (lc == Landscape.GRASS))
    refl[:, hedge] = np.asarray(REFLECTANCE[Landscape.FOREST], np.float32)[:, None] * 1.2
    gain = 1.0 + 0.25 * (t_mid - 0.5) + 0.15 * (t_fine - 0.5)
    forest = lc == Landscape.FOREST
    crowns = fbm(wx[forest], wy[forest], 25.0, 2, seed * 31 + 8)
    gain[forest] = 0.65 + 0.9 * crowns * (0.7 + 0.6 * t_mid[forest])
    desert = lc == Landscape.DESERT
    dunes = np.sin((wx[desert] * 0.8 + wy[desert] * 0.6) / 45.0 + 6.0 * t_mid[desert])
    gain[desert] = 1.0 + 0.85 * (t_mid[desert] - 0.5) + 0.08 * dunes + 0.2 * (t_fine[desert] - 0.5)
    town_px = lc == Landscape.TOWN
    blocks = _hash01(np.floor(wx[town_px] / 20.0), np.floor(wy[town_px] / 20.0), seed * 31 + 9)
    gain[town_px] = 0.55 + 1.1 * blocks
    roofs = town_px.copy()
    roofs[town_px] = blocks > 0.8
    refl[:, roofs] = np.array([0.22, 0.12, 0.09, 0.25], np.float32)[:, None]
    gardens = town_px.copy()
    gardens[town_px] = blocks < 0.12
    refl[:, gardens] = np.asarray(REFLECTANCE[Landscape.GRASS], np.float32)[:, None]
    water = lc == Landscape.WATER
    gain[water] = 0.8 + 0.4 * t_mid[water]
    snow = lc == Landscape.SNOW
    gain[snow] = 0.9 + 0.15 * t_fine[snow]
    refl *= gain[None]
    shade = coarse["shade"]
    hill = np.where(water, 1.0, shade).astype(np.float32)
    refl *= hill[None]
    return Ground(lc, np.clip(refl, 0.001, 1.2).astype(np.float32), hill)


def _coarse_fields(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int) -> dict:
    """Smooth fields of the ground (scales >= ~200 m), cheap to evaluate on a coarse lattice."""
    elev = _elevation(wx, wy, lay, seed)
    d = 20.0
    ex = (_elevation(wx + d, wy, lay, seed) - elev) / d
    ey = (_elevation(wx, wy + d, lay, seed) - elev) / d
    relief = 0.35 * lay.half_y  # metres per unit of elevation
    nx, ny = -ex * relief, -ey * relief
    sun_az, sun_el = math.radians(150.0), math.radians(62.0)
    sx, sy, sz = math.sin(sun_az) * math.cos(sun_el), math.cos(sun_az) * math.cos(sun_el), math.sin(
        sun_el)
    shade = (nx * sx + ny * sy + sz) / np.sqrt(nx * nx + ny * ny + 1) / sz
    return {
        "elev": elev,
        "shade": np.clip(shade, 0.25, 1.3).astype(np.float32),
        "warp_a": fbm(wx, wy, lay.half_y * 0.6, 3, seed * 31 + 3),
        "warp_b": fbm(wx, wy, lay.half_y * 0.6, 3, seed * 31 + 4),
        "forest": fbm(wx, wy, 1500.0, 4, seed * 31 + 6),
        "texture": fbm(wx, wy, 600.0, 3, seed * 31 + 10),
    }


@dataclass(frozen=True)
class Sky:
    """The atmosphere of one date at a set of points."""

    cloud: np.ndarray  # opacity 0..1
    shadow: np.ndarray  # darkening strength 0..1
    cirrus: np.ndarray  # thin cirrus opacity 0..~0.3
    haze: np.ndarray  # additive path reflectance in blue


def _cloud_density(wx, wy, lay: Layout, seed: int, k: int) -> np.ndarray:
    f = fbm(wx, wy, lay.cloud_scale_m, 5, seed * 101 + 17 * k + 1)
    thr = (0.60, 0.63, 0.57)[k % 3]
    return _smoothstep(thr, thr + 0.07, f)


def _swath_outside(wx, wy, lay: Layout, k: int) -> np.ndarray:
    """The east edge of the swath of date 0 (a diagonal line); other dates cover everything."""
    if k != 0:
        return np.zeros(np.shape(wx), bool)
    return wx > lay.half_x * (0.80 + 0.25 * (wy / lay.half_y))


def _cirrus(wx, wy, lay: Layout, seed: int, k: int) -> np.ndarray:
    f = fbm(wx * 0.6, wy * 2.0, lay.cloud_scale_m * 1.5, 3, seed * 101 + 17 * k + 2)
    return 0.25 * _smoothstep(0.62, 0.75, f)


def _obstructed(wx, wy, raw_cloud, lay: Layout, seed: int, k: int) -> np.ndarray:
    """0..1: how much date k hides the ground at (wx, wy): cloud, cirrus or outside the swath."""
    cirrus = _cirrus(wx, wy, lay, seed, k) * 4
    outside = _swath_outside(wx, wy, lay, k).astype(np.float32)
    return _smoothstep(0.02, 0.2, np.maximum(np.maximum(raw_cloud, cirrus), outside))


def skies(wx, wy, lay: Layout, seed: int) -> list[Sky]:
    """The sky of every date at world metres.

    A date's clouds are thinned where every earlier date was cloudy, so the union of the dates
    leaves most ground clear at least once. Shadows are the same (thinned) clouds seen from the
    sun's direction, displaced by `lay.shadow_m`.
    """
    sun = np.array([math.sin(math.radians(150.0)), math.cos(math.radians(150.0))]) * lay.shadow_m
    out = []
    blocked = blocked_sun = None  # how obstructed every earlier date was, at p and at p + sun
    for k in range(len(lay.dates)):
        raw = _cloud_density(wx, wy, lay, seed, k)
        raw_sun = _cloud_density(wx + sun[0], wy + sun[1], lay, seed, k)
        cirrus = _cirrus(wx, wy, lay, seed, k)
        cloud = raw if blocked is None else raw * (1 - blocked)
        shadow = raw_sun if blocked_sun is None else raw_sun * (1 - blocked_sun)
        if blocked is not None:
            cirrus = cirrus * (1 - blocked)
        haze = (0.004 + 0.006 * ((seed + k) % 3)) * (
            0.6 + 0.8 * fbm(wx, wy, lay.half_x, 2, seed * 101 + 17 * k + 3))
        out.append(Sky(cloud.astype(np.float32), (0.7 * shadow).astype(np.float32),
                       cirrus.astype(np.float32), haze.astype(np.float32)))
        now = _obstructed(wx, wy, raw, lay, seed, k)
        now_sun = _obstructed(wx + sun[0], wy + sun[1], raw_sun, lay, seed, k)
        blocked = now if blocked is None else blocked * now
        blocked_sun = now_sun if blocked_sun is None else blocked_sun * now_sun
    return out


# ---- tiles: UTM grids that sample the world --------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One MGRS-like tile: a square UTM grid of `size` 10 m pixels with top-left (x0, y0)."""

    grid_code: str  # e.g. "31TGK"
    epsg: int
    x0: float
    y0: float
    size: int

    @property
    def zone(self) -> int:
        return self.epsg - 32600


_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"
_MGRS_COLS = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")


def _grid_code(zone: int, x: float, y: float, shift: int) -> str:
    """An MGRS-like code: the real 100 km square of (x, y), its column letter stepped by `shift`.

    Synthetic tiles are much smaller than real ones, so several fall in one real square; stepping
    the column letter keeps codes distinct and realistic-looking (they are labels, not locations).
    """
    cols = _MGRS_COLS[zone % 3]
    col = cols[(int(x // 100000) - 1 + shift) % len(cols)]
    row = _MGRS_ROWS[(int(y // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}T{col}{row}"


def _transformer(src: int, dst: int):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def tiles(preset: Preset = "test") -> list[Tile]:
    """The tiles of a preset: `cols` per UTM zone (31 and 32), overlapping by ~9%."""
    lay = _layout(preset)
    step = (lay.tile_px - lay.overlap_px) * 10.0
    width = step * (lay.cols - 1) + lay.tile_px * 10.0
    out = []
    for zone in (31, 32):
        epsg = 32600 + zone
        to_utm = _transformer(4326, epsg)
        reach = lay.zone_reach_m / KX
        anchor_lon = LON0 + reach if zone == 31 else LON0 - reach
        ax, ay = to_utm.transform(anchor_lon, LAT0)
        west = ax - width if zone == 31 else ax
        x_start = round(west / 20.0) * 20.0
        y_top = round((ay + lay.tile_px * 5.0) / 20.0) * 20.0
        for c in range(lay.cols):
            x0 = x_start + c * step
            code = _grid_code(zone, x0 + lay.tile_px * 5.0, y_top, c)
            out.append(Tile(code, epsg, x0, y_top, lay.tile_px))
    return out


def world_bbox(preset: Preset = "test") -> BBox:
    """A WGS84 bbox well inside the area the preset's tiles cover, straddling 6 E."""
    lay = _layout(preset)
    step = (lay.tile_px - lay.overlap_px) * 10.0
    width = step * (lay.cols - 1) + lay.tile_px * 10.0
    half_w = (width - lay.zone_reach_m) * (1 - lay.bbox_margin)
    tilt = 0.04 * width  # UTM grid convergence (~2 deg) tilts tile rows against the parallels
    half_h = (lay.tile_px * 5.0 - tilt) * (1 - lay.bbox_margin)
    return BBox(LON0 - half_w / KX, LAT0 - half_h / KY, LON0 + half_w / KX, LAT0 + half_h / KY)


def _upsample(c: np.ndarray, step: int, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of lattice values (nodes every `step` px) to an (h, w) grid."""
    def axis(n: int, m: int):
        r = np.arange(n) / step
        i0 = np.minimum(r.astype(np.int64), m - 2)
        return i0, (r - i0).astype(np.float32)

    i0, ti = axis(h, c.shape[0])
    j0, tj = axis(w, c.shape[1])
    rows = c[i0] * (1 - ti)[:, None] + c[i0 + 1] * ti[:, None]
    return (rows[:, j0] * (1 - tj) + rows[:, j0 + 1] * tj).astype(np.float32)


def _world_coords(tile: Tile, step: int):
    """World metres of the lattice nodes (every `step` px) of a tile's pixel centres."""
    n = -(-(tile.size - 1) // step) + 1
    cols = tile.x0 + (np.arange(n) * step + 0.5) * 10.0
    rows = tile.y0 - (np.arange(n) * step + 0.5) * 10.0
    xx, yy = np.meshgrid(cols, rows)
    lon, lat = _transformer(tile.epsg, 4326).transform(xx, yy)
    return (lon - LON0) * KX, (lat - LAT0) * KY


@dataclass(frozen=True)
class TileScene:
    """What one tile sees on one date."""

    dn: np.ndarray  # uint16 (4, H, W) R, G, B, NIR; 0 = nodata
    scl: np.ndarray  # uint8 (H/2, W/2)
    landcover: np.ndarray  # uint8 (H, W) Landscape codes


#: SCL codes in the order a 20 m pixel takes them from its four 10 m pixels (first wins).
_SCL_PRIORITY = (0, 9, 8, 3, 10, 7, 11, 6, 2, 4, 5, 1)


def _scl_20m(scl10: np.ndarray) -> np.ndarray:
    rank = np.zeros(256, np.uint8)
    for i, code in enumerate(_SCL_PRIORITY):
        rank[code] = len(_SCL_PRIORITY) - i
    h, w = scl10.shape
    r = rank[scl10].reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
    inverse = np.zeros(256, np.uint8)
    for i, code in enumerate(_SCL_PRIORITY):
        inverse[len(_SCL_PRIORITY) - i] = code
    return inverse[r]


def render_tile(tile: Tile, preset: Preset, seed: int) -> list[TileScene]:
    """Every date of one tile: ground sampled on the tile's grid, then each date's sky."""
    lay = _layout(preset)
    step = 2 if preset == "test" else 4
    n = tile.size
    cwx, cwy = _world_coords(tile, step)
    coarse = {k: _upsample(v, step, n, n) for k, v in _coarse_fields(cwx, cwy, lay, seed).items()}
    wx, wy = _upsample(cwx, step, n, n), _upsample(cwy, step, n, n)
    g = ground(wx, wy, lay, seed, coarse)
    ndvi = (g.reflectance[3] - g.reflectance[0]) / (g.reflectance[3] + g.reflectance[0])
    scl_ground = np.where(ndvi > 0.4, 4, 5).astype(np.uint8)
    scl_ground[g.landcover == Landscape.WATER] = 6
    scl_ground[g.landcover == Landscape.SNOW] = 11
    scl_ground[g.shade < 0.45] = 2
    band_haze = np.array([0.55, 0.75, 1.0, 0.3], np.float32)[:, None, None]
    out = []
    for k, sky in enumerate(skies(cwx, cwy, lay, seed)):
        cloud, shadow, cirrus, haze = (_upsample(a, step, n, n) for a in
                                       (sky.cloud, sky.shadow, sky.cirrus, sky.haze))
        outside = _swath_outside(wx, wy, lay, k)
        gain = 1.0 + 0.03 * np.sin(np.arange(4) + 2.0 * k + seed)
        refl = g.reflectance * gain[:, None, None].astype(np.float32) * (1 - shadow)[None]
        refl += haze[None] * band_haze
        cirrus_refl = np.array([0.22, 0.23, 0.25, 0.22], np.float32)[:, None, None]
        refl = refl * (1 - cirrus)[None] + cirrus_refl * cirrus[None]
        puff = 0.55 + 0.3 * _upsample(fbm(cwx, cwy, 150.0, 2, seed + 77 * k),
                                      step, n, n)
        cloud_refl = puff[None] * np.array([1.0, 1.01, 1.04, 0.97], np.float32)[:, None, None]
        refl = refl * (1 - cloud)[None] + cloud_refl * cloud[None]
        rng = np.random.default_rng([seed, tile.epsg, int(tile.x0), k])
        refl += rng.normal(0.0, 0.0015, refl.shape).astype(np.float32)
        offset = 1000 if _raw_offset_in_dn(tile, lay, k) else 0
        dn = np.clip(np.rint(refl * 10000) + offset, 1, 65535).astype(np.uint16)
        dn[:, outside] = 0
        scl = scl_ground.copy()
        scl[cirrus > 0.08] = 10
        scl[shadow > 0.3] = 3
        scl[cloud > 0.1] = 7
        scl[cloud > 0.25] = 8
        scl[cloud > 0.6] = 9
        scl[outside] = 0
        out.append(TileScene(dn, _scl_20m(scl), g.landcover))
    return out


# ---- files: COGs and Earth-Search-shaped STAC items ------------------------------------------


def _write_cog(path: Path, arr: np.ndarray, tile: Tile, res: float, blocksize: int,
               resampling: str) -> None:
    """One single-band COG (DEFLATE, internal tiles, overviews); same bytes for the same input."""
    import rasterio
    from rasterio.transform import from_origin

    h, w = arr.shape
    with rasterio.open(
        path, "w", driver="COG", width=w, height=h, count=1, dtype=arr.dtype,
        crs=f"EPSG:{tile.epsg}", transform=from_origin(tile.x0, tile.y0, res, res), nodata=0,
        BLOCKSIZE=blocksize, COMPRESS="DEFLATE", PREDICTOR=2, OVERVIEW_RESAMPLING=resampling,
        NUM_THREADS=1, BIGTIFF="NO",
    ) as dst:
        dst.write(arr, 1)


def _footprint(tile: Tile, lay: Layout, k: int) -> list[list[float]]:
    """The data footprint in WGS84: the tile square less the part outside the swath."""
    e = tile.size * 10.0
    t = np.linspace(0, 1, 9)[:-1]
    xs = np.concatenate([tile.x0 + t * e, np.full(8, tile.x0 + e), tile.x0 + e - t * e,
                         np.full(8, tile.x0)])
    ys = np.concatenate([np.full(8, tile.y0 - e), tile.y0 - e + t * e, np.full(8, tile.y0),
                         tile.y0 - t * e])  # counter-clockwise from the south-west corner
    lon, lat = _transformer(tile.epsg, 4326).transform(xs, ys)
    pts = list(zip((lon - LON0) * KX, (lat - LAT0) * KY, strict=True))
    if k == 0:  # clip by the swath edge: inside is wx <= half_x * (0.8 + 0.25 * wy / half_y)
        def inside(p):
            return p[0] - lay.half_x * (0.80 + 0.25 * p[1] / lay.half_y)

        clipped = []
        for a, b in zip(pts, pts[1:] + pts[:1], strict=True):
            fa, fb = inside(a), inside(b)
            if fa <= 0:
                clipped.append(a)
            if (fa <= 0) != (fb <= 0):
                s = fa / (fa - fb)
                clipped.append((a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1])))
        pts = clipped
    ring = [[round(LON0 + x / KX, 9), round(LAT0 + y / KY, 9)] for x, y in pts]
    return ring + [ring[0]]


_ASSET_TEMPLATES = {  # from the Earth Search v1 item tests/data/earthsearch_29RKH_item.json
    "red": ("B04", "Red (band 4) - 10m", 0.665, 0.038),
    "green": ("B03", "Green (band 3) - 10m", 0.56, 0.045),
    "blue": ("B02", "Blue (band 2) - 10m", 0.49, 0.098),
    "nir": ("B08", "NIR 1 (band 8) - 10m", 0.842, 0.145),
}
_COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_SCL_NAMES = {
    0: "nodata_pixel", 2: "dark_features", 3: "cloud_shadow", 4: "vegetation",
    5: "not_vegetated", 6: "water", 7: "unclassified", 8: "medium_proba_clouds",
    9: "high_proba_clouds", 10: "thin_cirrus", 11: "snow_ice",
}


def _raw_offset_in_dn(tile: Tile, lay: Layout, k: int) -> bool:
    """Whether this item's pixels still carry ESA's +1000 DN (BOA_ADD_OFFSET not yet subtracted).

    Baseline >= 04.00 products are shifted by +1000 DN. Earth Search v1 subtracted that shift from
    the pixels of most of them and says so with ``earthsearch:boa_offset_applied: true`` (while its
    ``raster:bands`` offset still reads -0.1: the known metadata bug, Element84/earth-search#9);
    others kept ESA's raw pixels with the flag false. Both kinds are made here, one per zone, so
    the offset rule is exercised on both: zone 31 keeps the raw pixels, zone 32 is harmonized.
    """
    return float(lay.dates[k][1]) >= 4.0 and tile.zone == 31


def _item_dict(tile: Tile, lay: Layout, k: int, scene: TileScene, folder: Path) -> dict:
    when, baseline = lay.dates[k]
    day = when[:10].replace("-", "")
    platform = "sentinel-2a" if k % 2 == 0 else "sentinel-2b"
    item_id = f"S2{platform[-1].upper()}_{tile.grid_code}_{day}_0_L2A"
    new = float(baseline) >= 4.0
    counts = np.bincount(scene.scl.ravel(), minlength=12).astype(float)
    valid = counts[1:].sum()
    pct = {code: round(100.0 * counts[code] / max(valid, 1), 6) for code in range(1, 12)}
    props = {
        "created": (dt.datetime.fromisoformat(when[:19]) + dt.timedelta(hours=3)).isoformat()
        + ".000Z",
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(pct[8] + pct[9] + pct[10], 6),
        "proj:epsg": tile.epsg,
        "mgrs:utm_zone": tile.zone,
        "mgrs:latitude_band": tile.grid_code[2],
        "mgrs:grid_square": tile.grid_code[3:],
        "grid:code": f"MGRS-{tile.grid_code}",
        "view:sun_azimuth": 150.0,
        "view:sun_elevation": 62.0,
        "s2:nodata_pixel_percentage": round(100.0 * counts[0] / counts.sum(), 6),
        **{f"s2:{_SCL_NAMES[c]}_percentage": pct[c] for c in range(2, 12) if c in _SCL_NAMES},
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:product_uri": f"S2{platform[-1].upper()}_MSIL2A_{day}T103021_N"
        f"{baseline.replace('.', '')}_R108_T{tile.grid_code}_{day}T130000.SAFE",
        "datetime": when,
        "s2:sequence": "0",
        "earthsearch:boa_offset_applied": new and not _raw_offset_in_dn(tile, lay, k),
        "synth:generator": "basemap.synth",
        "updated": f"{when[:10]}T16:00:00.000000+00:00",
    }
    offset = -0.1 if new else 0.0
    transform10 = [10.0, 0.0, tile.x0, 0.0, -10.0, tile.y0]
    assets = {}
    for key, (fname, title, wl, fwhm) in _ASSET_TEMPLATES.items():
        assets[key] = {
            "href": str(folder / f"{fname}.tif"), "type": _COG_TYPE, "title": title,
            "eo:bands": [{"name": key, "common_name": key, "description": title[:-6],
                          "center_wavelength": wl, "full_width_half_max": fwhm}],
            "gsd": 10, "proj:shape": [tile.size, tile.size], "proj:transform": transform10,
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                              "spatial_resolution": 10, "scale": 0.0001, "offset": offset}],
            "roles": ["data", "reflectance"],
        }
    assets["scl"] = {
        "href": str(folder / "SCL.tif"), "type": _COG_TYPE,
        "title": "Scene classification map (SCL)",
        "proj:shape": [tile.size // 2, tile.size // 2],
        "proj:transform": [20.0, 0.0, tile.x0, 0.0, -20.0, tile.y0],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
        "roles": ["data", "reflectance"],
    }
    assets["landcover"] = {
        "href": str(folder / "landcover.tif"), "type": _COG_TYPE,
        "title": "Synthetic ground truth: basemap.synth.Landscape codes",
        "proj:shape": [tile.size, tile.size], "proj:transform": transform10,
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 10}],
        "roles": ["metadata"],
    }
    ring = _footprint(tile, lay, k)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
        ],
        "id": item_id,
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "links": [],
        "assets": assets,
        "collection": "sentinel-2-l2a",
    }


def make_world(out: Path, seed: int, preset: Preset = "test", progress: bool | None = None) -> Path:
    """Write the synthetic world: COGs, STAC items, collection and static catalog.

    Args:
        out: output folder (created; existing synthetic files in it are overwritten).
        seed: the world's seed; the same seed gives the same bytes.
        preset: "test" (4 tiles of 3 km, 2 dates, seconds) or "demo" (4 tiles of 18 km, 3 dates).
        progress: show a progress bar (default: for the demo preset only).

    Returns:
        The path of OUT/catalog.json.
    """
    import pystac
    from tqdm import tqdm

    lay = _layout(preset)
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be a whole number >= 0 (got {seed!r})")
    out = Path(out).absolute()
    coll_dir = out / "sentinel-2-l2a"
    items, raw = [], []
    all_tiles = tiles(preset)
    bar = tqdm(total=len(all_tiles) * len(lay.dates), desc="synth items", unit="item",
               disable=not (preset == "demo" if progress is None else progress))
    for tile in all_tiles:
        for k, scene in enumerate(render_tile(tile, preset, seed)):
            folder = coll_dir / _item_dict(tile, lay, k, scene, coll_dir)["id"]
            folder.mkdir(parents=True, exist_ok=True)
            for b, key in enumerate(BANDS):
                _write_cog(folder / f"{BAND_FILES[key]}.tif", scene.dn[b], tile, 10.0,
                           lay.blocksize, "AVERAGE")
            _write_cog(folder / "SCL.tif", scene.scl, tile, 20.0, max(128, lay.blocksize // 2),
                       "NEAREST")
            _write_cog(folder / "landcover.tif", scene.landcover, tile, 10.0, lay.blocksize,
                       "NEAREST")
            raw.append(_item_dict(tile, lay, k, scene, folder))
            items.append(pystac.Item.from_dict(raw[-1]))
            bar.update()
    bar.close()
    lons = [c for it in items for c in it.bbox[0::2]]
    lats = [c for it in items for c in it.bbox[1::2]]
    times = sorted(it.datetime for it in items)
    collection = pystac.Collection(
        id="sentinel-2-l2a",
        title="Sentinel-2 Level-2A (synthetic)",
        description="A synthetic world shaped like Earth Search v1 sentinel-2-l2a, made by "
        f"basemap.synth (preset {preset}, seed {seed}); not Copernicus data.",
        extent=pystac.Extent(pystac.SpatialExtent([[min(lons), min(lats), max(lons), max(lats)]]),
                             pystac.TemporalExtent([[times[0], times[-1]]])),
        license="CC-BY-4.0",
    )
    collection.add_items(items)
    catalog = pystac.Catalog(id="basemap-synth", description=collection.description,
                             title="basemap synthetic Sentinel-2 world")
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    for d in raw:  # keep the items exactly Earth Search v1 shaped (pystac would migrate them)
        path = coll_dir / d["id"] / f"{d['id']}.json"
        d["links"] = json.loads(path.read_text())["links"]
        for asset in d["assets"].values():
            asset["href"] = "./" + Path(asset["href"]).name
        path.write_text(json.dumps(d, indent=2) + "\n")
    return out / "catalog.json"
