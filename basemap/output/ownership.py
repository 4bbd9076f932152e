"""Which outputs are this tool's: the marker ``basemap-output.json`` (docs/reliability.md, "Safe by
default").

An output (local folder or s3:// prefix) is this tool's only when it says so. The marker is the
first thing a command writes there (its preflight, :func:`claim`), and nothing is written to, or
cleaned up in, a non-empty folder without it. Outputs of basemap versions from before the marker
hold the tool's ``ledger/``: they are recognized, and claimed, so they still resume.
"""

from __future__ import annotations

import json
import logging

from basemap.errors import ConfigError

log = logging.getLogger(__name__)

#: The marker's key, at the top of the output.
MARKER = "basemap-output.json"
FORMAT = "basemap-output"
#: Format version of the marker (and of the output layout it vouches for).
VERSION = 1
#: Folders only this tool's outputs hold (versions before the marker: they have no marker).
LEGACY_FOLDERS = ("ledger/manifests", "ledger/blocks", "ledger/shards")


def marker_bytes() -> bytes:
    """The marker's bytes (no timestamp: a resumed output is byte-identical to a clean one)."""
    doc = {"format": FORMAT, "version": VERSION,
           "about": "a basemap output: basemap writes only into folders holding this file, "
                    "or empty ones"}
    return (json.dumps(doc, indent=1) + "\n").encode()


def owned(storage) -> bool:
    """Whether the output holds this tool's marker (of a format version this basemap reads)."""
    return _marker_version(storage) is not None


def claim(storage) -> None:
    """Preflight of every command that writes an output: make sure it is this tool's, and mark it.

    The output is this tool's when it holds the marker, is empty or new, or is an output of an
    earlier basemap (it holds the tool's ledger); the marker is then (re)written, which is also
    the probe that the output can be written.

    Raises:
        ConfigError: anything else (a non-empty folder or prefix without the marker, or a marker
            of a newer format), naming the output and the way out; nothing is written to it.
        OSError (or the S3 client's errors): the output cannot be read or written.
    """
    version = _marker_version(storage)
    if version is None:
        if any(storage.has(folder) for folder in LEGACY_FOLDERS):
            log.warning("%s is an output of an earlier basemap (it holds its ledger/): marking it "
                        "as a basemap output (%s) and using it", storage.root, MARKER)
        elif storage.has(""):
            raise ConfigError(
                f"--out {storage.root} is not empty and is not a basemap output (it has no "
                f"{MARKER}): refusing to write into it, or to clean it up. Choose a new or empty "
                "folder (or prefix) for the output"
            )
    storage.write_bytes(MARKER, marker_bytes())


def _marker_version(storage) -> int | None:
    """The marker's format version (None: no marker).

    Raises:
        ConfigError: a marker of another format, or of a newer version than this basemap reads.
    """
    try:
        data = storage.read_bytes(MARKER)
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(data)
        version = int(doc["version"]) if doc.get("format") == FORMAT else None
    except (ValueError, TypeError, KeyError, AttributeError):
        version = None
    if version is None:
        raise ConfigError(f"--out {storage.root}: its {MARKER} is not a basemap marker; refusing "
                          "to write into it: choose a new or empty folder for the output")
    if version > VERSION:
        raise ConfigError(f"--out {storage.root} was written by a newer basemap (output format "
                          f"{version}, this one writes {VERSION}): upgrade basemap, or choose a "
                          "new or empty folder")
    return version
