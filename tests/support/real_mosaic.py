"""A static STAC catalog (pystac) of two overlapping "MGRS tiles" cut from ONE real L2A tile.

What is real and what was made:

- **Real**: every pixel value. The source is the whole Sen2Cor L2A tile T29UNU of 2022-10-05
  (S2A, relative orbit 23, processing baseline 04.00), western Ireland, at 60 m, with its real
  Scene Classification (``model/data/real-s2-train/stactools-packages_sentinel2/``, see its
  README): about 60 % of the tile has data (a partial swath whose edge runs diagonally) and SCL
  rejects about 70 % of that (clouds 8/9/10, shadows 3). The DN still carry ESA's +1000
  offset (BOA_ADD_OFFSET -1000): reflectance = (DN - 1000) / 10000.
- **Cut**: tile A is the western 60 % of the tile (columns 0-1097 of 1830) in its native CRS
  EPSG:32629, the pixels copied unchanged (native grid, origin 499980 E 5900040 N).
- **Reprojected**: tile B is the eastern ~60 % REPROJECTED into the neighbouring zone's CRS
  EPSG:32630 (``rasterio.warp.reproject``: bilinear for the bands, DN 0 as nodata; nearest for
  SCL), on a 60 m grid of its own whose west edge is a straight line in EPSG:32630 through the
  point of column 732 at mid-height, the way a real MGRS tile of the next zone reaches across
  the zone boundary and overlaps its neighbour (here by about 22 km; real neighbours overlap by
  about 10 km). So the two tiles' footprint edges cross each other inside the overlap at an
  angle (the zones' grid convergence differs by about 5 degrees here).
- **One date per tile.** Both items are the same acquisition, as two MGRS tiles of one
  overpass are; there is no real second date of this place in the repository, and a second
  date made from the same pixels would not be a second observation, so the catalog has none.
- **Metadata**: shaped like Earth Search v1 ``sentinel-2-l2a`` items of baseline >= 04.00 served
  as ESA's raw pixels (the form of docs/synthetic-world.md's zone 31): ``s2:processing_baseline``
  "04.00", ``earthsearch:boa_offset_applied`` false and ``raster:bands`` offset -0.1, scale
  0.0001 (so basemap.stac.radiometry.dn_offset_for gives -1000 by its rule 1 then 3).
  ``eo:cloud_cover`` and the ``s2:*_percentage`` figures are counted from each tile's SCL;
  tile A's ``grid:code`` MGRS-29UNU and product URI are the real product's; tile B's grid code
  is computed from its own origin with the MGRS lettering (a label: no real zone-30 tile reaches
  this far west), and its product URI is made from it. ``geometry`` is the tile's data
  footprint (convex hull of its valid pixels, densified, in WGS84), as Earth Search publishes.
- **Stress case** (``b_gain``, off by default; NOT real data): tile B's reflectance scaled, to
  stand for what a second date or another atmosphere would make differ between the tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject, transform, transform_bounds
from scipy.spatial import ConvexHull

SOURCE = (Path(__file__).resolve().parents[2] / "model" / "data" / "real-s2-train"
          / "stactools-packages_sentinel2")
RGB_FILE = SOURCE / "T29UNU_20221005_L2A_RGB_60m.tif"  # uint16 B04, B03, B02; nodata 0
SCL_FILE = SOURCE / "T29UNU_20221005_L2A_SCL_60m.tif"  # uint8 SCL; 0 nodata
SOURCE_EPSG = 32629
RES = 60.0
#: Column ranges of the source tile (1830 columns) that tiles A and B take (B: about).
A_COLUMNS = (0, 1098)
B_WEST_COLUMN = 732
DATETIME = "2022-10-05T11:54:11.024000Z"  # the datatake's sensing start (product name)
BANDS = {"red": ("B04", "Red (band 4)", 0.665), "green": ("B03", "Green (band 3)", 0.56),
         "blue": ("B02", "Blue (band 2)", 0.49)}
EXTENSIONS = [
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
]
#: SCL classes Earth Search (ESA's MTD) counts as cloud, and the other percentages written.
SCL_PERCENTAGES = {"s2:cloud_shadow_percentage": (3,), "s2:vegetation_percentage": (4,),
                   "s2:not_vegetated_percentage": (5,), "s2:water_percentage": (6,),
                   "s2:unclassified_percentage": (7,),
                   "s2:medium_proba_clouds_percentage": (8,),
                   "s2:high_proba_clouds_percentage": (9,), "s2:thin_cirrus_percentage": (10,),
                   "s2:snow_ice_percentage": (11,)}


@dataclass(frozen=True)
class Tile:
    """One cut tile as written: its grid, its pixels and what the catalog says about it."""

    mgrs: str  # e.g. 29UNU
    epsg: int
    transform: Affine
    dn: np.ndarray  # (3, H, W) uint16, ESA DN with the +1000 offset, 0 nodata
    scl: np.ndarray  # (H, W) uint8

    @property
    def valid(self) -> np.ndarray:
        return np.all(self.dn != 0, axis=0)

    @property
    def item_id(self) -> str:
        return f"S2A_{self.mgrs}_{DATETIME[:10].replace('-', '')}_0_L2A"


def mgrs_square(zone: int, easting: float, northing: float) -> str:
    """The MGRS 100 km square letters (column, row) of a UTM point (WGS84 lettering)."""
    cols = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    return cols[int(easting // 100000) - 1] + rows[(int(northing // 100000)
                                                    + (5 if zone % 2 == 0 else 0)) % 20]


def _tile_code(epsg: int, t: Affine) -> str:
    """The MGRS code of a Sentinel-2 tile from its grid origin (UL = square's NW - (20, -40) m)."""
    zone = epsg - 32600
    return f"{zone}U{mgrs_square(zone, t.c + 20 + 1, t.f - 40 - 1)}"


def read_source() -> tuple[np.ndarray, np.ndarray, Affine]:
    """The real tile: DN (3, 1830, 1830) uint16, SCL (1830, 1830) uint8, its transform."""
    with rasterio.open(RGB_FILE) as src:
        dn, t = src.read(), src.transform
        assert src.crs.to_epsg() == SOURCE_EPSG
    with rasterio.open(SCL_FILE) as src:
        scl = src.read(1)
        assert src.transform == t
    return dn, scl, t


def cut_tiles(b_gain: float = 1.0) -> tuple[Tile, Tile]:
    """Tile A (native, EPSG:32629) and tile B (reprojected, EPSG:32630); see the docstring.

    ``b_gain`` != 1 is NOT real data: tile B's reflectance times b_gain (a stress case, the
    brightness difference two dates' atmospheres make; DN 0 stays nodata)."""
    dn, scl, t = read_source()
    c0, c1 = A_COLUMNS
    a = Tile("29UNU", SOURCE_EPSG, t * Affine.translation(c0, 0), dn[:, :, c0:c1].copy(),
             scl[:, c0:c1].copy())
    rows, cols = scl.shape
    dst = "EPSG:32630"
    src_crs = f"EPSG:{SOURCE_EPSG}"
    # West edge: a straight line in EPSG:32630 through column B_WEST_COLUMN at mid-height.
    mx, my = t * (B_WEST_COLUMN, rows / 2)
    (west,), _ = transform(src_crs, dst, [mx], [my])
    ex0, ey0 = t * (B_WEST_COLUMN, rows)
    ex1, ey1 = t * (cols, 0)
    _, south, east, north = transform_bounds(src_crs, dst, ex0, ey0, ex1, ey1, densify_pts=101)
    x0 = math.floor(west / RES) * RES
    y0 = math.ceil(north / RES) * RES
    width, height = math.ceil((east - x0) / RES), math.ceil((y0 - south) / RES)
    tb = Affine(RES, 0.0, x0, 0.0, -RES, y0)
    dn_b = np.zeros((3, height, width), np.uint16)
    scl_b = np.zeros((height, width), np.uint8)
    reproject(dn, dn_b, src_transform=t, src_crs=src_crs, src_nodata=0, dst_transform=tb,
              dst_crs=dst, dst_nodata=0, resampling=Resampling.bilinear)
    reproject(scl, scl_b, src_transform=t, src_crs=src_crs, src_nodata=0, dst_transform=tb,
              dst_crs=dst, dst_nodata=0, resampling=Resampling.nearest)
    if b_gain != 1.0:
        scaled = np.rint(1000 + (dn_b.astype(np.float64) - 1000) * b_gain)
        dn_b = np.where(dn_b > 0, np.clip(scaled, 1, 65535), 0).astype(np.uint16)
    b = Tile(_tile_code(32630, tb), 32630, tb, dn_b, scl_b)
    return a, b


def footprint(tile: Tile, step_m: float = 2000.0) -> list[tuple[float, float]]:
    """The data footprint in WGS84: convex hull of the valid pixels' corners, densified to one
    vertex per ``step_m`` metres, counter-clockwise and closed."""
    valid = tile.valid
    r = np.where(valid.any(axis=1))[0]
    first = valid[r].argmax(axis=1)
    last = valid.shape[1] - 1 - valid[r, ::-1].argmax(axis=1)
    px = np.concatenate([first, first, last + 1, last + 1]).astype(float)
    py = np.concatenate([r, r + 1, r, r + 1]).astype(float)
    xs, ys = tile.transform * (px, py)
    pts = np.column_stack([xs, ys])
    hull = pts[ConvexHull(pts).vertices]  # counter-clockwise (x east, y north)
    ring = []
    for p, q in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        n = max(1, math.ceil(math.dist(p, q) / step_m))
        ring += [p + (q - p) * k / n for k in range(n)]
    lon, lat = transform(f"EPSG:{tile.epsg}", "EPSG:4326", [p[0] for p in ring],
                         [p[1] for p in ring])
    out = [(round(x, 7), round(y, 7)) for x, y in zip(lon, lat, strict=True)]
    return out + out[:1]


def _write(path: Path, data: np.ndarray, tile: Tile, resampling: str) -> None:
    """A COG as Earth Search serves them: deflate + predictor 2, 512-px tiles, overviews."""
    profile = {"driver": "COG", "width": data.shape[2], "height": data.shape[1],
               "count": data.shape[0], "dtype": data.dtype.name, "nodata": 0,
               "crs": f"EPSG:{tile.epsg}", "transform": tile.transform, "compress": "deflate",
               "predictor": 2, "blocksize": 512, "overview_resampling": resampling}
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _properties(tile: Tile) -> dict:
    valid = tile.valid
    n = max(int(valid.sum()), 1)
    scl = tile.scl[valid]

    def pct(classes) -> float:
        return round(100.0 * float(np.isin(scl, classes).sum()) / n, 6)

    zone, band, square = int(tile.mgrs[:2]), tile.mgrs[2], tile.mgrs[3:]
    props = {
        "platform": "sentinel-2a", "constellation": "sentinel-2", "instruments": ["msi"],
        "eo:cloud_cover": pct((8, 9, 10)),
        "proj:epsg": tile.epsg,
        "mgrs:utm_zone": zone, "mgrs:latitude_band": band, "mgrs:grid_square": square,
        "grid:code": f"MGRS-{tile.mgrs}",
        "s2:nodata_pixel_percentage": round(100.0 * (1 - valid.mean()), 6),
        **{k: pct(v) for k, v in SCL_PERCENTAGES.items()},
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": "04.00",
        "s2:product_uri": f"S2A_MSIL2A_20221005T115411_N0400_R023_T{tile.mgrs}_20221005T164454"
                          ".SAFE",
        "s2:sequence": "0",
        "earthsearch:boa_offset_applied": False,
    }
    return props


def make_catalog(root: Path, b_gain: float = 1.0) -> tuple[Path, tuple[Tile, Tile]]:
    """Write the two tiles' catalog under ``root``: (catalog.json, (tile A, tile B)).

    ``b_gain``: see :func:`cut_tiles` (1: the real pixels)."""
    tiles = cut_tiles(b_gain)
    rings = [footprint(t) for t in tiles]
    lons = [x for ring in rings for x, _ in ring]
    lats = [y for ring in rings for _, y in ring]
    box = [min(lons), min(lats), max(lons), max(lats)]
    catalog = pystac.Catalog(id="real-mosaic", description="two overlapping MGRS tiles cut "
                             "from the real L2A tile T29UNU (tests/support/real_mosaic.py)")
    coll = pystac.Collection(
        id="sentinel-2-l2a", description="real pixels, cut and reprojected", license="proprietary",
        extent=pystac.Extent(pystac.SpatialExtent([box]), pystac.TemporalExtent([[
            pystac.utils.str_to_datetime(DATETIME), pystac.utils.str_to_datetime(DATETIME)]])))
    catalog.add_child(coll)
    for tile, ring in zip(tiles, rings, strict=True):
        folder = root / "sentinel-2-l2a" / tile.item_id
        folder.mkdir(parents=True, exist_ok=True)
        lon = [x for x, _ in ring]
        lat = [y for _, y in ring]
        item = pystac.Item(tile.item_id, {"type": "Polygon", "coordinates": [ring]},
                           [min(lon), min(lat), max(lon), max(lat)],
                           pystac.utils.str_to_datetime(DATETIME), _properties(tile),
                           stac_extensions=list(EXTENSIONS), collection=coll)
        shape = list(tile.scl.shape)
        grid = {"proj:shape": shape, "proj:transform": list(tile.transform)[:6]}
        for k, (key, (name, title, wl)) in enumerate(BANDS.items()):
            path = folder / f"{name}.tif"
            _write(path, tile.dn[k : k + 1], tile, "average")
            item.add_asset(key, pystac.Asset(
                str(path), title=f"{title} - 60m",
                media_type="image/tiff; application=geotiff; profile=cloud-optimized",
                roles=["data", "reflectance"], extra_fields={
                    "eo:bands": [{"name": key, "common_name": key, "center_wavelength": wl}],
                    "gsd": 60, **grid,
                    "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                                      "spatial_resolution": 60, "scale": 0.0001,
                                      "offset": -0.1}]}))
        path = folder / "SCL.tif"
        _write(path, tile.scl[None], tile, "nearest")
        item.add_asset("scl", pystac.Asset(
            str(path), title="Scene classification map (SCL)",
            media_type="image/tiff; application=geotiff; profile=cloud-optimized",
            roles=["data", "reflectance"], extra_fields={
                "gsd": 60, **grid, "raster:bands": [{"nodata": 0, "data_type": "uint8",
                                                     "spatial_resolution": 60, "scale": 1,
                                                     "offset": 0}]}))
        coll.add_item(item)
    catalog.normalize_hrefs(root.as_posix() + "/")  # a folder, even if its name has a dot
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json", tiles


def build_bbox(catalog: Path) -> str:
    """W,S,E,N of the union of the catalog's item footprints (what a user would ask for)."""
    items = list(pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))
    w = min(i.bbox[0] for i in items)
    s = min(i.bbox[1] for i in items)
    e = max(i.bbox[2] for i in items)
    n = max(i.bbox[3] for i in items)
    return ",".join(f"{v:.7f}" for v in (w, s, e, n))
