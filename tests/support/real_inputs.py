"""Static STAC catalogs (pystac) of real-shaped Sentinel-2 inputs, as users have them.

Each case is one catalog of one or two items over the same 10 m UTM grid (EPSG:32632, near
45.1 N 6.4 E), whose assets differ in the way real files do: georeferencing in ``.aux.xml``
sidecars (as GDAL writes them, and as EOX's mapchete-eo test catalog ships), JPEG2000, plain
strip-organised GeoTIFF, odd sizes, int16 with a negative nodata, ``raster:bands`` scale/offset,
SCL at 20 m or 60 m or none, and the unusable ones (no CRS at all, three bands, float).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

EPSG = 32632
X0, Y0 = 300000.0, 5000000.0
BANDS = {"red": "B04", "green": "B03", "blue": "B02"}


@dataclass
class Case:
    """One catalog: how its assets are written (see :func:`write_asset`)."""

    name: str
    size: tuple[int, int] = (256, 256)  # (rows, cols) of the 10 m bands
    driver: str = "COG"  # COG, GTiff-strip, JP2OpenJPEG
    sidecar: bool = False  # georeferencing only in .aux.xml
    no_crs: bool = False  # no georeferencing at all
    dtype: str = "uint16"
    nodata: float | None = 0
    scl: int | None = 20  # SCL resolution in m, None: no SCL asset
    bands: int = 1
    raster_bands: dict | None = None  # raster:bands entry of the red/green/blue assets
    dates: tuple[str, ...] = ("2023-06-01T10:30:00Z",)
    sidecar_keys: tuple[str, ...] = ()  # these assets only are georeferenced by a sidecar
    band_res: dict = field(default_factory=dict)  # key -> resolution (m) other than 10


CASES = [
    Case("sidecar", sidecar=True, dates=("2023-06-01T10:30:00Z", "2023-06-11T10:30:00Z")),
    Case("jp2", driver="JP2OpenJPEG"),
    Case("strip-tiff", driver="GTiff-strip"),
    Case("one-row", size=(1, 300)),
    Case("one-column", size=(300, 1)),
    Case("512x856", size=(512, 856), driver="GTiff-strip"),
    Case("prime", size=(251, 241)),
    Case("int16-negative-nodata", dtype="int16", nodata=-32768),
    Case("raster-bands-offset", raster_bands={"scale": 0.0001, "offset": -0.1, "nodata": 0}),
    Case("raster-bands-no-offset", raster_bands={"scale": 0.0001, "offset": 0, "nodata": 0}),
    Case("scl-60m", scl=60),
    Case("no-scl", scl=None),
    # As mapchete-eo's test catalog ships: only blue keeps its georeferencing in a sidecar.
    Case("mixed-georeferencing", sidecar_keys=("blue",), dates=("2023-06-01T10:30:00Z",
                                                               "2023-06-21T10:30:00Z")),
    Case("bands-on-two-grids", band_res={"green": 20}),
]
#: Cases that must fail with exit 2, and a word of the fix their message must give.
BAD_CASES = {
    "no-crs": (Case("no-crs", no_crs=True), "aux.xml"),
    "three-bands": (Case("three-bands", bands=3), "single-band"),
    "float": (Case("float", dtype="float32", nodata=None), "L2A band files"),
}


def transform(res: float) -> Affine:
    return Affine(res, 0.0, X0, 0.0, -res, Y0)


def write_aux_xml(path: Path, epsg: int, t: Affine) -> None:
    """The PAM sidecar GDAL writes for a file whose format keeps no georeferencing itself."""
    wkt = CRS.from_epsg(epsg).to_wkt()
    gt = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    Path(str(path) + ".aux.xml").write_text(
        f"<PAMDataset>\n  <SRS dataAxisToSRSAxisMapping=\"1,2\">{wkt}</SRS>\n"
        f"  <GeoTransform>{gt}</GeoTransform>\n</PAMDataset>\n")


def write_asset(path: Path, data: np.ndarray, res: float, case: Case, nodata,
                sidecar: bool | None = None) -> None:
    """One asset file of ``case`` (data (bands, rows, cols)); ``sidecar`` overrides the case's."""
    sidecar = case.sidecar if sidecar is None else sidecar
    t = transform(res)
    profile = {"width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "nodata": nodata}
    if not (sidecar or case.no_crs):
        profile.update(crs=f"EPSG:{EPSG}", transform=t)
    if case.driver == "COG":
        profile.update(driver="COG", compress="deflate", blocksize=128, overviews="NONE")
    elif case.driver == "GTiff-strip":
        profile.update(driver="GTiff", tiled=False, compress="deflate")
    else:
        profile.update(driver=case.driver, quality=100, reversible=True)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):  # no sidecar unless the case writes one
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
    if sidecar:
        write_aux_xml(path, EPSG, t)


def _dn(case: Case, rng, shape) -> np.ndarray:
    if case.dtype.startswith("float"):
        return rng.uniform(0.02, 0.3, shape).astype(case.dtype)
    data = rng.integers(1500, 4000, shape).astype(case.dtype)
    if case.nodata not in (None, 0):
        data[..., :, : max(1, shape[-1] // 8)] = case.nodata  # a nodata strip on the left
    return data


def footprint(case: Case) -> tuple[float, float, float, float]:
    rows, cols = case.size
    return transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", X0, Y0 - 10 * rows, X0 + 10 * cols, Y0)


def build_bbox(case: Case) -> str:
    """A small bbox inside the case's footprint (one or two 512-px blocks at z14)."""
    w, s, e, n = footprint(case)
    cx, cy = (w + e) / 2, (s + n) / 2
    box = (max(w, cx - 0.006), max(s, cy - 0.004), min(e, cx + 0.006), min(n, cy + 0.004))
    return ",".join(f"{v:.7f}" for v in box)


def make_catalog(root: Path, case: Case, seed: int = 0) -> Path:
    """Write ``case`` as a static catalog under ``root``; returns its catalog.json."""
    rng = np.random.default_rng(seed)
    ext = ".jp2" if case.driver == "JP2OpenJPEG" else ".tif"
    w, s, e, n = footprint(case)
    catalog = pystac.Catalog(id=f"real-{case.name}", description=f"real-shaped case {case.name}")
    coll = pystac.Collection(
        id="sentinel-2-l2a", description="real-shaped inputs", license="proprietary",
        extent=pystac.Extent(pystac.SpatialExtent([[w, s, e, n]]),
                             pystac.TemporalExtent([[None, None]])))
    catalog.add_child(coll)
    for k, when in enumerate(case.dates):
        item_id = f"S2A_32TLR_{when[:10].replace('-', '')}_0_L2A"
        folder = root / "sentinel-2-l2a" / item_id
        folder.mkdir(parents=True, exist_ok=True)
        props = {"proj:epsg": EPSG, "eo:cloud_cover": 5.0, "s2:processing_baseline": "05.09"}
        if case.raster_bands is not None:
            props.pop("s2:processing_baseline")
        item = pystac.Item(item_id, {"type": "Polygon", "coordinates": [
            [[w, s], [e, s], [e, n], [w, n], [w, s]]]}, [w, s, e, n],
            pystac.utils.str_to_datetime(when), props)
        rows, cols = case.size
        for key, name in BANDS.items():
            path = folder / f"{name}{ext}"
            res = case.band_res.get(key, 10)
            shape = (case.bands, max(1, rows * 10 // res), max(1, cols * 10 // res))
            write_asset(path, _dn(case, rng, shape), float(res), case, case.nodata,
                        sidecar=case.sidecar or key in case.sidecar_keys)
            extra = {"raster:bands": [case.raster_bands]} if case.raster_bands else {}
            item.add_asset(key, pystac.Asset(str(path), roles=["data"], extra_fields=extra))
        if case.scl is not None:
            f = case.scl // 10
            scl = np.full((1, max(1, -(-rows // f)), max(1, -(-cols // f))), 4, np.uint8)
            scl[0, 0, 0] = 8 + k  # a cloudy pixel
            path = folder / f"SCL{ext}"
            write_asset(path, scl, float(case.scl), case, 0)
            item.add_asset("scl", pystac.Asset(str(path), roles=["data"]))
        coll.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"
