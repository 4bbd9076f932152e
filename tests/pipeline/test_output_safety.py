"""Safe by default: commands write only into outputs that are the tool's, with the umask's modes.

An output is the tool's when it holds ``basemap-output.json`` (basemap.output.ownership), is new
or empty, or is an output of an earlier basemap (it holds the tool's ledger/). Anything else is
refused with exit 2 before anything is written or cleaned up there, by every command that writes
a folder: build, demo (OUT/build), world run, tiles. Real CLI runs on the synthetic test world.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from basemap.output.ownership import MARKER, marker_bytes
from basemap.pipeline.build import build
from basemap.pipeline.ledger import RESUMED
from basemap.stac.query import Query
from basemap.synth.tiles import world_bbox
from tests.support.cli_runner import run_cli

#: What the issue saw deleted or overwritten in a folder given as --out.
THEIRS = {"build.json": b"my notes", "manifest.json": b"[]", "tilejson.json": b"{}",
          "mosaic.vrt": b"<VRTDataset/>", "stac/catalog.json": b"{}", "draft.tmp": b"draft",
          ".report.abcd1234.tmp": b"mine", ".tmp/keep.txt": b"keep"}


def quarter_bbox() -> str:
    """The south-west quarter of the test world's bbox (a few blocks: a fast build)."""
    b = world_bbox("test")
    return f"{b.west},{b.south},{(b.west + b.east) / 2},{(b.south + b.north) / 2}"


def someones_folder(path: Path) -> Path:
    """A folder of someone else's files, named as the tool names its own."""
    for name, data in THEIRS.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*")
            if p.is_file()}


def build_args(out: str, catalog) -> list[str]:
    return ["build", "--bbox", quarter_bbox(), "--zoom", "12-14", "--out", out, "--stac",
            str(catalog), "--renderer", "linear", "--block-size", "512", "--workers", "0",
            "--quiet"]


def test_build_refuses_a_folder_that_is_not_a_basemap_output(synth_world, tmp_path,
                                                             monkeypatch, capsys):
    """Issue row 1: every *.tmp and .tmp/ deleted, build.json ... stac/catalog.json overwritten,
    exit 0. Now: exit 2 naming the folder and the way out; not a byte changed."""
    out = someones_folder(tmp_path / "site")
    code, _, err = run_cli(build_args(str(out), synth_world), monkeypatch, capsys)
    assert code == 2, err
    assert f"{out} is not empty and is not a basemap output" in err
    assert "Choose a new or empty folder" in err and "Traceback" not in err
    assert files(out) == THEIRS


def test_an_empty_out_is_refused_not_the_working_directory(synth_world, tmp_path, monkeypatch,
                                                          capsys):
    """Issue row 1: `--out "$UNSET"` built into (and cleaned up) the working directory."""
    here = someones_folder(tmp_path / "cwd")
    monkeypatch.chdir(here)
    code, _, err = run_cli(build_args("", synth_world), monkeypatch, capsys)
    assert code == 2 and "--out is empty" in err, err
    assert files(here) == THEIRS


def test_every_command_that_writes_a_folder_refuses_one_not_its_own(synth_world, tmp_path,
                                                                   monkeypatch, capsys):
    """demo (OUT/build), world run and tiles take the same preflight as build."""
    demo = tmp_path / "demo"
    shutil.copytree(Path(synth_world).parent, demo / "world")  # a world already made
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(["plan", "--bbox", quarter_bbox(), "--block-size", "512",
                            "--shard-size", "2", "--out", str(plan)], monkeypatch, capsys)
    assert code == 0, err
    raster = tmp_path / "rgb.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8",
                       crs="EPSG:3857", transform=Affine(10, 0, 667000, 0, -10, 5620000)) as ds:
        ds.write(np.full((3, 64, 64), 90, np.uint8))
    runs = {"demo": (["demo", str(demo), "--renderer", "linear"], demo / "build"),
            "world": (["world", "run", str(plan), "--out", str(tmp_path / "w"), "--stac",
                       str(synth_world), "--renderer", "linear"], tmp_path / "w"),
            "tiles": (["tiles", str(raster), str(tmp_path / "t")], tmp_path / "t")}
    for name, (args, out) in runs.items():
        someones_folder(out)
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert code == 2 and "is not empty and is not a basemap output" in err, (name, err)
        assert files(out) == THEIRS, name


def test_an_output_of_the_previous_version_resumes_and_is_marked(small_build, synth_world,
                                                                 tmp_path):
    """Outputs written before the marker hold the tool's ledger/: recognized, marked, resumed
    (not a fix: this must keep working)."""
    reference, settings, zoom = small_build
    out = tmp_path / "old"
    shutil.copytree(reference, out)
    (out / MARKER).unlink()  # as the previous version left it
    summary = build(world_bbox("test"), zoom, str(out), settings, Query(str(synth_world)),
                    workers=0)
    assert summary.blocks and not summary.failed
    assert (out / MARKER).read_bytes() == marker_bytes()
    record = json.loads((out / "build.json").read_text())
    assert all(b["message"] == RESUMED for b in record["blocks"])


def test_outputs_get_the_umask_modes(synth_world, tmp_path):
    """Issue row 8: every output was 0600 (mkstemp, then a rename), whatever the umask. Now
    files are 0666 & ~umask and folders 0777 & ~umask, as any tool's (here 0640 and 0750)."""
    umask = 0o027
    out = tmp_path / "out"
    r = subprocess.run([str(Path(sys.executable).parent / "basemap"),
                        *build_args(str(out), synth_world)],
                       capture_output=True, text=True, timeout=300, umask=umask)
    assert r.returncode == 0, r.stderr[-3000:]
    modes = {p.relative_to(out).as_posix(): (p.is_dir(), stat.S_IMODE(p.lstat().st_mode))
             for p in out.rglob("*")}
    kinds = {key.split("/")[0] for key in modes}
    assert {"cogs", "tiles", "ledger", "stac", MARKER, "build.json", "mosaic.vrt"} <= kinds
    wrong = {key: oct(mode) for key, (is_dir, mode) in modes.items()
             if mode != (0o777 if is_dir else 0o666) & ~umask}
    assert not wrong, wrong
