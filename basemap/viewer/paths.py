"""What `basemap serve` may hand out of an output folder, and which request paths it refuses.

Only the files a basemap consists of (:func:`basemap_kind`) are served; hidden components rule a
path out, also through symlinks (:func:`file_under`); malformed or over-long request paths are
refused before any file lookup (:func:`decode_path`).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

from basemap.output.media import PMTILES_TYPES

#: The longest path component, and the longest whole path, a request may name (UTF-8 bytes).
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024

_TILE = re.compile(rf"[0-9]+/[0-9]+/[0-9]+\.(?:{'|'.join(PMTILES_TYPES)})")
_PRINTABLE_ASCII = re.compile(r"[!-~]*")  # what a request target may hold before decoding
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")  # after decoding


def basemap_kind(parts: tuple[str, ...], tile_dirs: frozenset[tuple[str, ...]]) -> str | None:
    """What the file at OUT/<parts> is to a basemap, or None when a basemap holds no such file.

    Kinds: 'tile' (``z/x/y.<ext>`` under a ``tiles*`` folder or a layer's tile folder, one of
    tile_dirs), 'tilejson', 'record' (build.json, manifest.json), 'stac' (JSON under stac/),
    'cog' (.tif under cogs/), 'vrt' (mosaic.vrt), 'pmtiles'. Hidden components rule a path out.
    """
    if not parts or any(p.startswith(".") for p in parts):
        return None
    *folders, name = parts
    if len(parts) >= 3 and _TILE.fullmatch("/".join(parts[-3:])):
        tile_dir = parts[:-3]
        in_tiles = tile_dir in tile_dirs or (len(tile_dir) > 0 and tile_dir[-1].startswith("tiles"))
        return "tile" if in_tiles else None
    if name == "tilejson.json":
        return "tilejson"
    if name in ("build.json", "manifest.json"):
        return "record"
    if name.endswith(".json") and "stac" in folders:
        return "stac"
    if name.endswith(".tif") and "cogs" in folders:
        return "cog"
    if name == "mosaic.vrt":
        return "vrt"
    if name.endswith(".pmtiles"):
        return "pmtiles"
    return None


class BadPath(Exception):
    """A request path refused before any file lookup; carries the 4xx status to answer."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status)
        self.status = status


def decode_path(target: str) -> str:
    """The percent-decoded path of a request target (origin-form, or absolute-form as RFC 9112
    allows).

    Raises:
        BadPath: 400 for non-ASCII or control characters, NUL, backslashes, empty components,
            invalid percent-encoding or UTF-8; 414 for a path or a component over the limits.
    """
    if not _PRINTABLE_ASCII.fullmatch(target):
        raise BadPath(HTTPStatus.BAD_REQUEST)
    if not target.startswith("/"):
        try:
            target = urlsplit(target).path
        except ValueError:
            raise BadPath(HTTPStatus.BAD_REQUEST) from None
    raw = target.partition("?")[0].partition("#")[0]
    if not raw.startswith("/") or _BAD_ESCAPE.search(raw):
        raise BadPath(HTTPStatus.BAD_REQUEST)
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadPath(HTTPStatus.BAD_REQUEST) from None
    names = path.split("/")
    if len(path.encode()) > MAX_PATH_BYTES or max(len(n.encode()) for n in names) > MAX_NAME_BYTES:
        raise BadPath(HTTPStatus.REQUEST_URI_TOO_LONG)
    if _BAD_CHARS.search(path) or "" in names[1:-1]:
        raise BadPath(HTTPStatus.BAD_REQUEST)
    return path


def file_under(root: Path, rel: str) -> Path | None:
    """root/rel when it is a regular file inside root named and reached (symlinks resolved)
    through no component starting with '.', else None."""
    root = root.resolve()
    candidate = (root / rel).resolve()
    try:
        inside = candidate.relative_to(root)
    except ValueError:
        return None
    if any(p.startswith(".") for p in Path(rel).parts + inside.parts):
        return None
    try:
        return candidate if candidate.is_file() else None
    except OSError:  # e.g. a folder the server may not read
        return None
