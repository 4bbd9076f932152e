"""Source profiles: how each Sentinel-2 archive publishes its items, and how to reach its pixels.

A profile is picked per item from the item's own metadata (never from where its hrefs point, so
that a mirror or a test server behaves like the archive). It names the item's asset keys, how
its hrefs are reached (signed, S3 with which credentials) and what to tell a user the archive
refused. docs/sources.md has the user's side: the command per archive and what to set.

* ``earth-search-c1``: Earth Search ``sentinel-2-c1-l2a``; keys red/green/blue/scl, public
  HTTPS COGs, ``raster:bands`` offset -0.1 (Element84's recommended collection);
* ``earth-search``: Earth Search ``sentinel-2-l2a``; same keys; ``earthsearch:boa_offset_applied``
  (and the pixels, where it says false on a >= 04.00 product) decide the offset;
* ``planetary-computer``: keys B04/B03/B02/SCL on Azure Blob; hrefs need a SAS token
  (:mod:`basemap.read.access` signs them at read time);
* ``cdse``: Copernicus Data Space; keys B04_10m/.../SCL_20m, JPEG 2000 in ``s3://eodata``
  read with CDSE S3 credentials; ``processing:version`` and ``raster:offset``;
* ``generic``: anything else; either key family, hrefs read as given.

Users add profiles with a JSON file named by ``$BASEMAP_SOURCES`` (see docs/sources.md).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from basemap import config
from basemap.errors import ConfigError

log = logging.getLogger(__name__)

#: Canonical asset keys of the pipeline: the reflectance bands, then the optional ones.
REQUIRED_ASSETS = ("red", "green", "blue")
OPTIONAL_ASSETS = ("nir", "scl")

EARTH_SEARCH_KEYS = {"red": ("red",), "green": ("green",), "blue": ("blue",), "nir": ("nir",),
                     "scl": ("scl",)}
PC_KEYS = {"red": ("B04",), "green": ("B03",), "blue": ("B02",), "nir": ("B08",),
           "scl": ("SCL",)}
CDSE_KEYS = {"red": ("B04_10m",), "green": ("B03_10m",), "blue": ("B02_10m",),
             "nir": ("B08_10m",), "scl": ("SCL_20m", "SCL_60m")}
GENERIC_KEYS = {k: EARTH_SEARCH_KEYS[k] + PC_KEYS[k] for k in EARTH_SEARCH_KEYS}


@dataclass(frozen=True)
class SourceProfile:
    """One archive's conventions.

    Attributes:
        name: recorded per scene in the manifest.
        title: the archive's name in messages.
        keys: canonical key -> the item's asset names to try, in order.
        signing: "planetary-computer" (SAS tokens) or None.
        s3: how ``s3://`` hrefs are read: "anonymous" (public buckets; requester-pays on
            request), "cdse" (CDSE's endpoint and keys) or "default" (GDAL's AWS chain).
        auth_hint: what to set when the archive answers 401/403/409.
        collections: collection ids (regular expressions) that pick this profile.
        properties: property-name prefixes that pick it (with its keys present).
        links: host names in the item's links that pick it (with its keys present).
    """

    name: str
    title: str
    keys: dict[str, tuple[str, ...]]
    signing: str | None = None
    s3: str = "default"
    auth_hint: str = ""
    collections: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    links: tuple[str, ...] = ()

    def matches(self, item: dict) -> bool:
        """Whether ``item`` was published by this archive (by its metadata)."""
        collection = str(item.get("collection") or "")
        if any(re.fullmatch(c, collection) for c in self.collections):
            return True
        assets = item.get("assets") or {}
        if not any(name in assets for name in self.keys["red"]):
            return False
        props = item.get("properties") or {}
        if any(k.startswith(p) for k in props for p in self.properties):
            return True
        hrefs = [str(link.get("href", "")) for link in item.get("links") or []]
        return any(host in h for h in hrefs for host in self.links)

    def asset_name(self, item: dict, key: str) -> str | None:
        """The item's asset name for canonical ``key`` (None: the item has none with an href)."""
        assets = item.get("assets") or {}
        return next((n for n in self.keys.get(key, ()) if (assets.get(n) or {}).get("href")),
                    None)


EARTH_SEARCH_C1 = SourceProfile(
    "earth-search-c1", "Earth Search (sentinel-2-c1-l2a)", EARTH_SEARCH_KEYS, s3="anonymous",
    auth_hint="Earth Search's COGs are public: a 403 means a requester-pays bucket "
    "(set BASEMAP_INPUT_S3_REQUESTER_PAYS=1 and AWS credentials) or a proxy refusing the request",
    collections=(r"sentinel-2-c1-l2a",))
EARTH_SEARCH = SourceProfile(
    "earth-search", "Earth Search (sentinel-2-l2a)", EARTH_SEARCH_KEYS, s3="anonymous",
    auth_hint=EARTH_SEARCH_C1.auth_hint, properties=("earthsearch:",))
PLANETARY_COMPUTER = SourceProfile(
    "planetary-computer", "Planetary Computer", PC_KEYS, signing="planetary-computer",
    auth_hint="Planetary Computer assets need a SAS token: the build gets one from "
    "BASEMAP_PC_SAS_URL (default https://planetarycomputer.microsoft.com/api/sas/v1/token); "
    "check that this machine reaches it, and set PC_SDK_SUBSCRIPTION_KEY if you have a key",
    properties=("s2:mgrs_tile", "msft:"), links=("planetarycomputer",))
CDSE = SourceProfile(
    "cdse", "Copernicus Data Space (CDSE)", CDSE_KEYS, s3="cdse",
    auth_hint="CDSE's s3://eodata needs CDSE S3 keys: set CDSE_S3_ACCESS_KEY and "
    "CDSE_S3_SECRET_KEY (made at https://eodata-s3keysmanager.dataspace.copernicus.eu), and "
    "CDSE_S3_ENDPOINT if not https://eodata.dataspace.copernicus.eu",
    properties=("processing:version", "storage:schemes", "auth:schemes"),
    links=("dataspace.copernicus.eu",))
GENERIC = SourceProfile(
    "generic", "the STAC source", GENERIC_KEYS,
    auth_hint="the server refused the request: sign the hrefs or set the credentials this "
    "archive needs (s3:// hrefs use GDAL's AWS settings: AWS_ACCESS_KEY_ID, AWS_S3_ENDPOINT, ...)")

#: Built-in profiles, in the order they are tried (the first that matches wins).
BUILTIN = (EARTH_SEARCH_C1, CDSE, PLANETARY_COMPUTER, EARTH_SEARCH)


def profiles() -> tuple[SourceProfile, ...]:
    """Every profile tried for an item: the user's ($BASEMAP_SOURCES) first, then the built-in
    ones; :data:`GENERIC` is the fallback."""
    path = config.sources_file()
    return (*load_profiles(path), *BUILTIN) if path else BUILTIN


@functools.cache
def load_profiles(path: str) -> tuple[SourceProfile, ...]:
    """Profiles from a JSON file: a list of {"name", "title", "collections", "keys", "s3"}.

    Raises:
        ConfigError: unreadable file or a profile without its fields.
    """
    try:
        with open(path) as fh:
            docs = json.load(fh)
        return tuple(SourceProfile(
            name=str(d["name"]), title=str(d.get("title") or d["name"]),
            keys={k: tuple(v) if isinstance(v, list) else (str(v),)
                  for k, v in d["keys"].items()},
            s3=str(d.get("s3", "default")), collections=tuple(d.get("collections", ())),
            properties=tuple(d.get("properties", ())), auth_hint=str(d.get("auth_hint", "")),
        ) for d in docs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{config.SOURCES_ENV}={path}: not a list of source profiles ({exc}); "
                          "see docs/sources.md") from exc


def profile_for(item: dict) -> SourceProfile:
    """The profile of ``item`` (:data:`GENERIC` when none matches)."""
    return next((p for p in profiles() if p.matches(item)), GENERIC)


def profile_named(name: str) -> SourceProfile:
    """The profile recorded in a manifest (:data:`GENERIC` for manifests from before profiles)."""
    return next((p for p in profiles() if p.name == name), GENERIC)


def unsigned(href: str) -> str:
    """``href`` without a SAS query (a catalog that hands out signed hrefs: a manifest keeps
    hrefs unsigned, they are signed at read time)."""
    parts = urlsplit(href)
    if "sig=" in parts.query:
        return parts._replace(query="").geturl()
    return href


# ---- which items are Sentinel-2 L2A, and one per acquisition ----------------------------------

#: Collections of one archive in the order a search without ``--collection`` prefers them.
PREFERRED_COLLECTIONS = ("sentinel-2-c1-l2a", "sentinel-2-l2a")


#: Collection ids of other products (a search without a collection returns them beside L2A).
OTHER_PRODUCTS = re.compile(r"l1c|l1b|landsat|sentinel-1|sentinel-3|sentinel-5|hls|modis|dem",
                            re.IGNORECASE)


def not_sentinel2_l2a(item: dict) -> str | None:
    """Why ``item`` is not a Sentinel-2 Level-2A item (None: it is, or may be)."""
    props = item.get("properties") or {}
    kind = str(props.get("s2:product_type") or props.get("product:type") or "")
    if kind and kind.upper() != "S2MSI2A":
        return f"product type {kind}, not Sentinel-2 L2A (S2MSI2A)"
    platform = str(props.get("platform") or "")
    if platform and not platform.lower().startswith("sentinel-2"):
        return f"platform {platform}, not Sentinel-2"
    collection = str(item.get("collection") or "")
    if OTHER_PRODUCTS.search(collection):
        return f"collection {collection}, not Sentinel-2 L2A"
    return None


def one_collection(scenes: list, log_skips: bool = True) -> list:
    """The scenes of one collection: the first of :data:`PREFERRED_COLLECTIONS` present, else
    the one with the most scenes (ties: the smallest id); one line per collection left out."""
    by_collection: dict[str, list] = {}
    for s in scenes:
        by_collection.setdefault(s.collection, []).append(s)
    if len(by_collection) <= 1:
        return scenes
    chosen = next((c for c in PREFERRED_COLLECTIONS if c in by_collection),
                  min(by_collection, key=lambda c: (-len(by_collection[c]), c)))
    for c, group in sorted(by_collection.items()):
        if c != chosen and log_skips:
            log.warning("skipping %d item(s) of collection %r: using %r (pass --collection to "
                        "choose)", len(group), c, chosen)
    return by_collection[chosen]


def acquisition_key(scene) -> tuple:
    """What identifies one acquisition of one tile: (tile, time to the second)."""
    return (scene.grid_code or f"EPSG:{scene.epsg}", scene.datetime[:19])


def one_per_acquisition(scenes: list) -> list:
    """One scene per acquisition: the latest processing (baseline, then ``updated``, then id)
    of items that repeat an acquisition (reprocessed products are published beside the old)."""

    def rank(s) -> tuple:
        return (s.processing_baseline or "", s.updated or "", s.id)

    best: dict[tuple, object] = {}
    for s in scenes:
        key = acquisition_key(s)
        if key in best:
            loser, winner = sorted((best[key], s), key=rank)
            log.info("item %s repeats the acquisition of %s (%s %s): using it, the later "
                     "processing", winner.id, loser.id, *key)
            s = winner
        best[key] = s
    kept = {s.id for s in best.values()}
    return [s for s in scenes if s.id in kept]
