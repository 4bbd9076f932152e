"""PMTiles archives: every tile read back with the `pmtiles` reader equals its XYZ file's bytes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles

from basemap.errors import ConfigError
from basemap.output.layers import find_layers, read_tileset
from basemap.output.pmtiles import read_archive_info, read_tile, write_pmtiles

BASEMAP = str(Path(sys.executable).with_name("basemap"))


@pytest.mark.parametrize("renderer", ["linear", "unet"])
def test_archive_holds_the_xyz_bytes(xyz_build, tmp_path, renderer):
    ts = read_tileset(xyz_build / renderer / "tilejson.json")
    info = write_pmtiles(ts, tmp_path / "a.pmtiles")
    xyz = {(z, x, y): p.read_bytes() for z, x, y, p in ts.iter_tiles()}
    with open(info.path, "rb") as f:
        get = MmapSource(f)
        packed = {zxy: bytes(data) for zxy, data in all_tiles(get)}
        reader = Reader(get)
        metadata = reader.metadata()
        header = reader.header()
    assert len(xyz) == 8  # 2 + 2 + 4 tiles at z8-10 (tests/support/xyz_build.py)
    assert packed == xyz  # same tiles, same bytes: nothing re-encoded
    for (z, x, y), data in xyz.items():  # random access through the directory too
        assert read_tile(info.path, z, x, y) == data
    assert read_tile(info.path, 10, 0, 0) is None
    assert (info.minzoom, info.maxzoom, info.tiles) == (8, 10, 8)
    assert info.tile_type == {"linear": "WEBP", "unet": "PNG"}[renderer]
    # Header bounds are stored as 1e-7 degree integers: within 1e-7 of the TileJSON's.
    assert info.bounds == pytest.approx(ts.bounds, abs=1e-7)
    assert header["clustered"]
    assert metadata["name"] == renderer and "tiles" not in metadata


def test_cli_writes_one_archive_per_tileset(xyz_build, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(xyz_build, out)
    run = subprocess.run([BASEMAP, "pmtiles", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for renderer in ("linear", "unet"):
        assert read_archive_info(out / renderer / "basemap.pmtiles").tiles == 8
    # The archives are found as layers beside the XYZ sets.
    tilesets, archives = find_layers(out)
    assert len(tilesets) == 2 and len(archives) == 2
    # --output with two tile sets is ambiguous: exit 2, nothing written.
    run = subprocess.run([BASEMAP, "pmtiles", str(out), "--output", str(tmp_path / "x.pmtiles")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "--output needs exactly one" in run.stderr
    assert not (tmp_path / "x.pmtiles").exists()


def test_empty_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="run `basemap build`"):
        find_layers(tmp_path)
    (tmp_path / "tilejson.json").write_text(json.dumps({"tiles": ["tiles/{z}/{x}/{y}.gif"]}))
    with pytest.raises(ConfigError, match="tile format"):
        find_layers(tmp_path)
