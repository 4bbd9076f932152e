"""A build's tile pyramids as layers: what `basemap serve` shows and `basemap pmtiles` packs.

Layer convention (one layer per tile set found, so several renderers can be compared side by side):

- every ``tilejson.json`` in OUT or in its sub-folders up to two levels down (``OUT/tilejson.json``,
  ``OUT/<renderer>/tilejson.json``, ``OUT/<run>/<renderer>/tilejson.json``) is one XYZ layer; its
  tiles are ``{z}/{x}/{y}.<ext>`` under the folder its relative ``tiles`` template names (the build
  writes ``tiles/{z}/{x}/{y}.<ext>`` beside the tilejson; absolute or remote templates fall back to
  that ``tiles/`` folder);
- every ``*.pmtiles`` file at the same depths is one PMTiles layer.

Folders called ``report`` (written by `basemap evaluate`) and hidden folders are not searched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from basemap.errors import ConfigError
from basemap.output.media import PMTILES_TYPES, tile_media_type

#: How deep below OUT tile sets are looked for (0 = OUT itself).
MAX_DEPTH = 2
_SKIP_DIRS = {"report", "tiles"}
_TEMPLATE = re.compile(r"^(?P<prefix>.*?)\{z\}/\{x\}/\{y\}\.(?P<ext>[A-Za-z]+)(?:\?.*)?$")


@dataclass(frozen=True)
class Tileset:
    """One XYZ tile pyramid with its TileJSON (bounds, zooms, name)."""

    root: Path  # the folder holding tilejson.json
    tiles_dir: Path  # the folder holding {z}/{x}/{y}.<ext>
    ext: str
    name: str
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float]  # WGS84 W, S, E, N
    tilejson: str  # the TileJSON document as read, JSON text (hashable)

    @property
    def content_type(self) -> str:
        """HTTP content type of the tiles."""
        return tile_media_type(self.ext)

    def tile_path(self, z: int, x: int, y: int) -> Path:
        """Path of tile z/x/y (which may not exist)."""
        return self.tiles_dir / str(z) / str(x) / f"{y}.{self.ext}"

    def iter_tiles(self) -> Iterator[tuple[int, int, int, Path]]:
        """Every tile file (z, x, y, path) present on disk, in no particular order."""
        for zdir in self.tiles_dir.iterdir():
            if not zdir.is_dir() or not zdir.name.isdigit():
                continue
            for xdir in zdir.iterdir():
                if not xdir.is_dir() or not xdir.name.isdigit():
                    continue
                for f in xdir.iterdir():
                    stem, _, ext = f.name.partition(".")
                    if ext == self.ext and stem.isdigit():
                        yield int(zdir.name), int(xdir.name), int(stem), f


def read_tileset(tilejson_path: Path) -> Tileset:
    """Read a TileJSON file and locate its tiles.

    Raises:
        ConfigError: when the file is not TileJSON or its tiles' format cannot be told.
    """
    try:
        doc = json.loads(tilejson_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read TileJSON {tilejson_path}: {exc}") from exc
    root = tilejson_path.parent
    templates = doc.get("tiles") or []
    match = _TEMPLATE.match(templates[0]) if templates else None
    ext = match.group("ext").lower() if match else _probe_ext(root / "tiles")
    tiles_dir = root / "tiles"
    if match and "://" not in match.group("prefix") and not match.group("prefix").startswith("/"):
        tiles_dir = (root / match.group("prefix")).resolve()
    if ext not in PMTILES_TYPES:
        raise ConfigError(
            f"{tilejson_path}: cannot tell the tile format from its 'tiles' template "
            f"{templates[:1]}; expected .../{{z}}/{{x}}/{{y}}.webp|png|jpg"
        )
    bounds = tuple(float(v) for v in doc.get("bounds", (-180.0, -85.0511, 180.0, 85.0511)))
    return Tileset(
        root=root,
        tiles_dir=tiles_dir,
        ext=ext,
        name=str(doc.get("name") or root.name),
        minzoom=int(doc.get("minzoom", 0)),
        maxzoom=int(doc.get("maxzoom", 22)),
        bounds=bounds,  # type: ignore[arg-type]
        tilejson=json.dumps(doc),
    )


def _probe_ext(tiles_dir: Path) -> str:
    """The extension of the first tile file found under tiles_dir ('' when there is none)."""
    for f in tiles_dir.glob("*/*/*.*"):
        return f.suffix.lstrip(".").lower()
    return ""


def find_layers(out: Path) -> tuple[list[Tileset], list[Path]]:
    """Tile sets (by TileJSON) and PMTiles archives under OUT, in path order.

    Raises:
        ConfigError: when OUT is not a folder or holds neither.
    """
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"{out} is not a folder; give the output folder of `basemap build`")
    tilejsons: list[Path] = []
    archives: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                skip = entry.name in _SKIP_DIRS or entry.name.startswith(".")
                if depth < MAX_DEPTH and not skip:
                    walk(entry, depth + 1)
            elif entry.name == "tilejson.json":
                tilejsons.append(entry)
            elif entry.suffix == ".pmtiles":
                archives.append(entry)

    walk(out, 0)
    if not tilejsons and not archives:
        raise ConfigError(
            f"no tilejson.json or .pmtiles found in {out} (nor {MAX_DEPTH} folder levels below); "
            "run `basemap build` (or `basemap demo`) into it first"
        )
    return [read_tileset(p) for p in tilejsons], archives
