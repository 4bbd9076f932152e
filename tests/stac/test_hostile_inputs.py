"""Hostile and broken catalogs: hrefs that escape the catalog (read policy), a bbox wider than 180
degrees, duplicate item ids, malformed items. Real servers on 127.0.0.1, real files, no mocks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from basemap.errors import ConfigError
from basemap.stac.manifest import manifest_bytes
from basemap.stac.search import search as stac_search
from basemap.types import BBox
from tests.support.cli_runner import run_cli
from tests.support.mini_world import MINI_ITEMS, make_item, write_cog

WORLD = BBox(-180, -90, 180, 90)
KH = "S2A_29RKH_20200219_0_L2A"


def _item(item_id: str = KH, **changes) -> dict:
    """A mini-world item (relative hrefs ./B04.tif ...) with ``changes`` to its spec fields."""
    fields = ("when", "cloud", "baseline", "applied", "bbox", "epsg", "grid", "drop")
    spec = dict(zip(fields, MINI_ITEMS[KH], strict=True)) | changes
    return make_item(item_id, tuple(spec[f] for f in fields))


def _collection(folder: Path, items: list, name: str = "items.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def _cogs(folder: Path, epsg: int = 32629) -> None:
    """The five tiny COGs a mini-world item's relative hrefs name, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("B04.tif", "B03.tif", "B02.tif", "B08.tif", "SCL.tif"):
        write_cog(folder / name, rng.integers(1, 10000, (64, 64), dtype=np.uint16), epsg)


def _with_red(item: dict, href: str) -> dict:
    item["assets"]["red"]["href"] = href
    return item


def _ids(scenes) -> list[str]:
    return [s.id for s in scenes]


# ---- row 2: where a catalog's hrefs may point ------------------------------------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    """A real COG outside any catalog folder."""
    _cogs(tmp_path / "outside")
    return tmp_path / "outside" / "B04.tif"


def _vrt(path: Path, wrapped: Path) -> Path:
    """A GDAL VRT wrapping the local file ``wrapped``."""
    import rasterio
    from rasterio.shutil import copy

    with rasterio.open(wrapped) as src:
        copy(src, path, driver="VRT")
    return path


REMOTE_HOSTILE = ["/etc/passwd", "file:///etc/passwd", "/proc/self/environ", "{outside}",
                  "file://{outside}", "{vrt}"]


@pytest.mark.parametrize("href", REMOTE_HOSTILE)
def test_remote_catalog_may_not_reference_local_files(href, outside, range_server, tmp_path):
    """An ItemCollection fetched over HTTP whose red asset is a local file: ConfigError naming
    the href, the item and --read-root; no local file is read."""
    vrt = _vrt(tmp_path / "outside" / "wrap.vrt", outside)
    href = href.format(outside=outside, vrt=vrt)
    srv = range_server(tmp_path / "served")
    _collection(tmp_path / "served", [_with_red(_item(), href)])
    with pytest.raises(ConfigError) as err:
        stac_search(f"{srv.url}/items.json", WORLD)
    assert href in str(err.value) and KH in str(err.value) and "--read-root" in str(err.value)


def test_remote_catalog_relative_hrefs_stay_on_its_server(range_server, tmp_path):
    """'../x.tif' in a catalog fetched over HTTP is a URL on the same server: allowed."""
    srv = range_server(tmp_path)
    _collection(tmp_path / "a", [_with_red(_item(), "../../etc/passwd")])
    [scene] = stac_search(f"{srv.url}/a/items.json", WORLD)
    assert scene.href("red") == f"{srv.url}/etc/passwd"


def test_stac_api_items_with_local_hrefs_are_refused_unless_under_a_read_root(stac_api,
                                                                               mini_world):
    """rustac serving items whose hrefs are local paths: refused; --read-root allows them."""
    url = stac_api(mini_world)
    with pytest.raises(ConfigError, match="remote.*--read-root"):
        stac_search(url, WORLD)
    scenes = stac_search(url, WORLD, read_roots=(str(mini_world.parent),))
    assert len(scenes) == len(MINI_ITEMS) - 1  # all but the one without blue


@pytest.mark.parametrize("href", ["../outside/B04.tif", "{outside}", "file://{outside}",
                                  "./link.tif", "/etc/passwd", "/proc/self/environ"])
def test_local_catalog_reads_under_its_folder_or_a_read_root(href, outside, tmp_path):
    """A local catalog's hrefs: under its folder (realpath: '..' and symlinks resolved first),
    else only under a --read-root; /etc and /proc never without one."""
    cat = tmp_path / "cat"
    _cogs(cat)
    (cat / "link.tif").symlink_to(outside)
    href = href.format(outside=outside)
    path = _collection(cat, [_with_red(_item(), href)])
    with pytest.raises(ConfigError) as err:
        stac_search(str(path), WORLD)
    named = href if "://" in href or href.startswith("/") else os.path.normpath(cat / href)
    assert named in str(err.value) and KH in str(err.value) and "--read-root" in str(err.value)
    if "outside" in href or "link" in href:
        [scene] = stac_search(str(path), WORLD, read_roots=(str(outside.parent),))
        assert os.path.realpath(scene.href("red").removeprefix("file://")) == str(outside)


@pytest.mark.parametrize("href", ["ftp://h/B04.tif", "gs://b/B04.tif", "/vsicurl/https://h/a.tif",
                                  "/vsizip/{cat}/a.zip/B04.tif"])
def test_other_schemes_and_gdal_paths_are_refused(href, tmp_path):
    href = href.format(cat=tmp_path / "cat")
    path = _collection(tmp_path / "cat", [_with_red(_item(), href)])
    with pytest.raises(ConfigError, match="http\\(s\\), s3 and local files only"):
        stac_search(str(path), WORLD)


def test_local_catalog_files_under_its_folder_are_read(tmp_path):
    cat = tmp_path / "cat"
    _cogs(cat)
    path = _collection(cat, [_item()])
    assert stac_search(str(path), WORLD)[0].href("red") == str(cat / "B04.tif")


def test_catalog_links_follow_the_policy(outside, range_server, tmp_path):
    """A catalog fetched over HTTP whose item link is a local file: refused before reading it."""
    item = outside.parent / "item.json"
    item.write_text(json.dumps(_item()))
    srv = range_server(tmp_path / "served")
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "id": "c", "description": "d", "stac_version": "1.0.0",
        "links": [{"rel": "item", "href": f"file://{item}"}]}))
    with pytest.raises(ConfigError, match=f"item link of {srv.url}/catalog.json"):
        stac_search(f"{srv.url}/catalog.json", WORLD)


def test_a_fifo_item_link_fails_promptly(tmp_path):
    """A local catalog whose item link is a FIFO: ConfigError at once, never a hang."""
    cat = tmp_path / "cat"
    cat.mkdir()
    fifo = cat / "item.json"
    os.mkfifo(fifo)
    (cat / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "id": "c", "description": "d", "stac_version": "1.0.0",
        "links": [{"rel": "item", "href": "./item.json"}]}))
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(_raised(
        stac_search, str(cat / "catalog.json"), WORLD)), daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():  # blocked opening the FIFO: release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the search blocked on a FIFO")
    assert isinstance(outcome[0], ConfigError) and "FIFO" in str(outcome[0])


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as exc:
        return exc
    return None


def test_cli_build_refuses_local_rasters_of_a_remote_catalog(outside, range_server, tmp_path,
                                                             monkeypatch, capsys):
    """`basemap build --stac http://.../items.json` whose hrefs are local files: exit 2, naming
    the href and --read-root; nothing published."""
    srv = range_server(tmp_path / "served")
    item = _item()
    for asset in item["assets"].values():
        asset["href"] = str(outside.parent / asset["href"][2:])
    _collection(tmp_path / "served", [item])
    out = tmp_path / "out"
    code, _, err = run_cli(["build", "--stac", f"{srv.url}/items.json", "--bbox",
                            "-11.0,25.28,-10.98,25.3", "--zoom", "14", "--out", str(out),
                            "--renderer", "linear", "--block-size", "512", "--workers", "0",
                            "--quiet"], monkeypatch, capsys)
    assert code == 2, err
    assert str(outside) in err and KH in err and "--read-root" in err
    assert not (out / "tiles").exists() and not (out / "cogs").exists()


def test_cli_search_read_root(outside, tmp_path, monkeypatch, capsys):
    path = _collection(tmp_path / "cat", [_with_red(_item(), str(outside))])
    args = ["search", "--stac", str(path), "--bbox", "-12,24,-10,26"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and str(outside) in err and "--read-root" in err
    code, out, err = run_cli([*args, "--read-root", str(outside.parent)], monkeypatch, capsys)
    assert code == 0 and KH in out, err


# ---- row 3: a bbox wider than 180 degrees ------------------------------------------------------


def test_search_box_of_a_bbox_wider_than_180_degrees():
    from basemap.grid import bbox_regions, plan_blocks
    from basemap.pipeline.plan import BuildSettings, search_bbox

    settings = BuildSettings(renderer="linear", block_size=256, tile_format="png", feather=32,
                             zmin=8, zmax=8)
    blocks = plan_blocks(bbox_regions(BBox(-100, 40, 100, 50), 8), 256, 8)
    box = search_bbox(blocks, settings, settings.make_renderer())
    assert not box.crosses_antimeridian
    assert -103 < box.west <= -100 and 100 <= box.east < 103
    assert box.south <= 40 and box.north >= 50


def test_build_of_a_bbox_wider_than_180_degrees_finds_items_on_both_sides(tmp_path, monkeypatch,
                                                                         capsys):
    """-100,20,100,30: the build searches the whole width (it searched -0.011..0.011 and found
    nothing) and uses the items `basemap search` lists for the same bbox, west and east of 0."""
    west = _item()
    east = _item("S2A_34RCN_20200219_0_L2A", bbox=(19.0, 24.3, 20.1, 25.3), epsg=32634,
                 grid="34RCN")
    for item, epsg in ((west, 32629), (east, 32634)):
        _cogs(tmp_path / "cat" / item["id"], epsg)
        (tmp_path / "cat" / item["id"] / "item.json").write_text(json.dumps(item))
    (tmp_path / "cat" / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "id": "c", "description": "d", "stac_version": "1.0.0",
        "links": [{"rel": "item", "href": f"./{i['id']}/item.json"} for i in (west, east)]}))
    stac = str(tmp_path / "cat" / "catalog.json")
    code, out, err = run_cli(["search", "--stac", stac, "--bbox", "-100,20,100,30", "--json"],
                             monkeypatch, capsys)
    assert code == 0, err
    listed = {d["id"] for d in json.loads(out)}
    assert listed == {west["id"], east["id"]}
    code, out, err = run_cli(["build", "--stac", stac, "--bbox", "-100,20,100,30", "--zoom", "8",
                              "--out", str(tmp_path / "out"), "--renderer", "linear",
                              "--block-size", "256", "--workers", "0", "--quiet"],
                             monkeypatch, capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {s["id"] for s in manifest["scenes"]} == listed


# ---- row 10: duplicate item ids ----------------------------------------------------------------


def _copies():
    """Two different copies of one id: B updated later (and cloudier)."""
    a = _item(cloud=4.0)
    b = _item(cloud=9.0)
    a["properties"]["updated"] = "2022-01-01T00:00:00Z"
    b["properties"]["updated"] = "2023-01-01T00:00:00Z"
    return a, b


@pytest.mark.parametrize("same_updated", [False, True])
def test_duplicate_ids_resolve_by_content_not_order(same_updated, tmp_path, caplog):
    """A,B and B,A give the same scene (the newest `updated`; on a tie the greatest canonical
    JSON) and the same manifest bytes, with one warning naming the id."""
    a, b = _copies()
    if same_updated:
        b["properties"]["updated"] = a["properties"]["updated"]
    _cogs(tmp_path)
    chosen = []
    for order in ((a, b), (b, a)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="basemap.stac"):
            scenes = stac_search(str(_collection(tmp_path, list(order))), WORLD)
        assert _ids(scenes) == [KH]
        warnings = [r for r in caplog.records if KH in r.getMessage()]
        assert len(warnings) == 1 and "2 times" in warnings[0].getMessage()
        chosen.append((scenes[0], manifest_bytes(scenes)))
    assert chosen[0] == chosen[1]
    if not same_updated:
        assert chosen[0][0].cloud_cover == 9.0  # the newest copy


def test_equal_copies_of_an_id_are_merged_silently(tmp_path, caplog):
    _cogs(tmp_path)
    with caplog.at_level(logging.WARNING, logger="basemap.stac"):
        scenes = stac_search(str(_collection(tmp_path, [_item(), _item()])), WORLD)
    assert _ids(scenes) == [KH]
    assert not [r for r in caplog.records if r.name.startswith("basemap")]


# ---- row 11: malformed items --------------------------------------------------------------------


def _malformed() -> dict[str, dict]:
    """id -> an item broken in one way (the problem each must be logged with)."""
    broken = {}

    def add(name, change):
        item = _item(f"BAD_{name}")
        change(item)
        broken[item["id"]] = item

    add("coordinates", lambda i: i["geometry"].update(coordinates="x"))
    add("bbox2", lambda i: i.update(bbox=[1, 2]))
    add("lat95", lambda i: i.update(bbox=[-11.9, 24.3, -10.9, 95.0]))
    add("nanbbox", lambda i: i.update(bbox=[float("nan"), 24.3, -10.9, 25.3]))
    add("lat95geom", lambda i: i["geometry"]["coordinates"][0][2].__setitem__(1, 95.0))
    add("properties", lambda i: i.update(properties="x"))
    add("assets", lambda i: i.update(assets=["red"]))
    add("asset", lambda i: i["assets"].update(red="x"))
    add("href", lambda i: i["assets"]["red"].update(href=5))
    add("cloud", lambda i: i["properties"].update({"eo:cloud_cover": "cloudy"}))
    add("reversed", lambda i: i.update(bbox=[-11.9, 25.3, -10.9, 24.3]))
    add("epsg", lambda i: i["properties"].update({"proj:epsg": "utm"}))
    return broken


def _check_skipped(scenes, caplog, broken):
    assert _ids(scenes) == [KH]
    for item_id in broken:
        lines = [r for r in caplog.records if f"'{item_id}'" in r.getMessage()]
        assert len(lines) == 1, (item_id, [r.getMessage() for r in lines])
        assert "skipping item" in lines[0].getMessage()


def test_malformed_items_are_skipped_with_one_line_each(tmp_path, caplog):
    """A catalog of one good item and a dozen broken ones: the good one is found, each broken
    one is skipped with one log line naming it; no traceback, the search goes on."""
    broken = _malformed()
    _cogs(tmp_path)
    path = _collection(tmp_path, [*broken.values(), _item(), 7, None])
    with caplog.at_level(logging.WARNING, logger="basemap.stac"):
        scenes = stac_search(str(path), WORLD)
    _check_skipped(scenes, caplog, broken)


def test_malformed_items_on_an_api_page_are_skipped(range_server, tmp_path, caplog):
    """The same items on a STAC API's result page (handcrafted pages on a real HTTP server)."""
    from tests.stac.test_search import _fake_api, _page

    broken = _malformed()
    srv = range_server(tmp_path)
    good = _item()
    for asset in good["assets"].values():
        asset["href"] = f"{srv.url}/{asset['href'][2:]}"
    url = _fake_api(srv, {"/api/search": _page([*broken.values(), good])})
    with caplog.at_level(logging.WARNING, logger="basemap.stac"):
        scenes = stac_search(url, WORLD, backoff_factor=0.01, timeout=5)
    _check_skipped(scenes, caplog, broken)


def test_malformed_catalog_item_file_is_skipped(tmp_path, caplog):
    """A static catalog whose linked item file holds a broken item (pystac used to abort the
    whole walk on it)."""
    shutil.rmtree(tmp_path / "cat", ignore_errors=True)
    _cogs(tmp_path / "cat")
    bad = _item("BAD_props")
    bad["properties"] = "x"
    (tmp_path / "cat" / "good.json").write_text(json.dumps(_item()))
    (tmp_path / "cat" / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "cat" / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "id": "c", "description": "d", "stac_version": "1.0.0",
        "links": [{"rel": "item", "href": "./bad.json"}, {"rel": "item", "href": "./good.json"}]}))
    with caplog.at_level(logging.WARNING, logger="basemap.stac"):
        scenes = stac_search(str(tmp_path / "cat" / "catalog.json"), WORLD)
    _check_skipped(scenes, caplog, {"BAD_props": bad})
