"""STAC search -> a frozen, sorted list of scenes.

One interface for two kinds of source:

* a STAC API URL (``https://earth-search.aws.element84.com/v1``), searched with pystac-client
  over a ``requests`` session with bounded retries and a timeout; cloud cover is filtered on the
  server when it conforms to the query extension and always on the client as well (``rustac
  serve`` lacks it: a ``query=`` search comes back empty there);
* a local (or ``http(s)://...json``) static catalog, collection, ItemCollection or item file,
  walked with pystac and filtered on the client by bbox, datetime interval and cloud cover.

Both produce :class:`basemap.stac.scene.Scene` values sorted by (datetime, id), one per id. A bbox
with west > east crosses the antimeridian and is searched as two boxes.

Hostile or broken catalogs: a malformed item is skipped with a log line naming it
(:mod:`basemap.stac.validate`); every link followed and every asset href of the returned scenes
obeys the catalog's read policy (:mod:`basemap.stac.hrefs`), else ConfigError; copies of one id
are resolved by their contents, never by their order in the catalog (:func:`resolve_duplicates`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime as _dt
from datetime import timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from basemap import config
from basemap.errors import ConfigError, InputError, StacError
from basemap.redact import redact_url
from basemap.stac.hrefs import ReadPolicy, local_file_problem, local_path, scheme
from basemap.stac.radiometry import parse_instant
from basemap.stac.scene import Scene, scene_from_item
from basemap.stac.validate import item_problem
from basemap.types import BBox

if TYPE_CHECKING:
    from pystac_client import Client, ItemSearch

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

    def parts(box: tuple[float, ...]) -> list[tuple[float, ...]]:
        w, s, e, n = box
        return [(w, s, 180.0, n), (-180.0, s, e, n)] if w > e else [(w, s, e, n)]

    return any(
        aw <= be and bw <= ae and as_ <= bn and bs <= an
        for aw, as_, ae, an in parts(a)
        for bw, bs, be, bn in parts(b)
    )


def _keep(scene: Scene, bbox: BBox, interval: tuple[_dt | None, _dt | None] | None,
          max_cloud: float | None) -> bool:
    if not _intersects(scene.bbox, bbox.as_tuple()):
        return False
    if interval is not None:
        when = parse_instant(scene.datetime)
        start, end = interval
        if when is None or (start and when < start) or (end and when > end):
            return False
    if max_cloud is not None and scene.cloud_cover is not None and scene.cloud_cover > max_cloud:
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
    read_roots: tuple[str, ...] = (),
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
        max_cloud: keep items with ``eo:cloud_cover`` <= this (and items without it: an
            unknown cover is not a high one; they rank last among the clearest).
        collection: collection id to search (None: every collection).
        read_roots: folders whose local files the catalog may reference besides its own folder
            (``--read-root``; see :mod:`basemap.stac.hrefs`).
        timeout: seconds per HTTP request (API sources); default ``$BASEMAP_STAC_TIMEOUT`` or 30.
        retries: retries per request on connection errors and 429/502/503/504.
        backoff_factor: urllib3 backoff factor between retries (seconds, doubling: 0, 2, 4, 8,
            16 s for 1.0); default ``$BASEMAP_STAC_BACKOFF`` or 1.

    Raises:
        InputError: bad datetime or max_cloud.
        ConfigError: a link or an asset href the read policy refuses (naming it).
        StacError: the source cannot be read, a page keeps failing, or pagination loops.
    """
    interval = parse_datetime(datetime)
    max_cloud = check_max_cloud(max_cloud)
    if timeout is None:
        timeout = config.stac_timeout()
    if backoff_factor is None:
        backoff_factor = config.stac_backoff()
    policy = ReadPolicy.for_catalog(source, tuple(read_roots))
    if is_api(source):
        found: Iterable[Scene] = _search_api(
            source, bbox, datetime, max_cloud, collection, timeout, retries, backoff_factor
        )
    else:
        found = _search_static(source, bbox, collection, policy)
    kept = [s for s in resolve_duplicates(found) if _keep(s, bbox, interval, max_cloud)]
    for scene in kept:
        for key, href in scene.assets:
            policy.check(href, f"asset {key} of item {scene.id}")
    return sorted(kept, key=lambda s: (_sort_time(s.datetime), s.id))


def resolve_duplicates(scenes: Iterable[Scene]) -> list[Scene]:
    """One scene per id, whatever the order the catalog lists them in: of the copies of an id,
    the newest ``properties.updated`` (a copy without it is the oldest), then the greatest
    canonical JSON of the scene (its fields, keys sorted). Copies that differ give one warning
    per id; equal copies (an item found by both halves of an antimeridian search) none."""
    copies: dict[str, list[Scene]] = {}
    for scene in scenes:
        copies.setdefault(scene.id, []).append(scene)
    chosen = []
    for item_id, versions in copies.items():
        best = max(versions, key=_version_key)
        if any(v != best for v in versions):
            log.warning(
                "item %s is in the catalog %d times with different contents: using the copy "
                "updated %s (newest properties.updated, then the greatest canonical JSON)",
                item_id, len(versions), best.updated or "(no date)",
            )
        chosen.append(best)
    return chosen


def _version_key(scene: Scene) -> tuple[_dt, str]:
    updated = parse_instant(scene.updated) or _dt.min.replace(tzinfo=timezone.utc)
    return updated, json.dumps(scene.to_dict(), sort_keys=True, separators=(",", ":"))


def _sort_time(text: str) -> _dt:
    return parse_instant(text) or _dt.min.replace(tzinfo=timezone.utc)


def _open_client(url: str, timeout: float, retries: int, backoff_factor: float) -> Client:
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
        raise StacError(f"cannot open the STAC API {redact_url(url)}: {exc}") from exc


def _search_api(url: str, bbox: BBox, datetime: str | None, max_cloud: float | None,
                collection: str | None, timeout: float, retries: int,
                backoff: float) -> Iterator[Scene]:
    from pystac_client.conformance import ConformanceClasses

    client = _open_client(url, timeout, retries, backoff)
    shown = redact_url(url)
    has_query = client.conforms_to(ConformanceClasses.QUERY)
    if max_cloud is not None and not has_query:
        log.info("%s lacks the query extension: filtering eo:cloud_cover on the client", shown)
    for box in bbox.split_antimeridian():
        kwargs = {"bbox": list(box.as_tuple()), "limit": 100,
                  # "../..": no filter (servers refuse an interval open at both ends)
                  "datetime": None if parse_datetime(datetime) == (None, None) else datetime}
        if collection:
            kwargs["collections"] = [collection]
        if max_cloud is not None and has_query:
            kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
        for page in _result_pages(client, kwargs, shown):
            features = page.get("features")
            for item, _ in _checked((f, None) for f in (features if isinstance(features, list)
                                                          else [])):
                scene = _scene(item, None)
                if scene is not None:
                    yield scene


def _result_pages(client: Client, kwargs: dict, shown: str) -> Iterator[dict]:
    """The pages of one search; any failure to get one is a StacError (what is done with a page
    is not: a malformed item is the caller's to skip)."""
    try:
        yield from _pages(client.search(**kwargs), shown)
    except StacError:
        raise
    except Exception as exc:
        raise StacError(f"STAC search at {shown} failed: {exc}") from exc


def _pages(item_search: ItemSearch, url: str) -> Iterator[dict]:
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


def _checked(items: Iterable[tuple[object, str | None]]) -> Iterator[tuple[dict, str | None]]:
    """The well-formed of (item, base) pairs; a malformed item is skipped with one log line."""
    for item, base in items:
        problem = item_problem(item)
        if problem is None:
            yield item, base
        else:
            _skip(item, problem)


def _skip(item: object, problem: str) -> None:
    item_id = item.get("id") if isinstance(item, dict) else None
    log.warning("skipping item %r: %s", item_id, problem)


def _scene(item: dict, base: str | None) -> Scene | None:
    """:func:`scene_from_item` of a well-formed item; None (logged) when it is unusable."""
    try:
        return scene_from_item(item, base)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        _skip(item, f"unreadable ({type(exc).__name__}: {exc})")
        return None


def _search_static(source: str, bbox: BBox, collection: str | None,
                   policy: ReadPolicy) -> Iterator[Scene]:
    if not re.match(r"^https?://", source) and not Path(source).exists():
        raise ConfigError(f"STAC source {source} does not exist (give a catalog.json or API URL)")
    for item, base in _checked(_static_items(source, policy)):
        if collection and item.get("collection") != collection:
            continue
        box = item.get("bbox")
        if box is not None and not _intersects((box[0], box[1], box[-2], box[-1]),
                                               bbox.as_tuple()):
            continue
        scene = _scene(item, base)
        if scene is not None:
            yield scene


def _static_items(source: str, policy: ReadPolicy) -> Iterator[tuple[object, str]]:
    """(item, folder or URL its relative hrefs are resolved against) of every item of a static
    item, ItemCollection, catalog or collection. Catalogs are walked through their ``child`` and
    ``item`` links, each checked against ``policy`` before it is read."""
    from pystac.utils import make_absolute_href

    start = source if re.match(r"^https?://", source) else str(Path(source).resolve())
    pending = deque([(start, "root")])
    seen: set[str] = set()
    while pending:
        href, rel = pending.popleft()
        if href in seen:
            continue
        seen.add(href)
        doc = _read_json(href)
        base = href.rsplit("/", 1)[0]
        kind = doc.get("type") if isinstance(doc, dict) else None
        if rel == "item" or kind == "Feature":
            yield doc, base
        elif kind == "FeatureCollection" and isinstance(doc.get("features"), list):
            yield from ((feature, base) for feature in doc["features"])
        elif kind in ("Catalog", "Collection") and isinstance(doc.get("links"), list):
            for link in doc["links"]:
                if not isinstance(link, dict) or link.get("rel") not in ("child", "item"):
                    continue
                if not isinstance(link.get("href"), str):
                    log.warning("%s: skipping a %s link without a href", redact_url(href),
                                link["rel"])
                    continue
                target = make_absolute_href(link["href"], href)
                _check_link(target, f"the {link['rel']} link of {redact_url(href)}", policy)
                pending.append((target, link["rel"]))
        else:
            raise StacError(f"{redact_url(href)} is not a STAC item, ItemCollection, catalog "
                            "or collection")


def _check_link(href: str, what: str, policy: ReadPolicy) -> None:
    """A link the walk may follow: allowed by ``policy``, and a regular file when local."""
    policy.check(href, what)
    if scheme(href) in (None, "file"):
        problem = local_file_problem(local_path(href))
        if problem:
            raise ConfigError(f"{what}: {problem}")


def _read_json(href: str) -> dict:
    import pystac

    try:
        return pystac.StacIO.default().read_json(href)
    except Exception as exc:  # I/O, HTTP and JSON errors: all mean "cannot read it"
        raise StacError(f"cannot read the STAC file {redact_url(href)}: {exc}") from exc
