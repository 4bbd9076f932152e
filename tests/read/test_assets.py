"""basemap.read.assets: local assets open as GDAL opens them (sidecars), remote ones with the
remote-only settings; unusable assets are named with the fix (issue 13)."""

import pytest
import rasterio

from basemap.config import gdal_env


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
    from basemap.read.assets import open_asset as _open

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
    from basemap.read.assets import check_asset
    from basemap.read.assets import open_asset as _open

    href = _asset(tmp_path, "B04.tif", **case)
    with _open(href, "scene", "red") as ds, pytest.raises(UnusableAssetError) as exc:
        check_asset(ds, href, "scene", "red")
    assert isinstance(exc.value, InputError) and exc.value.exit_code == 2
    assert href in str(exc.value) and all(w in str(exc.value) for w in words)


def test_jpeg2000_and_strip_tiff_assets_open(tmp_path):
    from basemap.read.assets import check_asset
    from basemap.read.assets import open_asset as _open

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
    from basemap.read.assets import open_asset as _open

    href = str(tmp_path / "B04.jp2")
    (tmp_path / "B04.jp2").write_bytes(b"\0" * 64)
    monkeypatch.setattr(rasterio.drivers, "raster_driver_extensions", lambda: {"tif": "GTiff"})
    with pytest.raises(UnusableAssetError, match="no JP2OpenJPEG driver") as exc:
        _open(href, "scene", "red")
    assert href in str(exc.value) and "gdal_translate" in str(exc.value)


def test_int16_negative_nodata_is_nodata(tmp_path):
    import numpy as np

    from basemap.read.assets import read_dn as _dn

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


def test_the_preflight_checks_local_assets_and_one_remote_asset_per_source(tmp_path,
                                                                          monkeypatch):
    """check_assets opens every local asset (exit 2 on an unusable one) and one remote asset per
    (source, collection, host): a refusing archive stops the run before any block."""
    from types import SimpleNamespace

    from basemap.errors import MissingAssetError, UnusableAssetError
    from basemap.read import assets

    bad = _asset(tmp_path, "B04.tif", no_crs=True)
    opened = []
    real = assets.open_asset

    def recording_open(href, *args):
        opened.append(href)
        if "://" in href or href.startswith("/vsi"):  # no network here: as a 404 answers
            raise MissingAssetError(href)
        return real(href, *args)

    monkeypatch.setattr(assets, "open_asset", recording_open)

    def remote(i, host):
        return SimpleNamespace(id=f"r{i}", source="earth-search", collection="c", assets=(
            ("red", f"https://{host}/{i}/B04.tif"), ("blue", f"https://{host}/{i}/B02.tif")))

    assets.check_assets([remote(0, "a.test"), remote(1, "a.test"), remote(2, "b.test")])
    assert opened == ["https://a.test/0/B04.tif", "https://b.test/2/B04.tif"]
    opened.clear()
    local = SimpleNamespace(id="l", source="generic", collection="", assets=(("red", bad),
                                                                            ("nir", bad)))
    with pytest.raises(UnusableAssetError, match="has no CRS"):
        assets.check_assets([local])
    assert opened == [bad]
