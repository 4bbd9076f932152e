"""A handmade static STAC catalog of a few Earth Search-shaped items with tiny COGs.

Built from the real item ``tests/data/earthsearch_29RKH_item.json`` (asset keys, raster:bands,
properties) so every search and offset case has a known answer. Layout as basemap.synth's:
OUT/catalog.json -> OUT/sentinel-2-l2a/collection.json -> OUT/sentinel-2-l2a/<id>/<id>.json with
relative hrefs "./B04.tif" etc.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

TEMPLATE = Path(__file__).parents[1] / "data" / "earthsearch_29RKH_item.json"
ASSET_FILES = {"red": "B04.tif", "green": "B03.tif", "blue": "B02.tif", "nir": "B08.tif",
               "scl": "SCL.tif"}
COG_SIZE = 64

#: id -> (datetime, cloud %, baseline, boa_offset_applied, bbox W,S,E,N, epsg, grid, drop asset)
MINI_ITEMS = {
    "S2A_29RKH_20200219_0_L2A": ("2020-02-19T11:34:25.405000Z", 4.05, "02.14", False,
                                 (-11.979, 24.296, -10.875, 25.305), 32629, "29RKH", None),
    "S2A_29RLH_20210505_0_L2A": ("2021-05-05T11:24:00Z", 12.0, "03.00", False,
                                 (-10.98, 24.296, -9.87, 25.305), 32629, "29RLH", None),
    "S2B_29RKH_20220610_0_L2A": ("2022-06-10T11:30:00Z", 55.0, "04.00", True,
                                 (-11.979, 24.296, -10.875, 25.305), 32629, "29RKH", None),
    "S2A_29RKH_20230101_0_L2A": ("2023-01-01T11:30:00Z", 1.0, "05.09", False,
                                 (-11.979, 24.296, -10.875, 25.305), 32629, "29RKH", "blue"),
    "S2A_60KYF_20230301_0_L2A": ("2023-03-01T22:00:00Z", 3.0, "05.09", False,
                                 (179.0, -17.5, 179.99, -16.5), 32760, "60KYF", None),
    "S2A_01KAA_20230301_0_L2A": ("2023-03-01T22:00:05Z", 3.0, "05.09", False,
                                 (-179.99, -17.5, -179.0, -16.5), 32701, "01KAA", None),
}
#: The item above without a blue asset (skipped by search, RELIABILITY row 6).
NO_BLUE_ID = "S2A_29RKH_20230101_0_L2A"


def write_cog(path: Path, data: np.ndarray, epsg: int) -> None:
    """A tiny single-band COG (32 px blocks, so windowed reads touch several)."""
    profile = {"driver": "COG", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "crs": f"EPSG:{epsg}", "nodata": 0,
               "transform": Affine(10, 0, 300000, 0, -10, 2800000), "blocksize": 32,
               "compress": "deflate", "overviews": "NONE"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def make_item(item_id: str, spec: tuple) -> dict:
    """An item dict shaped like Earth Search v1 ``sentinel-2-l2a`` (relative asset hrefs)."""
    when, cloud, baseline, applied, bbox, epsg, grid, drop = spec
    item = json.loads(TEMPLATE.read_text())
    w, s, e, n = bbox
    item["id"] = item_id
    item["bbox"] = list(bbox)
    item["geometry"] = {"type": "Polygon",
                        "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    p = item["properties"]
    p.update({"datetime": when, "eo:cloud_cover": cloud, "s2:processing_baseline": baseline,
              "earthsearch:boa_offset_applied": applied, "proj:epsg": epsg,
              "grid:code": f"MGRS-{grid}"})
    assets = {}
    for key, fname in ASSET_FILES.items():
        if key == drop:
            continue
        asset = dict(item["assets"][key])
        asset["href"] = f"./{fname}"
        asset.pop("proj:shape", None)
        asset.pop("proj:transform", None)
        assets[key] = asset
    item["assets"] = assets
    item["links"] = []
    return item


def make_mini_world(out: Path, seed: int = 0) -> Path:
    """Write the catalog, items and COGs under ``out``; return ``out/catalog.json``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    coll_dir = out / "sentinel-2-l2a"
    item_links = []
    for item_id, spec in MINI_ITEMS.items():
        item = make_item(item_id, spec)
        d = coll_dir / item_id
        d.mkdir(parents=True, exist_ok=True)
        for key, asset in item["assets"].items():
            if key == "scl":
                data = rng.choice(np.array([4, 5, 6, 8], np.uint8), (COG_SIZE // 2, COG_SIZE // 2))
            else:
                data = rng.integers(1, 10000, (COG_SIZE, COG_SIZE), dtype=np.uint16)
            write_cog(d / asset["href"][2:], data, spec[5])
        item["links"] = [{"rel": "collection", "href": "../collection.json"},
                         {"rel": "parent", "href": "../collection.json"},
                         {"rel": "root", "href": "../../catalog.json"}]
        (d / f"{item_id}.json").write_text(json.dumps(item, indent=1))
        item_links.append({"rel": "item", "href": f"./{item_id}/{item_id}.json",
                           "type": "application/geo+json"})
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l2a",
        "description": "Mini test world (Earth Search-shaped items, tiny COGs)",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                   "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}},
        "links": [{"rel": "root", "href": "../catalog.json"},
                  {"rel": "parent", "href": "../catalog.json"}, *item_links],
    }
    (coll_dir / "collection.json").write_text(json.dumps(collection, indent=1))
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "mini-world",
               "description": "Mini test world",
               "links": [{"rel": "root", "href": "./catalog.json"},
                         {"rel": "child", "href": "./sentinel-2-l2a/collection.json"}]}
    (out / "catalog.json").write_text(json.dumps(catalog, indent=1))
    return out / "catalog.json"
