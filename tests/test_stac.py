"""basemap.stac: the DN offset rule, reflectance, Scene tokens, manifests, and search against a
static catalog and a real STAC API (rustac) on 127.0.0.1; `basemap search` input checks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from basemap.errors import AssetError, StacError
from basemap.stac.manifest import read_manifest, write_manifest
from basemap.stac.radiometry import dn_offset_for, to_reflectance
from basemap.stac.scene import Scene, scene_from_item
from basemap.stac.search import search as stac_search
from basemap.types import BBox
from tests.cli_runner import run_cli
from tests.mini_world import MINI_ITEMS, NO_BLUE_ID

ES = "sentinel-2-l2a"
C1 = "sentinel-2-c1-l2a"
RB = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
RB0 = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0}]


# ---- the DN offset rule, case by case (S2_L2A.md) ----------------------------------------------


@pytest.mark.parametrize(
    ("props", "bands", "collection", "expected"),
    [
        # Earth Search v1: the flag is the truth, whatever raster:bands says.
        ({"earthsearch:boa_offset_applied": True, "s2:processing_baseline": "05.09"}, RB, ES, 0.0),
        ({"earthsearch:boa_offset_applied": True, "s2:processing_baseline": "05.09"}, RB0, ES, 0.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "05.09"}, RB0, ES,
         -1000.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "04.00"}, RB, ES,
         -1000.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "02.14"}, RB0, ES,
         0.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "03.01"}, RB, ES, 0.0),
        ({"earthsearch:boa_offset_applied": "true", "s2:processing_baseline": "04.00"}, RB, ES,
         0.0),
        # Earth Search c1-l2a: unshifted pixels, raster:bands offset is correct.
        ({"s2:processing_baseline": "05.00"}, RB, C1, -1000.0),
        ({"s2:processing_baseline": "05.00"}, RB0, C1, 0.0),
        ({}, [{"scale": 0.0001, "offset": -0.1}], C1, -1000.0),
        # Planetary Computer: no raster:bands; the baseline decides.
        ({"s2:processing_baseline": "04.00"}, None, ES, -1000.0),
        ({"s2:processing_baseline": "05.10"}, None, ES, -1000.0),
        ({"s2:processing_baseline": "03.01"}, None, ES, 0.0),
        ({"s2:processing_baseline": "02.09"}, [{"scale": 0.0001}], ES, 0.0),
        # Baseline only in the product URI.
        ({"s2:product_uri": "S2B_MSIL2A_20220301T101029_N0400_R022_T32TLR_20220301T133104.SAFE"},
         None, ES, -1000.0),
        ({"s2:product_uri": "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947.SAFE"},
         None, ES, 0.0),
        # Missing baseline: Collection-1 -> -1000; otherwise by date (2022-01-25 on -> -1000).
        ({"datetime": "2019-05-01T10:00:00Z"}, None, C1, -1000.0),
        ({"datetime": "2022-01-25T00:00:00Z"}, None, ES, -1000.0),
        ({"datetime": "2022-01-24T23:59:59Z"}, None, ES, 0.0),
        ({"datetime": "2018-07-01T10:00:00Z"}, None, "my-s2", 0.0),
        # Flag false and no baseline: the date decides (raster:bands is not trusted on ES v1).
        ({"earthsearch:boa_offset_applied": False, "datetime": "2023-05-01T00:00:00Z"}, RB0, ES,
         -1000.0),
    ],
)
def test_dn_offset_rule(props, bands, collection, expected):
    assert dn_offset_for(props, bands, collection) == expected


def test_dn_offset_rejects_odd_raster_bands_offset():
    with pytest.raises(StacError, match="neither -0.1 nor 0"):
        dn_offset_for({}, [{"scale": 0.0001, "offset": -0.2}], C1)


def test_real_earthsearch_item_offset():
    """The real 29RKH item (baseline 02.14, flag false) has no offset."""
    item = json.loads((__import__("pathlib").Path(__file__).parent / "data" /
                       "earthsearch_29RKH_item.json").read_text())
    scene = scene_from_item(item)
    assert scene.dn_offset == 0.0
    assert scene.epsg == 32629 and scene.grid_code == "MGRS-29RKH"
    assert scene.href("red").endswith("/B04.tif") and scene.href("scl").endswith("/SCL.tif")


def test_planetary_computer_asset_names():
    item = {
        "id": "S2B_MSIL2A_20220301T101029_R022_T32TLR_20220301T133104",
        "collection": "sentinel-2-l2a",
        "bbox": [5.6, 45.0, 7.0, 46.0],
        "geometry": {"type": "Point", "coordinates": [6, 45.5]},
        "properties": {"datetime": "2022-03-01T10:10:29Z", "proj:code": "EPSG:32632",
                       "s2:processing_baseline": "04.00", "s2:mgrs_tile": "32TLR",
                       "eo:cloud_cover": 2.0},
        "assets": {k: {"href": f"https://pc.example/{k}.tif"}
                   for k in ("B02", "B03", "B04", "B08", "SCL", "visual")},
    }
    scene = scene_from_item(item)
    assert dict(scene.assets) == {"red": "https://pc.example/B04.tif",
                                  "green": "https://pc.example/B03.tif",
                                  "blue": "https://pc.example/B02.tif",
                                  "nir": "https://pc.example/B08.tif",
                                  "scl": "https://pc.example/SCL.tif"}
    assert scene.dn_offset == -1000.0 and scene.epsg == 32632 and scene.grid_code == "MGRS-32TLR"


# ---- reflectance --------------------------------------------------------------------------------


def test_to_reflectance_offset_clip_and_mask():
    dn = np.array([[[0, 500, 1000, 3000, 30000]]] * 3, dtype=np.uint16)
    refl, valid = to_reflectance(dn, -1000.0)
    assert refl.dtype == np.float32 and refl.shape == (3, 1, 5)
    assert valid.tolist() == [[False, True, True, True, True]]
    # (DN-1000)/1e4: 500 -> -0.05 clipped to 0; 3000 -> 0.2; 30000 -> 2.9 clipped to 1.5.
    np.testing.assert_allclose(refl[0, 0], [0.0, 0.0, 0.0, 0.2, 1.5], atol=1e-7)
    refl0, _ = to_reflectance(dn, 0.0)
    np.testing.assert_allclose(refl0[0, 0], [0.0, 0.05, 0.1, 0.3, 1.5], atol=1e-7)


def test_to_reflectance_dn0_in_one_band_invalidates_pixel():
    dn = np.full((3, 2, 2), 2000, np.uint16)
    dn[1, 0, 0] = 0
    refl, valid = to_reflectance(dn, 0.0)
    assert not valid[0, 0] and valid.sum() == 3
    assert (refl[:, 0, 0] == 0).all() and not np.isnan(refl).any()


@pytest.mark.parametrize("dtype", ["float32", "uint8", "bool"])
def test_to_reflectance_wrong_dtype(dtype):
    with pytest.raises(AssetError, match="expected Sentinel-2 DN as uint16"):
        to_reflectance(np.ones((3, 2, 2), dtype=dtype), 0.0)


# ---- Scene: Dask tokens and manifest -----------------------------------------------------------


def _scene(**kw):
    base = dict(id="a", collection=ES, datetime="2020-01-01T00:00:00Z", updated=None, epsg=32631,
                bbox=(1.0, 2.0, 3.0, 4.0), footprint='{"type":"Point","coordinates":[2,3]}',
                assets=(("red", "r.tif"), ("green", "g.tif"), ("blue", "b.tif")),
                dn_offset=0.0, processing_baseline="02.14", cloud_cover=1.5, grid_code=None)
    base.update(kw)
    return Scene(**base)


def test_scene_dask_token_deterministic():
    from dask.base import tokenize

    assert tokenize(_scene()) == tokenize(_scene())
    assert tokenize(_scene()) != tokenize(_scene(dn_offset=-1000.0))
    assert tokenize(_scene()) != tokenize(_scene(assets=(("red", "x.tif"),)))
    code = ("from dask.base import tokenize; import tests.test_stac as t; "
            "print(tokenize(t._scene()))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == tokenize(_scene()), "token must not depend on the process (hash seed)"


def test_manifest_roundtrip(tmp_path, mini_world):
    scenes = stac_search(str(mini_world), BBox(-180, -90, 180, 90))
    path = write_manifest(scenes, tmp_path / "m" / "manifest.json")
    assert read_manifest(path) == scenes
    assert not list(path.parent.glob("*.tmp"))


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
    """The two oldest mini-world items, as dicts."""
    ids = ["S2A_29RKH_20200219_0_L2A", "S2A_29RLH_20210505_0_L2A"]
    return [json.loads(next(catalog.parent.rglob(f"{i}.json")).read_text()) for i in ids]


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
    from tests.servers import free_port

    monkeypatch.setenv("BASEMAP_STAC_BACKOFF", "0.01")
    code, _, err = run_cli(["search", "--stac", f"http://127.0.0.1:{free_port()}",
                            "--bbox", KH_BOX], monkeypatch, capsys)
    assert code == 1 and "cannot open the STAC API" in err
