"""basemap.stac.hrefs at open time: check_openable on real FIFOs, devices and files (never
blocking), and the GDAL drivers an asset may be opened with (no VRT unless BASEMAP_ALLOW_VRT=1)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.shutil import copy

from basemap.errors import UnusableAssetError
from basemap.stac.hrefs import ALLOWED_DRIVERS, allowed_drivers, check_openable, open_raster
from tests.support.mini_world import write_cog


@pytest.fixture
def cog(tmp_path):
    path = tmp_path / "B04.tif"
    write_cog(path, np.ones((64, 64), np.uint16), 32629)
    return path


def _promptly(fn, release: str | None = None, seconds: float = 10.0):
    """What ``fn()`` raised (None if nothing), failing the test if it takes over ``seconds``;
    a FIFO ``release`` is opened for writing first, so that a blocked reader gets free."""
    outcome = []

    def run():
        try:
            fn()
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if release:
            os.close(os.open(release, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"blocked for over {seconds} s")
    assert time.monotonic() - start < seconds
    return outcome[0]


@pytest.mark.parametrize("form", ["{}", "file://{}"])
def test_a_fifo_is_refused_at_once(form, tmp_path):
    fifo = tmp_path / "B04.tif"
    os.mkfifo(fifo)
    href = form.format(fifo)
    error = _promptly(lambda: check_openable(href), release=str(fifo))
    assert isinstance(error, UnusableAssetError) and error.exit_code == 2
    assert href in str(error) and "FIFO" in str(error)


def test_a_fifo_sidecar_is_refused_at_once(cog):
    """GDAL opens B04.tif.aux.xml beside a local asset: a FIFO there would hang the open."""
    sidecar = cog.parent / "B04.tif.aux.xml"
    os.mkfifo(sidecar)
    error = _promptly(lambda: check_openable(str(cog)), release=str(sidecar))
    assert isinstance(error, UnusableAssetError) and "sidecar" in str(error)


@pytest.mark.parametrize("href", ["/dev/zero", "/dev/null", "/proc/self/environ",
                                  "/sys/kernel/mm", "/vsizip//tmp/a.zip/x.tif", "/vsistdin/"])
def test_system_files_and_gdal_paths_are_refused(href):
    error = _promptly(lambda: check_openable(href))
    assert isinstance(error, UnusableAssetError) and href in str(error)


def test_symlink_to_a_device_is_refused(tmp_path):
    (tmp_path / "B04.tif").symlink_to("/dev/zero")
    error = _promptly(lambda: check_openable(str(tmp_path / "B04.tif")))
    assert isinstance(error, UnusableAssetError) and "/dev" in str(error)


def test_a_unix_socket_and_a_folder_are_refused(tmp_path):
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.tif"))
        with pytest.raises(UnusableAssetError, match="socket"):
            check_openable(str(tmp_path / "s.tif"))
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(UnusableAssetError, match="folder"):
        check_openable(str(tmp_path / "d.tif"))


def test_regular_missing_and_remote_hrefs_pass(cog, tmp_path):
    check_openable(str(cog))
    check_openable(f"file://{cog}")
    check_openable(str(tmp_path / "missing.tif"))  # reported as missing by the open itself
    check_openable("https://example.com/B04.tif")
    check_openable("s3://bucket/B04.tif")


def test_open_raster_refuses_a_vrt_unless_opted_in(cog, tmp_path, monkeypatch):
    """open_raster: a VRT wrapping a local file does not open; GeoTIFF/COG does;
    BASEMAP_ALLOW_VRT=1 lets the VRT through."""
    vrt = tmp_path / "wrap.vrt"
    with rasterio.open(cog) as src:
        copy(src, vrt, driver="VRT")
    monkeypatch.delenv("BASEMAP_ALLOW_VRT", raising=False)
    assert allowed_drivers() == ALLOWED_DRIVERS and "VRT" not in ALLOWED_DRIVERS
    with open_raster(str(cog)) as ds:
        assert ds.driver == "GTiff" and ds.read(1).sum() == 64 * 64
    with pytest.raises(RasterioIOError, match="not recognized"):
        open_raster(str(vrt))
    monkeypatch.setenv("BASEMAP_ALLOW_VRT", "1")
    assert allowed_drivers() == (*ALLOWED_DRIVERS, "VRT")
    with open_raster(str(vrt)) as ds:
        assert ds.driver == "VRT" and ds.read(1).sum() == 64 * 64


def test_open_raster_reads_over_http(cog, range_server):
    """A remote COG (the Range server on 127.0.0.1) opens as rasterio.open would open it."""
    from tests.support.servers import GDAL_TEST_ENV

    srv = range_server(cog.parent)
    with rasterio.Env(**GDAL_TEST_ENV), open_raster(srv.url_for("B04.tif")) as ds:
        assert ds.driver == "GTiff" and ds.read(1).sum() == 64 * 64
    assert srv.count("/B04.tif") > 0


