"""Is a STAC item well-formed enough to read? :func:`item_problem` says what is wrong, or None.

Checked by :mod:`basemap.stac.search` before an item becomes a Scene, so that one malformed item
is skipped with a log line naming it instead of stopping the whole search with a traceback.
"""

from __future__ import annotations

import math

#: Slack (degrees) on the longitude and latitude ranges: catalogs round a hair past +-180/+-90.
EPSILON = 1e-6


def item_problem(item: object) -> str | None:
    """What makes ``item`` unusable, in a few words, or None when it is well-formed.

    Checked: ``id`` a non-empty string; ``properties`` and ``assets`` objects, each asset an
    object whose ``href`` is a string; ``geometry`` a Polygon or MultiPolygon of finite positions
    within lon -180..180 and lat -90..90; ``bbox`` (when given) 4 or 6 finite numbers in range
    with south <= north; ``datetime``/``updated`` strings and ``eo:cloud_cover`` a finite number
    when given.
    """
    if not isinstance(item, dict):
        return "not a JSON object"
    if not isinstance(item.get("id"), str) or not item["id"]:
        return "id is not a non-empty string"
    for key in ("properties", "assets"):
        if not isinstance(item.get(key), dict):
            return f"{key} is not an object"
    return (_geometry_problem(item.get("geometry")) or _bbox_problem(item.get("bbox"))
            or _properties_problem(item["properties"]) or _assets_problem(item["assets"]))


def _is_number(value: object) -> bool:
    """A finite JSON number (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _lonlat_problem(lon: object, lat: object) -> str | None:
    if not (_is_number(lon) and _is_number(lat)):
        return f"{lon!r}, {lat!r} are not finite numbers"
    if abs(lon) > 180 + EPSILON:
        return f"longitude {lon} is outside -180..180"
    if abs(lat) > 90 + EPSILON:
        return f"latitude {lat} is outside -90..90"
    return None


def _ring_problem(ring: object) -> str | None:
    if not isinstance(ring, list) or len(ring) < 4:
        return "a ring is not a list of at least 4 positions"
    for position in ring:
        if not isinstance(position, list) or len(position) not in (2, 3):
            return f"position {position!r} is not [lon, lat] or [lon, lat, height]"
        problem = _lonlat_problem(position[0], position[1])
        if problem:
            return problem
    return None


def _polygon_problem(polygon: object) -> str | None:
    if not isinstance(polygon, list) or not polygon:
        return "a polygon is not a non-empty list of rings"
    return next(filter(None, map(_ring_problem, polygon)), None)


def _geometry_problem(geometry: object) -> str | None:
    if not isinstance(geometry, dict):
        return "geometry is missing or not an object"
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coordinates]
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            return "MultiPolygon coordinates are not a non-empty list of polygons"
        polygons = coordinates
    else:
        return f"geometry type {kind!r} is not Polygon or MultiPolygon"
    problem = next(filter(None, map(_polygon_problem, polygons)), None)
    return f"geometry: {problem}" if problem else None


def _bbox_problem(bbox: object) -> str | None:
    if bbox is None:
        return None
    if not isinstance(bbox, list) or len(bbox) not in (4, 6) or not all(map(_is_number, bbox)):
        return f"bbox {bbox!r} is not 4 or 6 finite numbers"
    west, south, east, north = bbox[0], bbox[1], bbox[-2], bbox[-1]
    problem = _lonlat_problem(west, south) or _lonlat_problem(east, north)
    if problem:
        return f"bbox: {problem}"
    if south > north:
        return f"bbox south {south} is north of its north {north}"
    return None


def _properties_problem(properties: dict) -> str | None:
    for key in ("datetime", "start_datetime", "updated"):
        if properties.get(key) is not None and not isinstance(properties[key], str):
            return f"properties.{key} {properties[key]!r} is not a string"
    cloud = properties.get("eo:cloud_cover")
    if cloud is not None and not _is_number(cloud):
        return f"eo:cloud_cover {cloud!r} is not a finite number"
    return None


def _assets_problem(assets: dict) -> str | None:
    for name, asset in assets.items():
        if not isinstance(asset, dict):
            return f"asset {name!r} is not an object"
        if "href" in asset and not isinstance(asset["href"], str):
            return f"asset {name!r} has a href that is not a string"
    return None
