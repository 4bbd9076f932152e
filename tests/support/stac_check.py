"""Offline checks of a build's OUT/stac/: stac-pydantic validation (pystac's validator fetches
the JSON schemas from the network) and pystac-client."""

from __future__ import annotations

import json
import warnings

from stac_pydantic import Catalog, Collection, Item


def validate_stac(root):
    """Every document under ROOT/stac validated with stac-pydantic; returns (collection, items)."""
    stac = root / "stac"
    Catalog.model_validate(json.loads((stac / "catalog.json").read_text()))
    coll = json.loads((stac / "collection.json").read_text())
    Collection.model_validate(coll)
    items = [json.loads(p.read_text()) for p in sorted((stac / "items").glob("*.json"))]
    for item in items:
        Item.model_validate(item)
    return coll, items


def open_with_pystac_client(root):
    """pystac-client's Client on ROOT/stac/catalog.json (Client.open refuses a bare Collection:
    "expected type=Catalog, found type=Collection", so the build writes a root catalog too)."""
    import pystac_client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a static catalog: no conformance classes, pystac walk
        client = pystac_client.Client.open(str(root / "stac" / "catalog.json"))
        return client, [c.id for c in client.get_collections()], list(client.get_all_items())
