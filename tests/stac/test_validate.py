"""basemap.stac.validate.item_problem, and search over mutated real items: property tests."""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basemap.errors import BasemapError
from basemap.stac.search import search as stac_search
from basemap.stac.validate import item_problem
from basemap.types import BBox

ITEM = json.loads((Path(__file__).parents[1] / "data" / "earthsearch_29RKH_item.json")
                  .read_text())
WORLD = BBox(-180, -90, 180, 90)

#: Any JSON value, NaN and infinities included (Python's json reads and writes them).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=20,
)


def _paths(doc, prefix=()):
    """Every path (tuple of keys/indices) into ``doc``."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(ITEM) if p and p[0] not in ("links", "stac_extensions")]
#: Paths the pipeline reads: drawn more often than the rest.
READ = [p for p in PATHS if p[0] in ("id", "bbox", "geometry", "collection")
        or p[:2] in (("properties", "datetime"), ("properties", "eo:cloud_cover"),
                     ("properties", "proj:epsg"), ("properties", "updated"),
                     ("properties", "earthsearch:boa_offset_applied"))
        or (p[0] == "assets" and len(p) > 1 and p[1] in ("red", "green", "blue", "scl", "nir"))]


@st.composite
def mutated_items(draw):
    """The real Earth Search item with 1-4 values replaced by any JSON, or keys deleted."""
    item = copy.deepcopy(ITEM)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(READ) | st.sampled_from(PATHS))
        parent = item
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):  # an earlier mutation changed the shape
            continue
    return item


@given(mutated_items())
@settings(max_examples=300, deadline=None)
def test_item_problem_never_raises(item):
    problem = item_problem(item)
    assert problem is None or isinstance(problem, str)


@given(st.lists(mutated_items(), min_size=1, max_size=3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_search_over_mutated_items_raises_only_documented_errors(items):
    """An ItemCollection of mutated items plus the intact one: search returns (the intact item
    among the scenes) or raises a BasemapError (e.g. ConfigError for a local href), nothing
    else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [*items, ITEM]}))
        try:
            scenes = stac_search(str(path), WORLD)
        except BasemapError:
            return
    assert ITEM["id"] in [s.id for s in scenes]
    for scene in scenes:
        assert all(math.isfinite(v) for v in scene.bbox)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda i: i["geometry"].update(coordinates="x"), "polygon"),
        (lambda i: i.update(bbox=[1, 2]), "bbox"),
        (lambda i: i.update(bbox=[-11, 24, -10, 95]), "latitude 95"),
        (lambda i: i.update(bbox=[-11, 24, float("nan"), 25]), "finite"),
        (lambda i: i["geometry"]["coordinates"][0][0].__setitem__(0, 181.0), "longitude 181"),
        (lambda i: i["geometry"].update(type="Point"), "Point"),
        (lambda i: i.update(geometry=None), "geometry"),
        (lambda i: i.update(id=7), "id"),
        (lambda i: i.update(properties=[]), "properties"),
        (lambda i: i.update(assets="x"), "assets"),
        (lambda i: i["properties"].update(datetime=5), "datetime"),
        (lambda i: i["properties"].update({"eo:cloud_cover": True}), "cloud"),
        (lambda i: i.update(bbox=[True, 24, -10, 25]), "bbox"),
    ],
)
def test_item_problem_names_the_problem(change, problem):
    item = copy.deepcopy(ITEM)
    change(item)
    assert problem in (item_problem(item) or "")


def test_well_formed_items_pass():
    assert item_problem(ITEM) is None
    item = copy.deepcopy(ITEM)
    item["bbox"] = [179.5, -17, 0, -179.5, -16.8, 0]  # 6 numbers, across the antimeridian
    item["geometry"]["coordinates"][0][0] = [180.0000001, -90.0000001]  # a hair past the limit
    assert item_problem(item) is None
