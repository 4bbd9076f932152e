"""One-file PMTiles (v3) archives of a build's XYZ pyramid, for hosting without a tile server.

Tiles are copied byte for byte (no re-encoding) in Hilbert tile-id order (a clustered archive),
identical tiles are stored once, and the TileJSON goes into the archive's metadata. Written with the
`pmtiles` package's writer to a temporary file that is renamed into place when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from basemap.errors import ConfigError
from basemap.output.layers import Tileset
from basemap.output.media import PMTILES_TYPES
from basemap.progress import SILENT, Progress


@dataclass(frozen=True)
class ArchiveInfo:
    """What the viewer needs to know about an archive (from its header)."""

    path: Path
    name: str
    tile_type: str
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float]
    tiles: int


def write_pmtiles(tileset: Tileset, output: Path, progress: Progress = SILENT) -> ArchiveInfo:
    """Pack every tile of `tileset` into one PMTiles archive at `output`.

    Raises:
        ConfigError: when the tile set holds no tiles or the output cannot be written.
    """
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    tiles = sorted(
        (zxy_to_tileid(z, x, y), path) for z, x, y, path in tileset.iter_tiles() if z <= 31
    )
    if not tiles:
        raise ConfigError(f"no tiles under {tileset.tiles_dir}; run `basemap build` first")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    w, s, e, n = tileset.bounds
    header = {
        "tile_type": TileType[PMTILES_TYPES[tileset.ext]],
        "tile_compression": Compression.NONE,  # webp/png/jpeg are compressed already
        "min_lon_e7": int(w * 1e7),
        "min_lat_e7": int(s * 1e7),
        "max_lon_e7": int(e * 1e7),
        "max_lat_e7": int(n * 1e7),
        "center_zoom": (tileset.minzoom + tileset.maxzoom) // 2,
        "center_lon_e7": int((w + e) / 2 * 1e7),
        "center_lat_e7": int((s + n) / 2 * 1e7),
    }
    metadata = json.loads(tileset.tilejson)
    metadata.pop("tiles", None)  # the archive is the tile source now
    try:
        with open(tmp, "wb") as f:
            writer = Writer(f)
            bar = progress.stage("pmtiles", len(tiles), "tile")
            for tile_id, path in tiles:
                writer.write_tile(tile_id, path.read_bytes())
                bar.advance()
            bar.close()
            writer.finalize(header, metadata)
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {output}: {exc}; pick a writable --output") from exc
    return read_archive_info(output)


def read_archive_info(path: Path) -> ArchiveInfo:
    """Header facts of a PMTiles archive.

    Raises:
        ConfigError: when the file is not a PMTiles v3 archive of raster tiles.
    """
    from pmtiles.reader import MmapSource, Reader

    try:
        with open(path, "rb") as f:
            reader = Reader(MmapSource(f))
            header = reader.header()
            metadata = reader.metadata()
    except Exception as exc:  # the reader raises bare exceptions for bad magic/version
        raise ConfigError(f"{path} is not a readable PMTiles v3 archive ({exc!r})") from exc
    tile_type = header["tile_type"].name
    if tile_type not in PMTILES_TYPES.values():
        raise ConfigError(f"{path} holds {tile_type} tiles; the viewer shows PNG, JPEG or WEBP")
    return ArchiveInfo(
        path=Path(path),
        name=str(metadata.get("name") or Path(path).stem),
        tile_type=tile_type,
        minzoom=header["min_zoom"],
        maxzoom=header["max_zoom"],
        bounds=(
            header["min_lon_e7"] / 1e7,
            header["min_lat_e7"] / 1e7,
            header["max_lon_e7"] / 1e7,
            header["max_lat_e7"] / 1e7,
        ),
        tiles=header["addressed_tiles_count"],
    )


def read_tile(path: Path, z: int, x: int, y: int) -> bytes | None:
    """The bytes of tile z/x/y in an archive, or None when it holds no such tile."""
    from pmtiles.reader import MmapSource, Reader

    with open(path, "rb") as f:
        data = Reader(MmapSource(f)).get(z, x, y)
    return None if data is None else bytes(data)
