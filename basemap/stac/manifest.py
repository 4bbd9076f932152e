"""The frozen item list of a build (``OUT/manifest.json``): scenes as JSON, and back."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from basemap.errors import ConfigError
from basemap.stac.scene import Scene


def manifest_bytes(scenes: Iterable[Scene]) -> bytes:
    """The manifest document of ``scenes``, as written to ``OUT/manifest.json``."""
    return json.dumps({"version": 1, "scenes": [s.to_dict() for s in scenes]}, indent=1).encode()


def write_manifest(scenes: Iterable[Scene], path: str | os.PathLike) -> Path:
    """Write the frozen item list as JSON (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(manifest_bytes(scenes))
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
