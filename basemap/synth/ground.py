"""The synthetic ground: land cover, surface reflectance and hillshade at any point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from basemap.synth.layout import Layout
from basemap.synth.noise import fbm, hash01, lines, voronoi


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

@dataclass(frozen=True)
class Ground:
    """The ground at a set of points: land cover, reflectance (4, ...) R,G,B,NIR and hillshade."""

    landcover: np.ndarray
    reflectance: np.ndarray
    shade: np.ndarray

def _elevation(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int) -> np.ndarray:
    """Elevation in [0, ~1.2]: a ridge along the north of the world plus rolling hills."""
    u, v = wx / lay.half_x, wy / lay.half_y
    ridge_v = 0.62 + 0.12 * np.sin(2.2 * u + 0.5)
    ridge = np.exp(-(((v - ridge_v) / 0.38) ** 2))
    detail = fbm(wx, wy, lay.half_y * 0.5, 5, seed * 31 + 1)
    return ridge * (0.55 + 0.75 * detail) + 0.15 * fbm(wx, wy, lay.half_y, 2, seed * 31 + 2)

def ground(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int, coarse: dict) -> Ground:
    """Evaluate the ground at world metres (wx, wy). `coarse` holds smooth fields pre-sampled."""
    lc, pid, edge = _landcover(wx, wy, lay, seed, coarse)
    refl = np.zeros((4,) + wx.shape, np.float32)
    base = np.array([REFLECTANCE[Landscape(k)] for k in range(1, len(Landscape) + 1)], np.float32)
    for b in range(4):
        refl[b] = base[lc - 1, b]

    return _texture(wx, wy, seed, coarse, lc, pid, edge, refl)


def _landcover(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int,
               coarse: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(land cover codes, parcel id hash, distance to the parcel border in metres)."""
    u, v = wx / lay.half_x, wy / lay.half_y
    warp_u = u + 0.12 * (coarse["warp_a"] - 0.5)
    warp_v = v + 0.12 * (coarse["warp_b"] - 0.5)
    elev = coarse["elev"]
    lc = np.full(wx.shape, Landscape.CROP, np.uint8)

    # Parcels: jittered Voronoi cells of ~250 m; crop, bare, grass or ripe per cell.
    pid, edge = voronoi(wx, wy, 260.0, seed * 13 + 5)
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
    roads = (lines(road_ew, 14.0) | lines(road_ns, 12.0)) & (elev < 0.9)
    streets = town & (lines((wx % 90.0) - 45.0, 9.0) | lines((wy % 110.0) - 55.0, 9.0))
    lc[roads | streets] = Landscape.ROAD
    rl = np.hypot((warp_u - 0.50) / 0.16, (warp_v + 0.42) / 0.30)
    river_x = (0.33 + 0.07 * np.sin(5.0 * v + 1.0) + 0.04 * (coarse["warp_b"] - 0.5)) * lay.half_x
    river_w = 22.0 + 14.0 * coarse["warp_a"]
    river = (np.abs(wx - river_x) < river_w / 2) & (v > -0.45) & (elev < 0.8)
    lc[(rl < 1.0) | river] = Landscape.WATER
    return lc, pid, edge


def _texture(wx: np.ndarray, wy: np.ndarray, seed: int, coarse: dict, lc: np.ndarray,
             pid: np.ndarray, edge: np.ndarray, refl: np.ndarray) -> Ground:
    """Per-parcel and per-class variation, multi-scale texture and hillshade on the base
    reflectance of each class."""
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
    blocks = hash01(np.floor(wx[town_px] / 20.0), np.floor(wy[town_px] / 20.0), seed * 31 + 9)
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


def coarse_fields(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int) -> dict:
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
