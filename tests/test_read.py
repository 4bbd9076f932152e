"""basemap.read: scenes warped into chunk-aligned regions of the global grid; missing assets."""

from dataclasses import replace

import pytest
import rasterio

from basemap.config import gdal_env
from basemap.errors import MissingAssetError
from basemap.grid import Region, bbox_regions
from basemap.read import ReadSettings, observations, read_scene
from basemap.stac.search import search
from basemap.synth.tiles import world_bbox

SETTINGS = ReadSettings(zoom=14)


@pytest.fixture(scope="module")
def scenes_and_region(synth_world):
    scenes = search(str(synth_world), world_bbox("test"))
    r = bbox_regions(world_bbox("test"), 14)[0].aligned_out(128)
    x0, y0 = r.x0 + 256, r.y0 + 128
    return scenes, Region(x0, y0, x0 + 256, y0 + 256)


def test_a_scene_warped_onto_a_region(scenes_and_region):
    scenes, region = scenes_and_region
    with rasterio.Env(**gdal_env()):
        stacks = [read_scene(s, region, SETTINGS) for s in scenes]
    got = [s for s in stacks if s is not None]
    assert got, "the test world covers the region"
    assert got[0].dn.shape == (3, 256, 256) and got[0].dn.dtype == "uint16"
    assert got[0].scl.shape == (256, 256) and got[0].scl.dtype == "uint8"


def test_the_same_chunk_reads_the_same_pixels_from_a_larger_region(scenes_and_region):
    """Partition invariance starts here: a chunk's pixels do not depend on the region around it."""
    scenes, region = scenes_and_region
    big = Region(region.x0 - 128, region.y0 - 128, region.x1 + 128, region.y1 + 128)
    scene = scenes[0]
    small, large = read_scene(scene, region, SETTINGS), read_scene(scene, big, SETTINGS)
    assert (large.dn[:, 128:-128, 128:-128] == small.dn).all()  # exact: same chunks, same warp


def test_regions_must_be_chunk_aligned(scenes_and_region):
    scenes, region = scenes_and_region
    with pytest.raises(ValueError, match="not aligned"):
        read_scene(scenes[0], Region(region.x0 + 1, region.y0, region.x1, region.y1), SETTINGS)


def test_a_missing_asset_is_skipped_and_named(scenes_and_region, tmp_path):
    scenes, region = scenes_and_region
    gone = replace(scenes[0], assets=tuple((k, str(tmp_path / "gone.tif") if k == "red" else h)
                                           for k, h in scenes[0].assets))
    with pytest.raises(MissingAssetError, match="not found"):
        read_scene(gone, region, SETTINGS)
    skipped: list[str] = []
    seen = [s.id for s, _, _ in observations([gone, *scenes[1:]], region, SETTINGS, skipped)]
    assert skipped == [gone.id] and gone.id not in seen


# ---- issue 13: local assets open as GDAL opens them; unusable ones are named with the fix -------


def _asset(tmp_path, name, **case):
    import numpy as np

    from tests.support.real_inputs import Case, write_asset

    path = tmp_path / name
    c = Case(name, **case)
    data = np.full((c.bands, 16, 16), 1000).astype(c.dtype)
    write_asset(path, data, 10.0, c, c.nodata)
    return str(path)


def test_local_sidecar_georeferencing_is_honoured_under_the_build_env(tmp_path, monkeypatch):
    """Before: GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR (the remote setting, also exported to the
    workers' environment) hid the .aux.xml, and the asset opened without a CRS."""
    from basemap.read import _open

    href = _asset(tmp_path, "B04.tif", sidecar=True)
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")  # as in a Dask worker
    with rasterio.Env(**gdal_env()):
        with _open(href, "scene", "red") as ds:
            assert ds.crs == rasterio.crs.CRS.from_epsg(32632)
            assert ds.transform.c == 300000.0 and ds.transform.a == 10.0


def test_remote_hrefs_keep_the_remote_only_settings():
    from basemap.config import is_remote, open_env

    for href in ("https://x.test/a.tif", "s3://b/a.tif", "/vsicurl/http://x.test/a.tif"):
        assert is_remote(href) and open_env(href)["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    for href in ("/data/a.tif", "rel/a.jp2", "file:///data/a.tif"):
        assert not is_remote(href)
        assert open_env(href) == {"GDAL_DISABLE_READDIR_ON_OPEN": "FALSE"}


@pytest.mark.parametrize("case, words", [
    ({"no_crs": True}, ("has no CRS", ".aux.xml")),
    ({"bands": 3}, ("has 3 bands", "single-band")),
    ({"dtype": "float32", "nodata": None}, ("float32", "L2A band files")),
    ({"dtype": "uint8"}, ("uint8", "'visual'")),
])
def test_unusable_assets_name_the_href_and_the_fix(tmp_path, case, words):
    from basemap.errors import InputError, UnusableAssetError
    from basemap.read import _open, check_asset

    href = _asset(tmp_path, "B04.tif", **case)
    with _open(href, "scene", "red") as ds, pytest.raises(UnusableAssetError) as exc:
        check_asset(ds, href, "scene", "red")
    assert isinstance(exc.value, InputError) and exc.value.exit_code == 2
    assert href in str(exc.value) and all(w in str(exc.value) for w in words)


def test_jpeg2000_and_strip_tiff_assets_open(tmp_path):
    from basemap.read import _open, check_asset

    if "JP2OpenJPEG" in rasterio.drivers.raster_driver_extensions().values():
        href = _asset(tmp_path, "B04.jp2", driver="JP2OpenJPEG")
        with _open(href, "scene", "red") as ds:
            check_asset(ds, href, "scene", "red")
            assert ds.driver == "JP2OpenJPEG" and ds.read(1).max() == 1000
    href = _asset(tmp_path, "B03.tif", driver="GTiff-strip")
    with _open(href, "scene", "green") as ds:
        check_asset(ds, href, "scene", "green")
        assert ds.block_shapes[0][1] == ds.width  # strips


def test_a_missing_jpeg2000_driver_is_a_clear_error(tmp_path, monkeypatch):
    from basemap.errors import UnusableAssetError
    from basemap.read import _open

    href = str(tmp_path / "B04.jp2")
    (tmp_path / "B04.jp2").write_bytes(b"\0" * 64)
    monkeypatch.setattr(rasterio.drivers, "raster_driver_extensions", lambda: {"tif": "GTiff"})
    with pytest.raises(UnusableAssetError, match="no JP2OpenJPEG driver") as exc:
        _open(href, "scene", "red")
    assert href in str(exc.value) and "gdal_translate" in str(exc.value)


def test_int16_negative_nodata_is_nodata(tmp_path):
    import numpy as np

    from basemap.read import _dn

    href = _asset(tmp_path, "B04.tif", dtype="int16", nodata=-32768, driver="GTiff-strip")
    with rasterio.open(href, "r+") as ds:
        data = ds.read(1)
        data[:4] = -32768
        data[4, :3] = -5
        ds.write(data, 1)
    with rasterio.open(href) as ds:
        got = _dn(ds, None)
    assert (got[:4] == 0).all() and (got[4, :3] == 0).all() and (got[5:] == 1000).all()
    assert np.issubdtype(got.dtype, np.integer)
