"""``OUT/build.json``, the record of a build: written once at the end of a run, read by the next
run (its default period) and by `basemap evaluate` (its settings). The one reader and writer."""

from __future__ import annotations

import json
from dataclasses import fields

from basemap.errors import ConfigError
from basemap.output.storage import Storage
from basemap.pipeline.plan import BuildSettings

RECORD_KEY = "build.json"


def write_record(storage: Storage, record: dict) -> None:
    """Publish the record (JSON, indented)."""
    storage.write_bytes(RECORD_KEY, json.dumps(record, indent=1).encode())


def read_record(storage: Storage) -> dict | None:
    """The record of an earlier run of this output (None: no run has finished there).

    Raises:
        ConfigError: a build.json that is not a build record.
    """
    try:
        record = json.loads(storage.read_bytes(RECORD_KEY))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ConfigError(f"{storage.path(RECORD_KEY)} is not a basemap build record: {exc}") \
            from None
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise ConfigError(f"{storage.path(RECORD_KEY)} is not a basemap build record")
    return record


def record_settings(record: dict) -> BuildSettings:
    """The settings a record holds (fields of older versions that are gone are left out).

    Raises:
        ConfigError: settings of the wrong type.
    """
    known = {f.name for f in fields(BuildSettings)}
    try:
        return BuildSettings(**{k: v for k, v in record["settings"].items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"build record settings unreadable: {exc}") from None
