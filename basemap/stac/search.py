"""STAC search -> a frozen, sorted list of scenes.

One interface for two kinds of source:

* a STAC API URL (``https://earth-search.aws.element84.com/v1``), searched with pystac-client
  over a ``requests`` session with bounded retries and a timeout; cloud cover is filtered on the
  server when it conforms to the query extension and always on the client as well (``rustac
  serve`` lacks it: a ``query=`` search comes back empty there);
* a local (or ``http(s)://...json``) static catalog, collection, ItemCollection or item file,
  walked with pystac and filtered on the client by bbox, datetime interval and cloud cover.

Both produce :class:`basemap.stac.scene.Scene` values sorted by (datetime, id) and de-duplicated
by id. A bbox with west > east crosses the antimeridian and is searched as two boxes.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime as _dt
from datetime import timedelta, timezone
from pathlib import Path

from basemap import config
from basemap.errors import ConfigError, InputError, StacError
from basemap.stac.radiometry import parse_instant
from basemap.stac.scene import Scene, scene_from_item
from basemap.types import BBox

log = logging.getLogger(__name__)

#: Safety bound on the number of result pages one search may follow.
MAX_PAGES = 10_000


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
        value = parse_instant(part)
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
        when = parse_instant(scene.datetime)
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
        timeout = config.stac_timeout()
    if backoff_factor is None:
        backoff_factor = config.stac_backoff()
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
    return parse_instant(text) or _dt.min.replace(tzinfo=timezone.utc)


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
