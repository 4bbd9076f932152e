"""UTM tiles that sample the synthetic world: their grids, and what each sees on each date."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import binary_erosion

from basemap.synth.ground import Landscape, coarse_fields, ground
from basemap.synth.layout import KX, KY, LAT0, LON0, Layout, Preset, layout
from basemap.synth.noise import fbm, hash01
from basemap.synth.sky import skies, swath_outside
from basemap.types import BBox

if TYPE_CHECKING:
    from pyproj import Transformer


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

def transformer(src: int, dst: int) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)

def tiles(preset: Preset = "test") -> list[Tile]:
    """The tiles of a preset: `cols` per UTM zone (31 and 32), overlapping by ~9%."""
    lay = layout(preset)
    step = (lay.tile_px - lay.overlap_px) * 10.0
    width = step * (lay.cols - 1) + lay.tile_px * 10.0
    out = []
    for zone in (31, 32):
        epsg = 32600 + zone
        to_utm = transformer(4326, epsg)
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
    lay = layout(preset)
    step = (lay.tile_px - lay.overlap_px) * 10.0
    width = step * (lay.cols - 1) + lay.tile_px * 10.0
    half_w = (width - lay.zone_reach_m) * (1 - lay.bbox_margin)
    tilt = 0.04 * width  # UTM grid convergence (~2 deg) tilts tile rows against the parallels
    half_h = (lay.tile_px * 5.0 - tilt) * (1 - lay.bbox_margin)
    return BBox(LON0 - half_w / KX, LAT0 - half_h / KY, LON0 + half_w / KX, LAT0 + half_h / KY)

def upsample(c: np.ndarray, step: int, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of lattice values (nodes every `step` px) to an (h, w) grid."""
    def axis(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.arange(n) / step
        i0 = np.minimum(r.astype(np.int64), m - 2)
        return i0, (r - i0).astype(np.float32)

    i0, ti = axis(h, c.shape[0])
    j0, tj = axis(w, c.shape[1])
    rows = c[i0] * (1 - ti)[:, None] + c[i0 + 1] * ti[:, None]
    return (rows[:, j0] * (1 - tj) + rows[:, j0 + 1] * tj).astype(np.float32)

def world_coords(tile: Tile, step: int) -> tuple[np.ndarray, np.ndarray]:
    """World metres of the lattice nodes (every `step` px) of a tile's pixel centres."""
    n = -(-(tile.size - 1) // step) + 1
    cols = tile.x0 + (np.arange(n) * step + 0.5) * 10.0
    rows = tile.y0 - (np.arange(n) * step + 0.5) * 10.0
    xx, yy = np.meshgrid(cols, rows)
    lon, lat = transformer(tile.epsg, 4326).transform(xx, yy)
    return (lon - LON0) * KX, (lat - LAT0) * KY

@dataclass(frozen=True)
class TileScene:
    """What one tile sees on one date."""

    dn: np.ndarray  # uint16 (4, H, W) R, G, B, NIR; 0 = nodata
    scl: np.ndarray  # uint8 (H/2, W/2)
    landcover: np.ndarray  # uint8 (H, W) Landscape codes
    clean: np.ndarray | None = None  # float32 (4, H, W) the ground without the sky (truth)

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

def raw_offset_in_dn(tile: Tile, lay: Layout, k: int) -> bool:
    """Whether this item's pixels still carry ESA's +1000 DN (BOA_ADD_OFFSET not yet subtracted).

    Baseline >= 04.00 products are shifted by +1000 DN. Earth Search v1 subtracted that shift from
    the pixels of most of them and says so with ``earthsearch:boa_offset_applied: true`` (while its
    ``raster:bands`` offset still reads -0.1: the known metadata bug, Element84/earth-search#9);
    others kept ESA's raw pixels with the flag false. Both kinds are made here, one per zone, so
    the offset rule is exercised on both: zone 31 keeps the raw pixels, zone 32 is harmonized.
    """
    return float(lay.dates[k][1]) >= 4.0 and tile.zone == 31

def _scl(scl_ground: np.ndarray, cloud: np.ndarray, shadow: np.ndarray, cirrus: np.ndarray,
         outside: np.ndarray, lies: bool, snow: np.ndarray) -> np.ndarray:
    """The 10 m SCL of one date: exact thresholds, or (``lies``) SCL's known errors: thin cloud
    (opacity < 0.35) and haze left unflagged, cloud edges under-detected by 3 px, shadows
    flagged only where dark (> 0.55), and a third of the snow flagged as cloud."""
    scl = scl_ground.copy()
    thin, mid, thick, dark = (0.35, 0.45, 0.6, 0.55) if lies else (0.1, 0.25, 0.6, 0.3)
    cloudy = cloud > mid
    if lies:
        cloudy = binary_erosion(cloudy, iterations=3)
        scl[snow] = 9
    scl[cirrus > (0.15 if lies else 0.08)] = 10
    scl[shadow > dark] = 3
    if not lies:
        scl[cloud > thin] = 7
    scl[cloudy] = 8
    scl[cloudy & (cloud > thick)] = 9
    scl[outside] = 0
    return scl


def render_tile(tile: Tile, preset: Preset, seed: int, lies: bool = False) -> list[TileScene]:
    """Every date of one tile: ground sampled on the tile's grid, then each date's sky.

    ``lies``: the SCL has real SCL's errors (:func:`_scl`) and each scene keeps its truth.
    """
    lay = layout(preset)
    step = 2 if preset == "test" else 4
    n = tile.size
    cwx, cwy = world_coords(tile, step)
    coarse = {k: upsample(v, step, n, n) for k, v in coarse_fields(cwx, cwy, lay, seed).items()}
    wx, wy = upsample(cwx, step, n, n), upsample(cwy, step, n, n)
    g = ground(wx, wy, lay, seed, coarse)
    ndvi = (g.reflectance[3] - g.reflectance[0]) / (g.reflectance[3] + g.reflectance[0])
    scl_ground = np.where(ndvi > 0.4, 4, 5).astype(np.uint8)
    scl_ground[g.landcover == Landscape.WATER] = 6
    scl_ground[g.landcover == Landscape.SNOW] = 11
    scl_ground[g.shade < 0.45] = 2
    band_haze = np.array([0.55, 0.75, 1.0, 0.3], np.float32)[:, None, None]
    out = []
    for k, sky in enumerate(skies(cwx, cwy, lay, seed)):
        cloud, shadow, cirrus, haze = (upsample(a, step, n, n) for a in
                                       (sky.cloud, sky.shadow, sky.cirrus, sky.haze))
        outside = swath_outside(wx, wy, lay, k)
        gain = 1.0 + 0.03 * np.sin(np.arange(4) + 2.0 * k + seed)
        refl = g.reflectance * gain[:, None, None].astype(np.float32) * (1 - shadow)[None]
        refl += haze[None] * band_haze
        cirrus_refl = np.array([0.22, 0.23, 0.25, 0.22], np.float32)[:, None, None]
        refl = refl * (1 - cirrus)[None] + cirrus_refl * cirrus[None]
        puff = 0.55 + 0.3 * upsample(fbm(cwx, cwy, 150.0, 2, seed + 77 * k),
                                      step, n, n)
        cloud_refl = puff[None] * np.array([1.0, 1.01, 1.04, 0.97], np.float32)[:, None, None]
        refl = refl * (1 - cloud)[None] + cloud_refl * cloud[None]
        rng = np.random.default_rng([seed, tile.epsg, int(tile.x0), k])
        refl += rng.normal(0.0, 0.0015, refl.shape).astype(np.float32)
        offset = 1000 if raw_offset_in_dn(tile, lay, k) else 0
        dn = np.clip(np.rint(refl * 10000) + offset, 1, 65535).astype(np.uint16)
        dn[:, outside] = 0
        snow = (g.landcover == Landscape.SNOW) & (hash01(wx // 400, wy // 400, seed + k) < 0.33)
        scl = _scl(scl_ground, cloud, shadow, cirrus, outside, lies, snow)
        clean = g.reflectance * gain[:, None, None].astype(np.float32) if lies else None
        out.append(TileScene(dn, _scl_20m(scl), g.landcover, clean))
    return out
