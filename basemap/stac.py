"""STAC search -> a frozen, sorted list of scenes (asset-name mapping and the DN offset rule).

One interface for two kinds of source:

* a STAC API URL (``https://earth-search.aws.element84.com/v1``), searched with pystac-client
  over a ``requests`` session with bounded retries and a timeout; cloud cover is filtered on the
  server when it conforms to the query extension and always on the client as well (``rustac
  serve`` lacks it: a ``query=`` search comes back empty there);
* a local (or ``http(s)://...json``) static catalog, collection, ItemCollection or item file,
  walked with pystac and filtered on the client by bbox, datetime interval and cloud cover.

Both produce :class:`Scene` values sorted by (datetime, id) and de-duplicated by id. A bbox with
west > east crosses the antimeridian and is searched as two boxes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime as _dt
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np

from basemap.errors import AssetError, ConfigError, InputError, StacError
from basemap.types import BBox

log = logging.getLogger(__name__)

#: Default STAC API searched by ``basemap search`` when no ``--stac`` is given.
EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
#: Default collection with :data:`EARTH_SEARCH_URL`.
EARTH_SEARCH_COLLECTION = "sentinel-2-l2a"

#: Canonical asset key -> asset names, per collection family. Unknown collections try both.
EARTH_SEARCH_ASSETS = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "scl": "scl"}
PLANETARY_COMPUTER_ASSETS = {
    "red": "B04", "green": "B03", "blue": "B02", "nir": "B08", "scl": "SCL"
}
REQUIRED_ASSETS = ("red", "green", "blue")
OPTIONAL_ASSETS = ("nir", "scl")

#: ESA's BOA_ADD_OFFSET from processing baseline 04.00 on (first products 2022-01-25).
BOA_ADD_OFFSET = -1000.0
BASELINE_04_START = _dt(2022, 1, 25, tzinfo=timezone.utc)
#: Reflectance above this is clipped (bright snow and specular glint reach ~1.2).
MAX_REFLECTANCE = 1.5
#: Integer dtypes accepted as Sentinel-2 DN.
DN_DTYPES = (np.dtype("uint16"), np.dtype("int16"), np.dtype("uint32"), np.dtype("int32"))
#: Safety bound on the number of result pages one search may follow.
MAX_PAGES = 10_000


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


# ---- the DN offset rule -------------------------------------------------------------------------


def _baseline_tuple(baseline: str | None) -> tuple[int, int] | None:
    if baseline is None:
        return None
    m = re.fullmatch(r"\s*0*(\d+)\.(\d+)\s*", str(baseline))
    return (int(m.group(1)), int(m.group(2))) if m else None


def processing_baseline(properties: dict) -> str | None:
    """``s2:processing_baseline``, else the ``_Nxxyy_`` part of ``s2:product_uri``, else None."""
    value = properties.get("s2:processing_baseline")
    if value:
        return str(value)
    m = re.search(r"_N(\d{2})(\d{2})_", str(properties.get("s2:product_uri") or ""))
    return f"{m.group(1)}.{m.group(2)}" if m else None


def dn_offset_for(properties: dict, raster_bands: list | None, collection: str) -> float:
    """THE rule deciding the DN offset of an item: reflectance = (DN + offset) / 10000.

    Decided in this order (first that applies wins):

    1. ``earthsearch:boa_offset_applied`` present (Earth Search v1): the flag is the truth, never
       ``raster:bands`` (Element84/earth-search issues 9, 66, 71). True: the -1000 is already in
       the pixels -> 0. False: the pixels are ESA's raw DN -> decided by the baseline (rule 3).
    2. ``raster:bands`` of the red asset carries ``offset`` (Earth Search ``sentinel-2-c1-l2a``,
       unshifted pixels, correct metadata) -> ``offset / scale`` (-0.1 / 0.0001 = -1000).
    3. A processing baseline (``s2:processing_baseline`` or from ``s2:product_uri``; Planetary
       Computer, which publishes no ``raster:bands``): >= 04.00 -> -1000, older -> 0.
    4. No baseline: a Collection-1 reprocessing (collection name with ``c1``) -> -1000;
       otherwise by acquisition date: on or after 2022-01-25 (first 04.00 products) -> -1000,
       before -> 0; logged as a guess.

    Args:
        properties: the item's properties (``datetime`` is used by rule 4).
        raster_bands: ``raster:bands`` of the red asset, or None.
        collection: the item's collection id.

    Returns:
        -1000.0 or 0.0.

    Raises:
        StacError: ``raster:bands`` gives an offset that is neither -0.1 nor 0.
    """
    baseline = processing_baseline(properties)
    parsed = _baseline_tuple(baseline)
    flag = properties.get("earthsearch:boa_offset_applied")
    if flag is not None and not isinstance(flag, bool):
        flag = str(flag).strip().lower() == "true"
    if flag is True:
        return 0.0
    if flag is None and raster_bands:
        band = raster_bands[0] or {}
        if band.get("offset") is not None:
            scale = float(band.get("scale") or 0.0001)
            offset = round(float(band["offset"]) / scale)
            if offset not in (0, -1000):
                raise StacError(
                    f"raster:bands offset {band['offset']} (scale {scale}) of a {collection} item "
                    "is neither -0.1 nor 0; cannot decide the DN offset"
                )
            return float(offset)
    if parsed is not None:
        return BOA_ADD_OFFSET if parsed >= (4, 0) else 0.0
    if "c1" in collection.lower():
        return BOA_ADD_OFFSET
    when = _parse_instant(properties.get("datetime") or properties.get("start_datetime"))
    offset = BOA_ADD_OFFSET if when is not None and when >= BASELINE_04_START else 0.0
    log.info("no processing baseline on a %s item: DN offset %g guessed from its date", collection,
             offset)
    return offset


def to_reflectance(dn: np.ndarray, dn_offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Sentinel-2 DN -> float32 reflectance clipped to [0, 1.5], and the valid mask.

    Args:
        dn: (bands, H, W) or (H, W) integer DN; DN 0 is nodata in every band.
        dn_offset: from :func:`dn_offset_for` (-1000 or 0).

    Returns:
        (reflectance, valid): reflectance has dn's shape, 0 wherever invalid (never NaN); valid is
        (H, W) bool, True where every band has DN != 0.

    Raises:
        AssetError: dn is not an integer DN array (e.g. float, or uint8 from the 8-bit TCI).
    """
    dn = np.asarray(dn)
    if dn.dtype not in DN_DTYPES:
        raise AssetError(
            f"expected Sentinel-2 DN as uint16 (or int16/uint32/int32), got {dn.dtype}; "
            "read the L2A reflectance assets (red/green/blue), not the 8-bit 'visual' TCI"
        )
    if dn.ndim not in (2, 3):
        raise AssetError(f"expected a (bands, H, W) or (H, W) DN array, got shape {dn.shape}")
    valid = np.all(dn != 0, axis=0) if dn.ndim == 3 else dn != 0
    refl = (dn.astype(np.float32) + np.float32(dn_offset)) / np.float32(10000.0)
    np.clip(refl, 0.0, MAX_REFLECTANCE, out=refl)
    refl[..., ~valid] = 0.0
    return refl, valid


# ---- item -> Scene ----------------------------------------------------------------------------


def asset_names(collection: str) -> list[dict[str, str]]:
    """The asset-name mappings to try for ``collection``, in order."""
    if collection.lower().startswith("sentinel-2-c1"):
        return [EARTH_SEARCH_ASSETS]
    # Earth Search and Planetary Computer both name theirs "sentinel-2-l2a", and unknown
    # collections may follow either: try Earth Search's names, then Planetary Computer's.
    return [EARTH_SEARCH_ASSETS, PLANETARY_COMPUTER_ASSETS]


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
    props = item.get("properties") or {}
    collection = str(item.get("collection") or "")
    assets = item.get("assets") or {}
    mapping = next(
        (m for m in asset_names(collection) if any(m[k] in assets for k in REQUIRED_ASSETS)),
        EARTH_SEARCH_ASSETS,
    )
    for key in REQUIRED_ASSETS:
        if mapping[key] not in assets or not assets[mapping[key]].get("href"):
            log.warning("skipping item %s: no %r asset (%s)", item_id, mapping[key], key)
            return None
    red = assets[mapping["red"]]
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
    hrefs = tuple(
        (key, _absolute(assets[mapping[key]]["href"], base_href))
        for key in REQUIRED_ASSETS + OPTIONAL_ASSETS
        if mapping[key] in assets and assets[mapping[key]].get("href")
    )
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
        dn_offset=dn_offset_for(props, red.get("raster:bands"), collection),
        processing_baseline=processing_baseline(props),
        cloud_cover=float(cloud) if cloud is not None else None,
        grid_code=_grid_code(props),
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

    def walk(c):
        if c and isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for sub in c:
                walk(sub)

    walk(geometry.get("coordinates") or [])
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None


# ---- input checks (used by the CLI before any network call) ------------------------------------


def _parse_instant(text: str | None) -> _dt | None:
    if not text:
        return None
    try:
        value = _dt.fromisoformat(str(text).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _canonical_time(text: str | None) -> str | None:
    """ISO 8601 in UTC with a Z, microseconds only when non-zero (servers reformat times)."""
    value = _parse_instant(text)
    if value is None:
        return None
    value = value.astimezone(timezone.utc)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_datetime(text: str | None) -> tuple[_dt | None, _dt | None] | None:
    """Validate a STAC datetime ("A/B", "A/..", "../B", or one instant/date) -> (start, end).

    A bare date covers its whole day (as pystac-client expands it). Returns None for no filter.

    Raises:
        InputError: unparseable or reversed interval.
    """
    if text is None or not str(text).strip():
        return None
    parts = str(text).split("/")
    if len(parts) > 2:
        raise InputError(f"--datetime {text!r} has more than one '/'; use START/END")
    bounds: list[_dt | None] = []
    for i, part in enumerate(parts if len(parts) == 2 else [parts[0], parts[0]]):
        part = part.strip()
        if part in ("", ".."):
            bounds.append(None)
            continue
        value = _parse_instant(part)
        if value is None:
            raise InputError(
                f"--datetime {part!r} is not an ISO 8601 date or date-time; "
                "e.g. --datetime 2024-06-01/2024-08-31 or 2024-06-01T00:00:00Z/.."
            )
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", part) and i == 1:
            value = value + timedelta(days=1) - timedelta(microseconds=1)
        bounds.append(value)
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise InputError(f"--datetime {text!r} is reversed: the start is after the end")
    return start, end


def check_max_cloud(value: float | None) -> float | None:
    """Validate a maximum cloud cover in percent (0-100).

    Raises:
        InputError: NaN or outside 0..100.
    """
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 100.0:
        raise InputError(f"--max-cloud must be a percentage 0..100, got {value:g}")
    return value


# ---- client-side filters -------------------------------------------------------------------------


def _intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """True when two W,S,E,N boxes overlap; either may cross the antimeridian (west > east)."""

    def parts(box):
        w, s, e, n = box
        return [(w, s, 180.0, n), (-180.0, s, e, n)] if w > e else [(w, s, e, n)]

    return any(
        aw <= be and bw <= ae and as_ <= bn and bs <= an
        for aw, as_, ae, an in parts(a)
        for bw, bs, be, bn in parts(b)
    )


def _keep(scene: Scene, bbox: BBox, interval, max_cloud: float | None) -> bool:
    if not _intersects(scene.bbox, bbox.as_tuple()):
        return False
    if interval is not None:
        when = _parse_instant(scene.datetime)
        start, end = interval
        if when is None or (start and when < start) or (end and when > end):
            return False
    if max_cloud is not None and (scene.cloud_cover is None or scene.cloud_cover > max_cloud):
        return False
    return True


# ---- search ------------------------------------------------------------------------------------


def is_api(source: str) -> bool:
    """True when ``source`` is a STAC API root URL (http(s) not ending in .json)."""
    return bool(re.match(r"^https?://", source)) and not source.split("?")[0].endswith(".json")


def search(
    source: str,
    bbox: BBox,
    datetime: str | None = None,
    max_cloud: float | None = None,
    collection: str | None = None,
    *,
    timeout: float | None = None,
    retries: int = 5,
    backoff_factor: float | None = None,
) -> list[Scene]:
    """Search a STAC API or a static catalog; scenes sorted by (datetime, id), unique by id.

    Args:
        source: STAC API root URL, or a static catalog / collection / ItemCollection / item JSON
            (path or URL ending in .json).
        bbox: WGS84 box; west > east crosses the antimeridian (searched as two boxes).
        datetime: STAC interval "A/B" (open ends ".."), or one date/instant.
        max_cloud: keep items with ``eo:cloud_cover`` <= this (items without it are dropped).
        collection: collection id to search (None: every collection).
        timeout: seconds per HTTP request (API sources); default ``$BASEMAP_STAC_TIMEOUT`` or 30.
        retries: retries per request on connection errors and 429/502/503/504.
        backoff_factor: urllib3 backoff factor between retries (seconds, doubling: 0, 2, 4, 8,
            16 s for 1.0); default ``$BASEMAP_STAC_BACKOFF`` or 1.

    Raises:
        InputError: bad datetime or max_cloud.
        StacError: the source cannot be read, a page keeps failing, or pagination loops.
    """
    interval = parse_datetime(datetime)
    max_cloud = check_max_cloud(max_cloud)
    if timeout is None:
        timeout = float(os.environ.get("BASEMAP_STAC_TIMEOUT", 30.0))
    if backoff_factor is None:
        backoff_factor = float(os.environ.get("BASEMAP_STAC_BACKOFF", 1.0))
    if is_api(source):
        found: Iterable[Scene] = _search_api(
            source, bbox, datetime, max_cloud, collection, timeout, retries, backoff_factor
        )
    else:
        found = _search_static(source, bbox, collection)
    unique: dict[str, Scene] = {}
    for scene in found:
        if _keep(scene, bbox, interval, max_cloud):
            unique.setdefault(scene.id, scene)
    return sorted(unique.values(), key=lambda s: (_sort_time(s.datetime), s.id))


def _sort_time(text: str) -> _dt:
    return _parse_instant(text) or _dt.min.replace(tzinfo=timezone.utc)


def _open_client(url: str, timeout: float, retries: int, backoff_factor: float):
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        backoff_factor=backoff_factor,
        status_forcelist=[429, 502, 503, 504],
        allowed_methods=None,  # retry POST pages too
    )
    stac_io = StacApiIO(max_retries=retry, timeout=timeout)
    try:
        return Client.open(url, stac_io=stac_io, timeout=timeout)
    except Exception as exc:  # requests, APIError, JSON errors: all mean "cannot read it"
        raise StacError(f"cannot open the STAC API {url}: {exc}") from exc


def _search_api(url, bbox, datetime, max_cloud, collection, timeout, retries, backoff):
    from pystac_client.conformance import ConformanceClasses

    client = _open_client(url, timeout, retries, backoff)
    has_query = client.conforms_to(ConformanceClasses.QUERY)
    if max_cloud is not None and not has_query:
        log.info("%s lacks the query extension: filtering eo:cloud_cover on the client", url)
    for box in bbox.split_antimeridian():
        kwargs = {"bbox": list(box.as_tuple()), "datetime": datetime, "limit": 100}
        if collection:
            kwargs["collections"] = [collection]
        if max_cloud is not None and has_query:
            kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
        try:
            item_search = client.search(**kwargs)
            for page in _pages(item_search, url):
                for item in page.get("features", []):
                    scene = scene_from_item(item)
                    if scene is not None:
                        yield scene
        except StacError:
            raise
        except Exception as exc:
            raise StacError(f"STAC search at {url} failed: {exc}") from exc


def _pages(item_search, url: str) -> Iterator[dict]:
    """Result pages, raising StacError when a ``next`` link repeats (a pagination loop)."""
    seen: set[str] = set()
    for n, page in enumerate(item_search.pages_as_dicts()):
        yield page
        nxt = next((link for link in page.get("links", []) if link.get("rel") == "next"), None)
        if nxt is None:
            return
        key = json.dumps(
            [nxt.get("href"), nxt.get("method", "GET"), nxt.get("body")], sort_keys=True
        )
        if key in seen:
            raise StacError(
                f"STAC pagination at {url} loops: the 'next' link {nxt.get('href')} was already "
                f"followed (page {n + 1}); the server's paging is broken, report it to its operator"
            )
        seen.add(key)
        if n + 1 >= MAX_PAGES:
            raise StacError(f"STAC search at {url} returned more than {MAX_PAGES} pages")


def _search_static(source: str, bbox: BBox, collection: str | None) -> Iterator[Scene]:
    import pystac

    if not re.match(r"^https?://", source) and not Path(source).exists():
        raise ConfigError(f"STAC source {source} does not exist (give a catalog.json or API URL)")
    try:
        d = pystac.StacIO.default().read_json(source)
    except Exception as exc:
        raise StacError(f"cannot read the STAC file {source}: {exc}") from exc
    base = source.rsplit("/", 1)[0] if re.match(r"^https?://", source) else str(
        Path(source).resolve().parent
    )
    kind = d.get("type")
    if kind == "Feature":
        items: Iterable[tuple[dict, str]] = [(d, base)]
    elif kind == "FeatureCollection":
        items = ((f, base) for f in d.get("features", []))
    elif kind in ("Catalog", "Collection"):
        items = _walk_catalog(source)
    else:
        raise StacError(f"{source} is not a STAC item, ItemCollection, catalog or collection")
    for item, item_base in items:
        if collection and item.get("collection") != collection:
            continue
        if not _intersects(tuple(item.get("bbox") or (-180, -90, 180, 90)), bbox.as_tuple()):
            continue
        scene = scene_from_item(item, item_base)
        if scene is not None:
            yield scene


def _walk_catalog(source: str) -> Iterator[tuple[dict, str]]:
    import pystac

    try:
        root = pystac.read_file(source)
        for item in root.get_items(recursive=True):
            self_href = item.get_self_href()
            base = self_href.rsplit("/", 1)[0] if self_href else None
            yield item.to_dict(include_self_link=False, transform_hrefs=False), base
    except Exception as exc:
        raise StacError(f"cannot walk the STAC catalog {source}: {exc}") from exc


# ---- manifest ----------------------------------------------------------------------------------


def write_manifest(scenes: Iterable[Scene], path: str | os.PathLike) -> Path:
    """Write the frozen item list as JSON (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "scenes": [s.to_dict() for s in scenes]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    return path


def read_manifest(path: str | os.PathLike) -> list[Scene]:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        ConfigError: missing or unreadable manifest.
    """
    try:
        doc = json.loads(Path(path).read_text())
        return [Scene.from_dict(d) for d in doc["scenes"]]
    except FileNotFoundError:
        raise ConfigError(f"manifest {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"manifest {path} is not a basemap scene manifest: {exc}") from exc
