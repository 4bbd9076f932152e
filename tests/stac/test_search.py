"""basemap.stac.search against a static catalog and a real STAC API (rustac) on 127.0.0.1;
`basemap search` input checks."""

from __future__ import annotations

import json
import logging

import pytest

from basemap.errors import StacError
from basemap.stac.search import search as stac_search
from basemap.types import BBox
from tests.support.cli_runner import run_cli
from tests.support.mini_world import MINI_ITEMS, NO_BLUE_ID

ES = "sentinel-2-l2a"
C1 = "sentinel-2-c1-l2a"
RB = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
RB0 = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0}]



# ---- search: static catalog and the real STAC API give the same answers --------------------------

KH_BOX = "-11.9,24.4,-10.9,25.2"


def _ids(scenes):
    return [s.id for s in scenes]


CASES = [
    # (bbox, datetime, max_cloud, expected ids in (datetime, id) order)
    (KH_BOX, None, None, ["S2A_29RKH_20200219_0_L2A", "S2A_29RLH_20210505_0_L2A",
                          "S2B_29RKH_20220610_0_L2A"]),
    ("-10.8,24.4,-10.0,25.2", None, None, ["S2A_29RLH_20210505_0_L2A"]),
    (KH_BOX, "2020-01-01/2021-12-31", None, ["S2A_29RKH_20200219_0_L2A",
                                             "S2A_29RLH_20210505_0_L2A"]),
    (KH_BOX, "2022-06-10", None, ["S2B_29RKH_20220610_0_L2A"]),
    (KH_BOX, "2021-01-01T00:00:00Z/..", None, ["S2A_29RLH_20210505_0_L2A",
                                                "S2B_29RKH_20220610_0_L2A"]),
    (KH_BOX, None, 10, ["S2A_29RKH_20200219_0_L2A"]),
    (KH_BOX, None, 12, ["S2A_29RKH_20200219_0_L2A", "S2A_29RLH_20210505_0_L2A"]),
    ("179.5,-17,-179.5,-16.8", None, None, ["S2A_60KYF_20230301_0_L2A",
                                            "S2A_01KAA_20230301_0_L2A"]),
    ("10,40,11,41", None, None, []),
]


@pytest.mark.parametrize(("bbox", "dt", "cloud", "expected"), CASES)
def test_search_static_and_api_agree(served_mini_world, bbox, dt, cloud, expected):
    box = BBox.parse(bbox)
    local = stac_search(str(served_mini_world.catalog_path), box, dt, cloud)
    api = stac_search(served_mini_world.stac_api_url, box, dt, cloud, collection=ES,
                      backoff_factor=0.01, timeout=5)
    assert _ids(local) == expected
    assert _ids(api) == expected
    # Same scenes apart from where the assets live (local file vs the Range server's URL).
    assert [(s.datetime, s.dn_offset, s.epsg, s.cloud_cover) for s in api] == [
        (s.datetime, s.dn_offset, s.epsg, s.cloud_cover) for s in local]
    for s in api:
        assert s.href("red").startswith(served_mini_world.range_server.url + "/")


def test_offsets_in_mini_world(mini_world):
    scenes = {s.id: s for s in stac_search(str(mini_world), BBox(-180, -90, 180, 90))}
    assert scenes["S2A_29RKH_20200219_0_L2A"].dn_offset == 0.0  # 02.14
    assert scenes["S2B_29RKH_20220610_0_L2A"].dn_offset == 0.0  # 04.00, offset applied
    assert scenes["S2A_60KYF_20230301_0_L2A"].dn_offset == -1000.0  # 05.09, not applied


def test_item_without_blue_is_skipped_and_logged(mini_world, caplog):
    with caplog.at_level(logging.WARNING, logger="basemap.stac"):
        scenes = stac_search(str(mini_world), BBox(-180, -90, 180, 90))
    assert NO_BLUE_ID not in _ids(scenes)
    assert len(scenes) == len(MINI_ITEMS) - 1
    assert any(NO_BLUE_ID in r.getMessage() and "'blue'" in r.getMessage()
               for r in caplog.records)


def test_search_single_item_and_itemcollection(tmp_path, mini_world):
    item = next(mini_world.parent.rglob("S2A_29RLH_20210505_0_L2A.json"))
    box = BBox.parse(KH_BOX)
    assert _ids(stac_search(str(item), box)) == ["S2A_29RLH_20210505_0_L2A"]
    assert stac_search(str(item), box)[0].href("red") == str(item.parent / "B04.tif")


# ---- pagination: page errors retried, loops detected (RELIABILITY row 12) ------------------------


def _fake_api(srv, pages):
    """A handcrafted STAC API on the Range server: landing page, conformance, search pages."""
    base = srv.url
    srv.add_route("/api", {
        "type": "Catalog", "id": "fake", "description": "fake", "stac_version": "1.0.0",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                       "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [{"rel": "self", "href": f"{base}/api"}, {"rel": "root", "href": f"{base}/api"},
                  {"rel": "search", "href": f"{base}/api/search", "method": "GET",
                   "type": "application/geo+json"},
                  {"rel": "search", "href": f"{base}/api/search", "method": "POST",
                   "type": "application/geo+json"}]})
    for path, page in pages.items():
        srv.add_route(path, page, content_type="application/geo+json")
    return f"{base}/api"


def _items(catalog):
    """The two oldest mini-world items, as dicts, with remote asset hrefs (an API's items may
    not reference local files)."""
    ids = ["S2A_29RKH_20200219_0_L2A", "S2A_29RLH_20210505_0_L2A"]
    items = [json.loads(next(catalog.parent.rglob(f"{i}.json")).read_text()) for i in ids]
    for item in items:
        for asset in item["assets"].values():
            asset["href"] = f"https://example.com/{item['id']}/{asset['href'][2:]}"
    return items


def _page(items, next_href=None):
    links = [{"rel": "next", "href": next_href, "method": "GET"}] if next_href else []
    return {"type": "FeatureCollection", "features": items, "links": links}


def test_pagination_loop_detected(range_server, mini_world, tmp_path):
    items = _items(mini_world)
    srv = range_server(tmp_path)
    url = _fake_api(srv, {"/api/search": _page(items[:1], f"{srv.url}/api/search2"),
                          "/api/search2": _page(items[1:2], f"{srv.url}/api/search2")})
    with pytest.raises(StacError, match="loops"):
        stac_search(url, BBox.parse(KH_BOX), backoff_factor=0.01, timeout=5)
    assert srv.count("/api/search2") <= 3  # stopped promptly, no endless paging


def test_page_error_is_retried(range_server, mini_world, tmp_path):
    items = _items(mini_world)
    srv = range_server(tmp_path)
    url = _fake_api(srv, {"/api/search": _page(items[:1], f"{srv.url}/api/search2"),
                          "/api/search2": _page(items[1:2])})
    srv.add_fault("/api/search2", "status", status=503, times=2)
    scenes = stac_search(url, BBox.parse(KH_BOX), backoff_factor=0.01, timeout=5)
    assert _ids(scenes) == ["S2A_29RKH_20200219_0_L2A", "S2A_29RLH_20210505_0_L2A"]
    assert srv.count("/api/search2") == 3


def test_page_error_persisting_is_a_stac_error(range_server, tmp_path):
    srv = range_server(tmp_path)
    url = _fake_api(srv, {"/api/search": _page([])})
    srv.add_fault("/api/search", "status", status=503)
    with pytest.raises(StacError, match="failed"):
        stac_search(url, BBox.parse(KH_BOX), backoff_factor=0.01, timeout=5)
    assert srv.count("/api/search") == 6  # the first try and 5 retries


# ---- the CLI: rows 1-6 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bbox", "5,46,6,45"], "south=46.0 must be less than north"),
        (["--bbox", "5,-95,6,45"], "south=-95.0 is outside -90..90"),
        (["--bbox", "5,45,190,46"], "east=190.0 is outside -180..180"),
        (["--bbox", "nan,45,6,46"], "west must be a finite number"),
        (["--bbox", "5,45,6"], "four numbers"),
        (["--bbox", "5,45,6,46", "--datetime", "2024-02-30/2024-03-01"], "not an ISO 8601"),
        (["--bbox", "5,45,6,46", "--datetime", "2024-06-01/2024-01-01"], "reversed"),
        (["--bbox", "5,45,6,46", "--max-cloud", "150"], "0..100"),
        (["--bbox", "5,45,6,46", "--max-cloud", "nan"], "0..100"),
    ],
)
def test_cli_bad_input_exits_2_before_network(args, message, range_server, tmp_path, monkeypatch,
                                              capsys):
    srv = range_server(tmp_path)  # a real server: any request would show in its log
    code, _, err = run_cli(["search", "--stac", srv.url, *args], monkeypatch, capsys)
    assert code == 2, err
    assert message in err
    assert srv.count() == 0, "no network call may happen before input is validated"


def test_cli_search_table_and_count(mini_world, monkeypatch, capsys):
    code, out, _ = run_cli(["search", "--stac", str(mini_world), "--bbox", KH_BOX,
                            "--max-cloud", "20"], monkeypatch, capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["id", "date", "cloud", "%", "baseline", "tile", "epsg"]
    assert lines[1].split() == ["S2A_29RKH_20200219_0_L2A", "2020-02-19", "4.0", "02.14",
                                "MGRS-29RKH", "32629"]
    assert lines[-1] == "2 items found."


def test_cli_search_antimeridian_json(mini_world, monkeypatch, capsys):
    code, out, _ = run_cli(["search", "--stac", str(mini_world), "--bbox", "179.5,-17,-179.5,-16.8",
                            "--json"], monkeypatch, capsys)
    assert code == 0
    assert [d["id"] for d in json.loads(out)] == ["S2A_60KYF_20230301_0_L2A",
                                                  "S2A_01KAA_20230301_0_L2A"]


def test_cli_zero_items_exit_0(mini_world, monkeypatch, capsys):
    code, out, _ = run_cli(["search", "--stac", str(mini_world), "--bbox", "10,40,11,41"],
                           monkeypatch, capsys)
    assert code == 0 and "No items found" in out


def test_cli_clamps_latitude_with_warning(mini_world, monkeypatch, capsys):
    code, out, err = run_cli(["search", "--stac", str(mini_world), "--bbox", "10,40,11,89"],
                             monkeypatch, capsys)
    assert code == 0 and "Warning: latitudes clamped" in err


def test_cli_unreachable_api_exit_1(monkeypatch, capsys):
    from tests.support.servers import free_port

    monkeypatch.setenv("BASEMAP_STAC_BACKOFF", "0.01")
    code, _, err = run_cli(["search", "--stac", f"http://127.0.0.1:{free_port()}",
                            "--bbox", KH_BOX], monkeypatch, capsys)
    assert code == 1 and "cannot open the STAC API" in err
