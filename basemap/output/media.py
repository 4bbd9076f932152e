"""Media types and tile formats, in one table: what S3 stores, what `basemap serve` answers, what
a PMTiles archive declares."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

#: Content types by file suffix: what browsers and GIS clients expect from a tile/COG host.
MEDIA_TYPES = {
    ".webp": "image/webp",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".pmtiles": "application/vnd.pmtiles",
    ".html": "text/html; charset=utf-8",
    ".vrt": "application/xml",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: ``--tile-format`` -> file extension of the tiles (the CLI's choices, the default first).
TILE_FORMATS = {"webp": "webp", "png": "png", "jpeg": "jpg"}
#: Tile file extension -> PMTiles tile type name (the raster tiles a layer may hold).
PMTILES_TYPES = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}


def media_type(name: str) -> str:
    """The Content-Type of a file or key, by its suffix (binary when unknown)."""
    base = PurePosixPath(name).name
    suffix = "." + base.rsplit(".", 1)[1].lower() if "." in base else ""
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def tile_media_type(kind: str) -> str:
    """The Content-Type of tiles by extension (``webp``) or PMTiles type name (``WEBP``)."""
    return media_type("." + kind.lower())
