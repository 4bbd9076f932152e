"""Earth-Search-v1-shaped STAC items of the synthetic world.

Shaped after the real item in tests/data/earthsearch_29RKH_item.json.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from basemap.output.media import media_type
from basemap.synth.layout import KX, KY, LAT0, LON0, Layout
from basemap.synth.tiles import Tile, TileScene, raw_offset_in_dn, transformer


def _footprint(tile: Tile, lay: Layout, k: int) -> list[list[float]]:
    """The data footprint in WGS84: the tile square less the part outside the swath."""
    e = tile.size * 10.0
    t = np.linspace(0, 1, 9)[:-1]
    xs = np.concatenate([tile.x0 + t * e, np.full(8, tile.x0 + e), tile.x0 + e - t * e,
                         np.full(8, tile.x0)])
    ys = np.concatenate([np.full(8, tile.y0 - e), tile.y0 - e + t * e, np.full(8, tile.y0),
                         tile.y0 - t * e])  # counter-clockwise from the south-west corner
    lon, lat = transformer(tile.epsg, 4326).transform(xs, ys)
    pts = list(zip((lon - LON0) * KX, (lat - LAT0) * KY, strict=True))
    if k == 0:  # clip by the swath edge: inside is wx <= half_x * (0.8 + 0.25 * wy / half_y)
        def inside(p: tuple[float, float]) -> float:
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

_COG_TYPE = media_type(".tif")

_SCL_NAMES = {
    0: "nodata_pixel", 2: "dark_features", 3: "cloud_shadow", 4: "vegetation",
    5: "not_vegetated", 6: "water", 7: "unclassified", 8: "medium_proba_clouds",
    9: "high_proba_clouds", 10: "thin_cirrus", 11: "snow_ice",
}

def item_dict(tile: Tile, lay: Layout, k: int, scene: TileScene, folder: Path) -> dict:
    """The Earth-Search-v1-shaped STAC item of one tile on date k (asset hrefs under folder)."""
    when, baseline = lay.dates[k]
    day = when[:10].replace("-", "")
    platform = "sentinel-2a" if k % 2 == 0 else "sentinel-2b"
    item_id = f"S2{platform[-1].upper()}_{tile.grid_code}_{day}_0_L2A"
    props = _properties(tile, lay, k, scene, platform)
    assets = _assets(tile, folder, float(baseline) >= 4.0)
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


def _properties(tile: Tile, lay: Layout, k: int, scene: TileScene, platform: str) -> dict:
    """The item's properties: Earth Search v1's, with SCL statistics of the scene."""
    when, baseline = lay.dates[k]
    day = when[:10].replace("-", "")
    new = float(baseline) >= 4.0
    counts = np.bincount(scene.scl.ravel(), minlength=12).astype(float)
    valid = counts[1:].sum()
    pct = {code: round(100.0 * counts[code] / max(valid, 1), 6) for code in range(1, 12)}
    return {
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
        "earthsearch:boa_offset_applied": new and not raw_offset_in_dn(tile, lay, k),
        "synth:generator": "basemap.synth",
        "updated": f"{when[:10]}T16:00:00.000000+00:00",
    }


def _assets(tile: Tile, folder: Path, new: bool) -> dict:
    """The item's assets: the four 10 m bands, SCL at 20 m and the landcover ground truth."""
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
    return assets
