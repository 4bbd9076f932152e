"""basemap.output.stac: a build's COGs as a STAC Collection, validated offline (stac-pydantic:
pystac's validator fetches the JSON schemas from the network) and opened with pystac-client."""

import pytest

from basemap.grid import Region
from basemap.output.media import media_type
from basemap.output.stac import CogEntry, SourceItem, item_id, source_items, write_stac
from basemap.output.storage import open_storage
from tests.support.stac_check import open_with_pystac_client, validate_stac

Z = 14
TILEJSON = {"tiles": ["tiles/{z}/{x}/{y}.png"], "minzoom": 12, "maxzoom": Z,
            "description": "Sentinel-2 L2A basemap, renderer linear"}


@pytest.fixture
def written(tmp_path):
    storage = open_storage(str(tmp_path))
    for key in ("cogs/14/8500/5800.tif", "cogs/14/8502/5800.tif"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"II*\0")
    cogs = [CogEntry("cogs/14/8500/5800.tif", Region(8500 * 256, 5800 * 256, 8502 * 256,
                                                     5802 * 256), ("a", "b")),
            CogEntry("cogs/14/8502/5800.tif", Region(8502 * 256, 5800 * 256, 8504 * 256,
                                                     5802 * 256), ("b",))]
    sources = [SourceItem("a", "2023-06-01T10:30:00Z", "https://stac.test/collections/c/items/a"),
               SourceItem("b", "2023-07-01T10:30:00Z", "https://stac.test/collections/c/items/b")]
    key = write_stac(storage, cogs, Z, (6.7, 45.9, 6.9, 46.0), sources, TILEJSON)
    return tmp_path, key, cogs


def test_collection_and_items_validate_and_list_every_cog(written):
    root, key, cogs = written
    assert key == "stac/collection.json"
    coll, items = validate_stac(root)
    assert [i["id"] for i in items] == sorted(item_id(c.key) for c in cogs)
    links = {ln["rel"]: ln for ln in coll["links"]}
    assert links["tilejson"]["href"] == "../tilejson.json"
    assert links["xyz"]["href"] == "../tiles/{z}/{x}/{y}.png"
    assert coll["extent"]["temporal"]["interval"] == [["2023-06-01T10:30:00Z",
                                                       "2023-07-01T10:30:00Z"]]
    item = items[0]
    p = item["properties"]
    assert p["proj:epsg"] == 3857 and p["proj:shape"] == [512, 512]
    assert len(p["proj:transform"]) == 6 and p["proj:transform"][0] == pytest.approx(9.5546, 1e-4)
    asset = item["assets"]["data"]
    assert asset["roles"] == ["data"] and asset["type"] == media_type(".tif")
    assert "profile=cloud-optimized" in asset["type"]
    assert (root / "stac" / "items" / asset["href"]).resolve() == (root / cogs[0].key).resolve()
    assert asset["raster:bands"][3] == {"name": "alpha", "data_type": "uint8"}
    derived = [ln for ln in item["links"] if ln["rel"] == "derived_from"]
    assert [(ln["title"], ln["href"]) for ln in derived] == [
        ("a", "https://stac.test/collections/c/items/a"),
        ("b", "https://stac.test/collections/c/items/b")]


def test_pystac_client_opens_it(written):
    root, _, cogs = written
    _, collections, items = open_with_pystac_client(root)
    assert collections == ["basemap"]
    assert sorted(i.id for i in items) == sorted(item_id(c.key) for c in cogs)
    for item in items:
        assert item.assets["data"].get_absolute_href().endswith(".tif")


def test_source_items_point_at_the_api_or_the_manifest():
    class S:
        def __init__(self, i):
            self.id, self.collection, self.datetime = f"s{i}", "sentinel-2-l2a", "2023-01-01Z"

    api = source_items([S(0)], "https://earth-search.test/v1/", api=True)
    assert api[0].href == "https://earth-search.test/v1/collections/sentinel-2-l2a/items/s0"
    static = source_items([S(0), S(1)], "/data/catalog.json", api=False)
    assert [s.href for s in static] == ["../../manifest.json#/scenes/0",
                                        "../../manifest.json#/scenes/1"]
