"""Source profiles on the real items of each archive (tests/data/stac-items, verbatim): asset
keys, offsets and which items a build keeps (issue 30)."""

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from basemap.errors import AuthError, ConfigError
from basemap.read.access import s3_options
from basemap.stac.scene import scene_from_item
from basemap.stac.sources import one_collection, one_per_acquisition, profile_for, unsigned

ITEMS = Path(__file__).parents[1] / "data" / "stac-items"


def item(prefix: str) -> dict:
    return json.loads(next(ITEMS.glob(prefix + "*.json")).read_text())


@pytest.mark.parametrize("prefix, profile, red, scl, offset", [
    ("es_c1_", "earth-search-c1", "/B04.tif", "/SCL.tif", -1000.0),
    ("es_l2a_new_S2A_13TDE", "earth-search", "/B04.tif", "/SCL.tif", 0.0),
    ("es_l2a_old_", "earth-search", "/B04.tif", "/SCL.tif", 0.0),
    ("pc_old_", "planetary-computer", "_B04_10m.tif", "_SCL_20m.tif", 0.0),
    # before: "skipping item ...: no 'red' asset" (CDSE keys were not mapped)
    ("cdse_", "cdse", "_B04_10m.jp2", "_SCL_20m.jp2", -1000.0),
])
def test_each_archive_is_read_with_its_keys_and_offset(prefix, profile, red, scl, offset):
    scene = scene_from_item(item(prefix))
    assert scene is not None and scene.source == profile == profile_for(item(prefix)).name
    assert scene.href("red").endswith(red) and scene.href("scl").endswith(scl)
    assert scene.dn_offset == offset


def test_cdse_offset_comes_from_raster_offset_and_processing_version():
    cdse = item("cdse_")
    assert scene_from_item(cdse).processing_baseline == "05.11"
    cdse["assets"]["B04_10m"]["raster:offset"] = 0.0  # the field decides, not the baseline
    assert scene_from_item(cdse).dn_offset == 0.0


@pytest.mark.parametrize("prefix", ["other_landsat", "other_sentinel-2-l1c"])
def test_other_products_are_skipped_with_one_line(prefix, caplog):
    """Before: the Landsat item's raster:bands offset (-0.2) aborted the whole search."""
    with caplog.at_level(logging.WARNING):
        assert scene_from_item(item(prefix)) is None
    assert len(caplog.records) == 1 and "skipping item" in caplog.text


def test_a_search_without_collection_keeps_one_collection_one_item_per_acquisition(caplog):
    """The l2a and c1 items of one acquisition (20EPT, 2025-07-31) came back side by side."""
    l2a = scene_from_item(item("es_l2a_new_S2B_20EPT"))
    c1 = scene_from_item(item("es_c1_"))
    kept = one_collection([l2a, c1])
    assert [s.collection for s in kept] == ["sentinel-2-c1-l2a"]
    assert "skipping 1 item(s) of collection 'sentinel-2-l2a'" in caplog.text
    again = replace(c1, id=c1.id + "_reprocessed", processing_baseline="05.12")
    assert [s.id for s in one_per_acquisition([c1, again])] == [again.id]


def test_earth_search_flag_false_on_a_new_baseline_is_in_doubt():
    es = item("es_l2a_new_S2A_13TDE")
    assert not scene_from_item(es).offset_in_doubt
    es["properties"]["earthsearch:boa_offset_applied"] = False
    doubtful = scene_from_item(es)
    assert doubtful.offset_in_doubt and doubtful.dn_offset == -1000.0
    assert not scene_from_item(item("es_l2a_old_")).offset_in_doubt  # 02.14: no offset at all


def test_cdse_without_keys_is_an_auth_error_naming_them(monkeypatch):
    monkeypatch.delenv("CDSE_S3_ACCESS_KEY", raising=False)
    with pytest.raises(AuthError, match="CDSE_S3_ACCESS_KEY"):
        s3_options("cdse")
    monkeypatch.setenv("CDSE_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("CDSE_S3_SECRET_KEY", "s")
    monkeypatch.setenv("CDSE_S3_ENDPOINT", "http://127.0.0.1:9000")
    options = s3_options("cdse")
    assert options["AWS_S3_ENDPOINT"] == "127.0.0.1:9000" and options["AWS_HTTPS"] == "NO"
    assert s3_options("earth-search")["AWS_NO_SIGN_REQUEST"] == "YES"


def test_signed_hrefs_are_never_frozen():
    signed = "https://a.blob.core.windows.net/c/B04.tif?st=2026&se=2026&sp=rl&sig=abc%3D"
    assert unsigned(signed) == "https://a.blob.core.windows.net/c/B04.tif"
    pc = item("pc_old_")
    pc["assets"]["B04"]["href"] += "?st=2026&se=2026&sp=rl&sig=abc%3D"
    assert "sig=" not in scene_from_item(pc).href("red")


def test_a_users_archive_is_read_by_the_profile_named_in_basemap_sources(tmp_path, monkeypatch):
    """An archive of one's own: its keys from the JSON file $BASEMAP_SOURCES names."""
    mine = item("es_c1_")
    mine["collection"] = "my-s2-l2a"
    mine["assets"] = {"B4": mine["assets"]["red"], "B3": mine["assets"]["green"],
                      "B2": mine["assets"]["blue"]}
    assert scene_from_item(mine) is None  # no key the built-in profiles know
    path = tmp_path / "sources.json"
    path.write_text(json.dumps([{"name": "mine", "collections": ["my-s2-l2a"],
                                 "keys": {"red": ["B4"], "green": ["B3"], "blue": ["B2"]}}]))
    monkeypatch.setenv("BASEMAP_SOURCES", str(path))
    scene = scene_from_item(mine)
    assert scene.source == "mine" and scene.href("red").endswith("/B04.tif")
    path.write_text("{")
    monkeypatch.setenv("BASEMAP_SOURCES", str(tmp_path / "broken.json"))
    with pytest.raises(ConfigError, match="BASEMAP_SOURCES"):
        scene_from_item(mine)
