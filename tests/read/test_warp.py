"""basemap.read.warp: the lattice mapping against the exact transform, and the samplers against
GDAL."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform, transform_bounds
from rasterio.windows import Window

from basemap.grid import Region, bbox_regions, px_to_mercator, region_transform
from basemap.read.warp import (
    Lattice,
    SourcePixels,
    padded,
    sample_bilinear,
    sample_nearest,
    source_coordinates,
)
from basemap.stac.search import search
from basemap.synth.tiles import world_bbox
from basemap.types import BBox

REAL = Path(__file__).parents[1] / "data" / "real-s2" / "29RKH"
Z = 14


def _sample(ds, region: Region, bilinear: bool = True) -> np.ndarray:
    """The raster of ``ds`` sampled onto ``region`` by basemap.read.warp."""
    lattice = Lattice.of(region, Z, ds.crs.to_wkt())
    pixels = SourcePixels.of(lattice, ds.transform, ds.shape)
    out = np.zeros((region.height, region.width), ds.dtypes[0])
    if pixels.part is None:
        return out
    r0, r1, c0, c1 = pixels.window
    src = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    rows, cols = pixels.part.slices((region.x0, region.y0))
    out[rows, cols] = (sample_bilinear(padded([src]), pixels, lattice, pixels.part)[0]
                       if bilinear else sample_nearest(src, pixels, lattice, pixels.part))
    return out


def _gdal(ds, region: Region, resampling: str, chunk: int = 128) -> np.ndarray:
    """GDAL's exact warp of ``ds`` onto ``region``, chunk by chunk, each from the source window
    of its footprint (+4 px): GDAL picks its bilinear kernel from the ratio of the destination
    to the source window, so one call over a whole raster would blur (the pipeline warped so)."""
    out = np.zeros((region.height, region.width), ds.dtypes[0])
    inv = ~ds.transform
    for y in range(region.y0, region.y1, chunk):
        for x in range(region.x0, region.x1, chunk):
            c = Region(x, y, x + chunk, y + chunk)
            left, top = px_to_mercator(c.x0, c.y0, Z)
            right, bottom = px_to_mercator(c.x1, c.y1, Z)
            b = transform_bounds("EPSG:3857", ds.crs, left, bottom, right, top, densify_pts=21)
            corners = [inv * (px, py) for px in (b[0], b[2]) for py in (b[1], b[3])]
            cols, rows = [p[0] for p in corners], [p[1] for p in corners]
            c0, r0 = max(int(np.floor(min(cols))) - 4, 0), max(int(np.floor(min(rows))) - 4, 0)
            c1 = min(int(np.ceil(max(cols))) + 4, ds.width)
            r1 = min(int(np.ceil(max(rows))) + 4, ds.height)
            if c0 >= c1 or r0 >= r1:
                continue
            win = Window(c0, r0, c1 - c0, r1 - r0)
            dst = np.zeros((chunk, chunk), ds.dtypes[0])
            reproject(ds.read(1, window=win), dst, src_transform=ds.window_transform(win),
                      src_crs=ds.crs, src_nodata=0, dst_transform=region_transform(c, Z),
                      dst_crs="EPSG:3857", dst_nodata=0, resampling=Resampling[resampling],
                      tolerance=0, num_threads=1)
            rs, cs = c.slices((region.x0, region.y0))
            out[rs, cs] = dst
    return out


@pytest.fixture(scope="module")
def test_world(synth_world):
    scenes = search(str(synth_world), world_bbox("test"))
    r = bbox_regions(world_bbox("test"), Z)[0].aligned_out(128)
    return scenes, Region(r.x0, r.y0, r.x0 + 512, r.y0 + 512)


def _real_region() -> Region:
    with rasterio.open(REAL / "B04.tif") as ds:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    r = bbox_regions(BBox(w, s, e, n), Z)[0]
    return Region(r.x0 + 37, r.y0 + 21, r.x0 + 37 + 384, r.y0 + 21 + 384)


def test_the_lattice_mapping_is_the_exact_transform_within_1e_5_px(test_world):
    scenes, region = test_world
    for scene in scenes:
        with rasterio.open(scene.href("red")) as ds:
            lattice = Lattice.of(region, Z, ds.crs.to_wkt())
            pixels = SourcePixels.of(lattice, ds.transform, ds.shape)
            inv = ~ds.transform
        u = source_coordinates(pixels.u, lattice, region)
        gx, gy = np.meshgrid(np.arange(region.x0, region.x1) + 0.5,
                             np.arange(region.y0, region.y1) + 0.5)
        mx, my = px_to_mercator(gx, gy, Z)
        xs, ys = transform("EPSG:3857", ds.crs, mx.ravel(), my.ravel())
        exact = (inv.a * np.asarray(xs) + inv.b * np.asarray(ys) + inv.c).reshape(u.shape)
        assert np.abs(u - exact).max() < 1e-5


def test_a_pixel_maps_to_the_same_bits_in_any_region(test_world):
    scenes, region = test_world
    inner = Region(region.x0 + 70, region.y0 + 33, region.x0 + 300, region.y0 + 190)
    with rasterio.open(scenes[0].href("red")) as ds:
        crs, affine, shape = ds.crs.to_wkt(), ds.transform, ds.shape
    got = []
    for r in (region, inner):
        lattice = Lattice.of(r, Z, crs)
        pixels = SourcePixels.of(lattice, affine, shape)
        got.append(source_coordinates(pixels.u, lattice, inner))
    assert (got[0] == got[1]).all()


def test_bilinear_equals_gdal_on_a_shifted_finer_grid_with_holes():
    """Same CRS, no reprojection error: the sampler is GDAL's kernel, to the DN."""
    rng = np.random.default_rng(0)
    src = rng.integers(1, 12000, (120, 120)).astype(np.uint16)
    src[40:47, 30:90] = 0  # nodata inside the raster: left out of the kernel
    src[rng.random(src.shape) < 0.02] = 0
    r = Region(1000, 1000, 1256, 1256)
    left, top = px_to_mercator(r.x0, r.y0, Z)
    res = px_to_mercator(1, 0, Z)[0] - px_to_mercator(0, 0, Z)[0]
    src_transform = Affine(1.7 * res, 0, left - 3.31 * res, 0, -1.7 * res, top + 2.93 * res)
    with rasterio.MemoryFile() as mem, mem.open(driver="GTiff", width=120, height=120, count=1,
                                                dtype="uint16", crs="EPSG:3857",
                                                transform=src_transform) as ds:
        ds.write(src, 1)
        got = _sample(ds, r)
        want = np.zeros_like(got)
        reproject(src, want, src_transform=src_transform, src_crs="EPSG:3857", src_nodata=0,
                  dst_transform=region_transform(r, Z), dst_crs="EPSG:3857", dst_nodata=0,
                  resampling=Resampling.bilinear, tolerance=0, num_threads=1)
        assert ((got > 0) == (want > 0)).all() and (want > 0).sum() > 20000
        assert np.abs(got.astype(int) - want).max() <= 1  # float32 against GDAL's doubles


@pytest.mark.parametrize("where", ["synthetic", "real"])
def test_bilinear_and_nearest_against_gdals_warp_across_crs(where, test_world):
    """UTM -> Web Mercator: the nodata pixels are GDAL's; values within 16 DN, 0.25 DN on mean
    (GDAL's warper places pixels ~1e-3 px off the exact transform: see BENCHMARKS.md §2)."""
    if where == "real":
        hrefs, region = [str(REAL / "B04.tif"), str(REAL / "SCL.tif")], _real_region()
    else:
        scenes, region = test_world
        hrefs = [scenes[0].href("red"), scenes[0].href("scl")]
    with rasterio.open(hrefs[0]) as ds:
        got, want = _sample(ds, region).astype(int), _gdal(ds, region, "bilinear").astype(int)
    assert ((got > 0) == (want > 0)).all() and (want > 0).sum() > 50000
    diff = np.abs(got - want)[want > 0]
    assert diff.max() <= 16 and diff.mean() < 0.25
    with rasterio.open(hrefs[1]) as ds:
        got, want = _sample(ds, region, bilinear=False), _gdal(ds, region, "nearest")
    assert (got != want).mean() < 1e-3
