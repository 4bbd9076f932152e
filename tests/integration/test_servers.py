"""The test servers themselves (tests/support/servers.py): rustac STAC API, the HTTP Range server
and its faults, GDAL /vsicurl/ reads through it, and the served synthetic world."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from basemap.stac.search import _pages
from basemap.stac.search import search as stac_search
from basemap.types import BBox
from tests.support.servers import GDAL_TEST_ENV

KH_BOX = [-11.9, 24.4, -10.9, 25.2]


def _get(url, headers=None, method="GET", timeout=5):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


def _http_status(url, **kw):
    try:
        return _get(url, **kw)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


# ---- rustac serve -----------------------------------------------------------------------------


def test_rustac_search_by_bbox_datetime(stac_api, mini_world):
    from pystac_client import Client

    url = stac_api(mini_world)
    client = Client.open(url)
    ids = sorted(i.id for i in client.search(bbox=KH_BOX).items())
    # The no-blue item is in the API (it's the client that skips it).
    assert ids == ["S2A_29RKH_20200219_0_L2A", "S2A_29RKH_20230101_0_L2A",
                   "S2A_29RLH_20210505_0_L2A", "S2B_29RKH_20220610_0_L2A"]
    ids = sorted(i.id for i in client.search(bbox=KH_BOX, datetime="2020-01-01/2021-12-31")
                 .items())
    assert ids == ["S2A_29RKH_20200219_0_L2A", "S2A_29RLH_20210505_0_L2A"]
    ids = sorted(i.id for i in client.search(bbox=[179.5, -17, 180, -16.8]).items())
    assert ids == ["S2A_60KYF_20230301_0_L2A"]


def test_rustac_lacks_query_so_cloud_filter_runs_on_client(stac_api, mini_world):
    """rustac answers a query= search with NOTHING; basemap.stac filters on the client."""
    from pystac_client import Client
    from pystac_client.conformance import ConformanceClasses

    url = stac_api(mini_world)
    client = Client.open(url)
    assert not client.conforms_to(ConformanceClasses.QUERY)
    with pytest.warns(Warning):
        raw = list(client.search(bbox=KH_BOX, query={"eo:cloud_cover": {"lte": 10}}).items())
    assert raw == []
    local = (str(mini_world.parent),)  # the served items point at the world's local COGs
    assert [s.id for s in stac_search(url, BBox(*KH_BOX), max_cloud=10, read_roots=local)] == [
        "S2A_29RKH_20200219_0_L2A"]


def test_rustac_paginates(stac_api, mini_world):
    """Pages of 2 items are followed to the end (our loop detector does not misfire)."""
    from pystac_client import Client

    url = stac_api(mini_world)
    pages = list(_pages(Client.open(url).search(bbox=[-180, -90, 180, 90], limit=2), url))
    assert len(pages) == 3
    assert sum(len(p["features"]) for p in pages) == 6


# ---- HTTP Range server ---------------------------------------------------------------------------


@pytest.fixture
def blob(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "blob.bin").write_bytes(data)
    return tmp_path, data


def test_range_head_and_partial_content(range_server, blob):
    root, data = blob
    srv = range_server(root)
    url = srv.url_for("d/blob.bin")
    status, headers, body = _get(url, method="HEAD")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == "5000" and headers["Accept-Ranges"] == "bytes"
    status, headers, body = _get(url, {"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == "bytes 100-199/5000" and headers["Content-Length"] == "100"
    assert _get(url, {"Range": "bytes=4990-"})[2] == data[4990:]
    assert _get(url, {"Range": "bytes=-10"})[2] == data[-10:]
    assert _get(url)[2] == data
    assert _http_status(url, headers={"Range": "bytes=6000-7000"}) == 416
    assert _http_status(srv.url + "/d/missing.bin") == 404
    assert srv.count("/d/blob.bin") == 6 and srv.count("/d/blob.bin", method="HEAD") == 1


def test_rasterio_vsicurl_windows_equal_local_reads(range_server, mini_world):
    root = mini_world.parent
    cog = next(root.rglob("S2A_29RLH_20210505_0_L2A/B04.tif"))
    srv = range_server(root)
    with rasterio.Env(**GDAL_TEST_ENV):
        with rasterio.open("/vsicurl/" + srv.url_for(cog)) as remote, rasterio.open(cog) as local:
            for win in (Window(0, 0, 64, 64), Window(10, 20, 30, 17), Window(40, 33, 24, 31)):
                np.testing.assert_array_equal(remote.read(1, window=win),
                                              local.read(1, window=win))
            assert remote.profile["blockxsize"] == 32
    ranged = [r for r in srv.log if r.range]
    assert ranged and all(r.status == 206 for r in ranged), "GDAL must read by byte ranges"


# ---- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_fault_status_n_times_then_ok(range_server, blob, status):
    root, data = blob
    srv = range_server(root)
    url = srv.url_for("d/blob.bin")
    fault = srv.add_fault("*/blob.bin", "status", status=status, times=2, retry_after=1)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(url)
        assert exc.value.code == status and exc.value.headers["Retry-After"] == "1"
    assert _get(url)[2] == data
    assert fault.fired == 2 and srv.count("/d/blob.bin") == 3
    assert [r.status for r in srv.log] == [status, status, 200]


def test_fault_404_forever_and_clear(range_server, blob):
    root, data = blob
    srv = range_server(root)
    url = srv.url_for("d/blob.bin")
    srv.add_fault("/d/*", "status", status=404)
    assert [_http_status(url) for _ in range(3)] == [404, 404, 404]
    srv.clear_faults()
    assert _get(url)[2] == data


def test_fault_truncated_body(range_server, blob):
    root, _ = blob
    srv = range_server(root)
    srv.add_fault("*.bin", "truncate", keep_bytes=123, times=1)
    with pytest.raises(http.client.IncompleteRead) as exc:
        _get(srv.url_for("d/blob.bin"))
    assert len(exc.value.partial) == 123


def test_fault_stall_outlasts_client_timeout(range_server, blob):
    root, data = blob
    srv = range_server(root)
    srv.add_fault("*.bin", "stall", seconds=30, times=1)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _get(srv.url_for("d/blob.bin"), timeout=0.5)
    assert _get(srv.url_for("d/blob.bin"))[2] == data  # next request is served


def test_gdal_retries_through_a_503(range_server, mini_world):
    """GDAL's own retry (GDAL_HTTP_MAX_RETRY) gets past one 503; the log shows the retry."""
    root = mini_world.parent
    cog = next(root.rglob("S2A_29RKH_20200219_0_L2A/B03.tif"))
    srv = range_server(root)
    srv.add_fault("*/B03.tif", "status", status=503, times=1)
    env = dict(GDAL_TEST_ENV, GDAL_HTTP_MAX_RETRY="2", GDAL_HTTP_RETRY_DELAY="0.05")
    with rasterio.Env(**env), rasterio.open("/vsicurl/" + srv.url_for(cog)) as remote, \
            rasterio.open(cog) as local:
        np.testing.assert_array_equal(remote.read(1), local.read(1))
    assert [r.status for r in srv.log][0] == 503 and srv.count("*/B03.tif") >= 2


# ---- the served worlds ---------------------------------------------------------------------------


def test_served_mini_world_assets_read_over_http(served_mini_world):
    api, srv, catalog = served_mini_world
    scenes = stac_search(api, BBox(*KH_BOX), "2020-02-19")
    assert [s.id for s in scenes] == ["S2A_29RKH_20200219_0_L2A"]
    href = scenes[0].href("red")
    local = catalog.parent / Path(href.split(srv.url + "/", 1)[1])
    with rasterio.Env(**GDAL_TEST_ENV), rasterio.open("/vsicurl/" + href) as r, \
            rasterio.open(local) as loc:
        np.testing.assert_array_equal(r.read(1), loc.read(1))


def test_synth_world_two_zones_static_equals_api(served_world):
    """The synthetic world (both UTM zones) searched locally and through rustac: same ids."""
    from basemap.synth.tiles import world_bbox

    api, srv, catalog = served_world
    box = world_bbox("test")
    local = stac_search(str(catalog), box)
    remote = stac_search(api, box, collection="sentinel-2-l2a")
    assert {s.epsg for s in local} == {32631, 32632}
    assert [s.id for s in remote] == [s.id for s in local]
    assert all(s.href("red").startswith(srv.url + "/") for s in remote)
    # Filters agree too: the last date, the first date, a cloud limit between the items' values.
    dates = sorted({s.datetime[:10] for s in local})
    clouds = sorted(s.cloud_cover for s in local)
    limit = (clouds[3] + clouds[4]) / 2
    for dt, cloud in ((f"{dates[-1]}/..", None), (f"../{dates[0]}", None), (None, limit)):
        want = [s.id for s in local if (cloud is None or s.cloud_cover <= cloud)
                and (dt is None or s.datetime[:10] == (dates[-1] if dt.endswith("..")
                                                        else dates[0]))]
        assert want, "each filter case must keep something"
        assert [s.id for s in stac_search(str(catalog), box, dt, cloud)] == want
        assert [s.id for s in stac_search(api, box, dt, cloud)] == want


def test_cli_synth_then_search_lists_both_zones(tmp_path, stac_api):
    """`basemap synth W --seed 1 --preset test` then `basemap search --stac W/catalog.json`."""
    from basemap.synth.tiles import world_bbox

    exe = [sys.executable, "-c", "from basemap.cli import main; main()"]
    subprocess.run([*exe, "synth", str(tmp_path / "w"), "--seed", "1", "--preset", "test"],
                   check=True, capture_output=True)
    catalog = tmp_path / "w" / "catalog.json"
    box = str(world_bbox("test"))
    out = subprocess.run([*exe, "search", "--stac", str(catalog), "--bbox", box, "--json"],
                         check=True, capture_output=True, text=True).stdout
    local = json.loads(out)
    assert {d["epsg"] for d in local} == {32631, 32632}
    url = stac_api(catalog)
    out = subprocess.run([*exe, "search", "--stac", url, "--bbox", box, "--json",
                          "--read-root", str(tmp_path / "w")],
                         check=True, capture_output=True, text=True).stdout
    assert [d["id"] for d in json.loads(out)] == [d["id"] for d in local]
