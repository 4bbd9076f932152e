"""A STAC item reduced to what the pipeline needs: :class:`Scene`, and the asset-name mapping."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, fields
from datetime import timezone

from basemap.errors import AssetError
from basemap.stac.radiometry import (
    dn_offset_for,
    offset_in_doubt,
    parse_instant,
    processing_baseline,
)
from basemap.stac.sources import (
    OPTIONAL_ASSETS,
    REQUIRED_ASSETS,
    not_sentinel2_l2a,
    profile_for,
    unsigned,
)

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Scene:
    """One STAC item reduced to what the pipeline needs; frozen and hashable (crosses Dask)."""

    id: str
    collection: str
    datetime: str
    updated: str | None
    epsg: int
    bbox: tuple[float, float, float, float]
    footprint: str
    assets: tuple[tuple[str, str], ...]
    dn_offset: float
    processing_baseline: str | None
    cloud_cover: float | None
    grid_code: str | None
    #: the archive's profile (:mod:`basemap.stac.sources`): how its hrefs are reached
    source: str = "generic"
    #: the offset metadata may lie: decided from the pixels before the manifest is frozen
    offset_in_doubt: bool = False

    def href(self, key: str) -> str:
        """The href of canonical asset ``key`` (red, green, blue, nir, scl).

        Raises:
            AssetError: the scene has no such asset.
        """
        for name, href in self.assets:
            if name == key:
                return href
        have = ", ".join(name for name, _ in self.assets)
        raise AssetError(f"scene {self.id} has no {key!r} asset (it has: {have})")

    def __dask_tokenize__(self) -> tuple:
        """A token built from the field values only: equal scenes give equal Dask keys."""
        return ("basemap.stac.Scene", *(getattr(self, f.name) for f in fields(self)))

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["bbox"] = tuple(float(v) for v in d["bbox"])
        d["assets"] = tuple((str(k), str(h)) for k, h in d["assets"])
        d["epsg"] = int(d["epsg"])
        d["dn_offset"] = float(d["dn_offset"])
        return cls(**d)


def _canonical_time(text: str | None) -> str | None:
    """ISO 8601 in UTC with a Z, microseconds only when non-zero (servers reformat times)."""
    value = parse_instant(text)
    if value is None:
        return None
    value = value.astimezone(timezone.utc)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _epsg(properties: dict, asset: dict) -> int | None:
    for d in (properties, asset):
        if d.get("proj:epsg"):
            return int(d["proj:epsg"])
        code = str(d.get("proj:code") or "")
        if code.upper().startswith("EPSG:"):
            return int(code.split(":", 1)[1])
    return None


def _grid_code(p: dict) -> str | None:
    if p.get("grid:code"):
        return str(p["grid:code"])
    if p.get("s2:mgrs_tile"):
        return f"MGRS-{p['s2:mgrs_tile']}"
    if p.get("mgrs:utm_zone") and p.get("mgrs:latitude_band") and p.get("mgrs:grid_square"):
        return f"MGRS-{p['mgrs:utm_zone']}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}"
    return None


def scene_from_item(item: dict, base_href: str | None = None) -> Scene | None:
    """Build a Scene from an item dict; None (logged, naming item and asset) when unusable.

    Args:
        item: a STAC item as a dict.
        base_href: directory (or URL) that relative asset hrefs are resolved against.
    """
    item_id = str(item.get("id"))
    why_not = not_sentinel2_l2a(item)
    if why_not:
        log.warning("skipping item %s: %s", item_id, why_not)
        return None
    props = item.get("properties") or {}
    collection = str(item.get("collection") or "")
    assets = item.get("assets") or {}
    profile = profile_for(item)
    names = {key: profile.asset_name(item, key) for key in REQUIRED_ASSETS + OPTIONAL_ASSETS}
    for key in REQUIRED_ASSETS:
        if names[key] is None:
            log.warning("skipping item %s: no %r asset (%s; %s keys: %s)", item_id,
                        profile.keys[key][0], key, profile.title, ", ".join(sorted(assets)))
            return None
    red = assets[names["red"]]
    epsg = _epsg(props, red)
    if epsg is None:
        log.warning("skipping item %s: no proj:epsg / proj:code", item_id)
        return None
    when = _canonical_time(props.get("datetime") or props.get("start_datetime"))
    if not when:
        log.warning("skipping item %s: no datetime", item_id)
        return None
    geometry = item.get("geometry")
    bbox = item.get("bbox") or _geometry_bbox(geometry)
    if not bbox or not geometry:
        log.warning("skipping item %s: no geometry/bbox", item_id)
        return None
    plain = unsigned if profile.signing else str
    hrefs = tuple((key, plain(_absolute(assets[name]["href"], base_href)))
                  for key, name in names.items() if name is not None)
    cloud = props.get("eo:cloud_cover")
    return Scene(
        id=item_id,
        collection=collection,
        datetime=when,
        updated=str(props["updated"]) if props.get("updated") else None,
        epsg=epsg,
        bbox=tuple(float(v) for v in (bbox[0], bbox[1], bbox[-2], bbox[-1])),
        footprint=json.dumps(geometry, separators=(",", ":"), sort_keys=True),
        assets=hrefs,
        dn_offset=dn_offset_for(props, red, collection),
        processing_baseline=processing_baseline(props),
        cloud_cover=float(cloud) if cloud is not None else None,
        grid_code=_grid_code(props),
        source=profile.name,
        offset_in_doubt=profile.name == "earth-search" and offset_in_doubt(props),
    )


def _absolute(href: str, base: str | None) -> str:
    if base is None or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", href) or os.path.isabs(href):
        return href
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", base):
        from urllib.parse import urljoin

        return urljoin(base.rstrip("/") + "/", href)
    return os.path.normpath(os.path.join(base, href))


def _geometry_bbox(geometry: dict | None) -> list[float] | None:
    if not geometry:
        return None
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: list) -> None:
        if c and isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for sub in c:
                walk(sub)

    walk(geometry.get("coordinates") or [])
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None
