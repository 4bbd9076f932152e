"""The basemap as STAC: ``OUT/stac/`` describes a build's COGs for STAC clients.

Layout (all links relative, so the folder can be copied or served anywhere as it is)::

    OUT/stac/catalog.json            root Catalog (what ``pystac_client.Client.open`` opens)
    OUT/stac/collection.json         the Collection: extent from the build, TileJSON and XYZ links
    OUT/stac/items/<id>.json         one Item per block COG (``cogs/{z}/{x}/{y}.tif``)

Each Item carries ``proj:epsg``/``proj:shape``/``proj:transform`` (EPSG:3857 on the global grid),
``raster:bands`` (R, G, B, alpha: uint8), the COG as asset ``data`` (role ``data``, the
cloud-optimized GeoTIFF media type of :mod:`basemap.output.media`), and one ``derived_from`` link
per source scene of its block (the item on the STAC API, or its entry in ``OUT/manifest.json``
for a static catalog). The XYZ tiles are linked with the web-map-links extension.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from basemap import __version__
from basemap.grid import Region, region_lonlat_bounds, region_transform
from basemap.output.media import media_type
from basemap.output.storage import Storage
from basemap.stac.scene import Scene

STAC_VERSION = "1.0.0"
COLLECTION_ID = "basemap"
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "web-map-links": "https://stac-extensions.github.io/web-map-links/v1.2.0/schema.json",
}
#: The bands of every block COG.
RASTER_BANDS = [{"name": n, "data_type": "uint8"} for n in ("red", "green", "blue", "alpha")]
_JSON = "application/json"


@dataclass(frozen=True)
class SourceItem:
    """A scene of the manifest: its id, time and where its STAC item is (an href)."""

    id: str
    datetime: str
    href: str


@dataclass(frozen=True)
class CogEntry:
    """One published block COG: its storage key, global pixels and the ids of its scenes."""

    key: str
    region: Region
    sources: tuple[str, ...]


def source_items(scenes: Sequence[Scene], stac: str, api: bool) -> list[SourceItem]:
    """:class:`SourceItem` of each manifest scene: the item's URL on a STAC API, else its entry
    in ``manifest.json`` (a JSON pointer, relative to an item under ``stac/items/``)."""
    out = []
    for i, s in enumerate(scenes):
        if api:
            href = f"{stac.rstrip('/')}/collections/{s.collection}/items/{s.id}"
        else:
            href = f"../../manifest.json#/scenes/{i}"
        out.append(SourceItem(s.id, s.datetime, href))
    return out


def item_id(key: str) -> str:
    """Item id of the COG ``cogs/{z}/{x}/{y}.tif``: ``basemap-{z}-{x}-{y}``."""
    return "basemap-" + key.removeprefix("cogs/").removesuffix(".tif").replace("/", "-")


def _interval(times: Sequence[str]) -> tuple[str | None, str | None]:
    return (min(times), max(times)) if times else (None, None)


def _polygon(b: tuple[float, float, float, float]) -> dict:
    w, s, e, n = b
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def cog_item(entry: CogEntry, zmax: int, sources: dict[str, SourceItem]) -> dict:
    """The STAC Item of one block COG (hrefs relative to ``stac/items/``)."""
    bounds = region_lonlat_bounds(entry.region, zmax)
    used = [sources[i] for i in entry.sources if i in sources]
    start, end = _interval([s.datetime for s in used])
    t = region_transform(entry.region, zmax)
    props = {"datetime": None, "start_datetime": start, "end_datetime": end} if start else {
        "datetime": None, "start_datetime": "1970-01-01T00:00:00Z",
        "end_datetime": "1970-01-01T00:00:00Z"}
    props.update({
        "proj:epsg": 3857,
        "proj:shape": [entry.region.height, entry.region.width],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "gsd": t.a,
    })
    return {
        "type": "Feature", "stac_version": STAC_VERSION,
        "stac_extensions": [EXTENSIONS["proj"], EXTENSIONS["raster"]],
        "id": item_id(entry.key), "collection": COLLECTION_ID,
        "geometry": _polygon(bounds), "bbox": list(bounds), "properties": props,
        "assets": {"data": {
            "href": f"../../{entry.key}", "type": media_type(entry.key), "roles": ["data"],
            "title": "RGBA COG (8-bit, band 4 alpha)", "raster:bands": RASTER_BANDS}},
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": _JSON},
            {"rel": "parent", "href": "../collection.json", "type": _JSON},
            {"rel": "collection", "href": "../collection.json", "type": _JSON},
            *({"rel": "derived_from", "href": s.href, "type": _JSON, "title": s.id}
              for s in used),
        ],
    }


def collection(bbox: tuple[float, float, float, float], items: list[dict],
               sources: list[SourceItem], tile_template: str, zoom: tuple[int, int],
               description: str) -> dict:
    """The Collection: spatial extent the build's bbox and its items', temporal the scenes'."""
    boxes = [list(bbox)] + [i["bbox"] for i in items]
    union = [min(b[0] for b in boxes), min(b[1] for b in boxes),
             max(b[2] for b in boxes), max(b[3] for b in boxes)]
    start, end = _interval([s.datetime for s in sources])
    return {
        "type": "Collection", "stac_version": STAC_VERSION,
        "stac_extensions": [EXTENSIONS["web-map-links"]],
        "id": COLLECTION_ID, "title": "Sentinel-2 L2A basemap",
        "description": description, "license": "proprietary",
        "extent": {"spatial": {"bbox": [union, list(bbox)]},
                   "temporal": {"interval": [[start, end]]}},
        "summaries": {"proj:epsg": [3857]},
        "providers": [{"name": f"basemap {__version__}", "roles": ["processor"]}],
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": _JSON},
            {"rel": "parent", "href": "./catalog.json", "type": _JSON},
            {"rel": "tilejson", "href": "../tilejson.json", "type": _JSON,
             "title": "TileJSON of the XYZ tiles"},
            {"rel": "xyz", "href": f"../{tile_template}", "type": media_type(tile_template),
             "title": f"XYZ tiles, z{zoom[0]}-{zoom[1]}"},
            *({"rel": "item", "href": f"./items/{i['id']}.json", "type": "application/geo+json"}
              for i in items),
        ],
    }


def write_stac(storage: Storage, cogs: list[CogEntry], zmax: int,
               bbox: tuple[float, float, float, float], sources: list[SourceItem],
               tilejson_doc: dict) -> str:
    """Write ``stac/catalog.json``, ``stac/collection.json`` and ``stac/items/*.json``; returns
    the collection's key. Items of COGs no longer published are not listed (a rerun rewrites
    all of them)."""
    by_id = {s.id: s for s in sources}
    items = [cog_item(c, zmax, by_id) for c in sorted(cogs, key=lambda c: c.key)]
    for item in items:
        storage.write_bytes(f"stac/items/{item['id']}.json", _dump(item))
    zoom = (tilejson_doc["minzoom"], tilejson_doc["maxzoom"])
    coll = collection(bbox, items, sources, tilejson_doc["tiles"][0], zoom,
                      tilejson_doc.get("description") or "Sentinel-2 L2A basemap")
    storage.write_bytes("stac/collection.json", _dump(coll))
    catalog = {
        "type": "Catalog", "stac_version": STAC_VERSION, "id": f"{COLLECTION_ID}-catalog",
        "description": "A basemap build (its COGs as STAC items)",
        "links": [{"rel": "root", "href": "./catalog.json", "type": _JSON},
                  {"rel": "child", "href": "./collection.json", "type": _JSON}],
    }
    storage.write_bytes("stac/catalog.json", _dump(catalog))
    return "stac/collection.json"


def _dump(doc: dict) -> bytes:
    return json.dumps(doc, indent=1).encode()
