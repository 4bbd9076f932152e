"""Resume and exactly-once output (docs/reliability.md, rows 18, 20, 21, 22, 23).

A `basemap build` subprocess is SIGKILLed after some blocks finished; the rerun recomputes only
the rest and the final tree is byte-identical to a clean run's. Two runs on one output don't
interleave (the lease: of runs racing for it exactly one wins, and a run that loses it stops), a
stale lease is broken, a changed catalog doesn't change a rerun, and a full disk stops the run.
Small settings: the synthetic test world, 512-px blocks, z12-14, the `linear` renderer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from basemap.errors import LeaseHeldError
from basemap.output.storage import LocalStorage
from basemap.pipeline.build import build
from basemap.pipeline.lease import LEASE_KEY, Lease
from basemap.pipeline.ledger import RESUMED
from basemap.pipeline.plan import BuildSettings
from basemap.stac.query import Query
from basemap.synth.tiles import world_bbox
from basemap.types import ZoomRange
from tests.support.cli_runner import EVERY_ITEM
from tests.support.lease_race import (
    lose_the_lease,
    one_winner_each_trial,
    thief_lease,
)

ZOOM = ZoomRange(12, 14)
SETTINGS = BuildSettings(renderer="linear", block_size=512, tile_format="png", feather=32)
#: build.json holds timings: everything else must be the same bytes.
VOLATILE = {"build.json"}


def cli_args(catalog, out, workers: str = "0") -> list[str]:
    b = world_bbox("test")
    return [str(Path(sys.executable).parent / "basemap"), "build", "--bbox",
            f"{b.west},{b.south},{b.east},{b.north}", "--zoom", "12-14", "--out", str(out),
            "--stac", str(catalog), "--renderer", "linear", "--block-size", "512",
            "--tile-format", "png", "--feather", "32", "--workers", workers, "--quiet",
            *EVERY_ITEM]


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (build.json excluded: it holds timings)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and p.relative_to(root).as_posix() not in VOLATILE}


def blocks_of(out: Path) -> dict[str, dict]:
    return {b["block"]: b for b in json.loads((out / "build.json").read_text())["blocks"]}


@pytest.fixture(scope="module")
def clean(small_build):
    """The clean, uninterrupted build (conftest's small_build, same settings as here)."""
    out, settings, zoom = small_build
    assert (settings, zoom) == (SETTINGS, ZOOM)
    return out


def test_rerun_of_a_finished_output_recomputes_nothing(clean, tmp_path, synth_world):
    out = tmp_path / "again"
    shutil.copytree(clean, out)
    before = tree(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
    build(world_bbox("test"), ZOOM, str(out), SETTINGS, Query(str(synth_world)), workers=0)
    assert tree(out) == before
    assert all(b["message"] == RESUMED for b in blocks_of(out).values())
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} == mtimes  # not rewritten


def test_sigkill_then_rerun_is_byte_identical_and_skips_finished_blocks(clean, tmp_path,
                                                                        synth_world):
    out = tmp_path / "killed"
    entries = out / "ledger" / "blocks"
    proc = subprocess.Popen(cli_args(synth_world, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(entries.rglob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build ended before it could be killed: " + \
        proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    done_at_kill = {p.relative_to(entries).with_suffix("").as_posix()
                    for p in entries.rglob("*.json")}
    assert done_at_kill, "no block had finished when the build was killed"
    assert (out / LEASE_KEY).exists()  # the killed run's lease is left behind (stale)
    cogs_at_kill = {p.relative_to(out).as_posix(): p.stat().st_mtime_ns
                    for p in (out / "cogs").rglob("*.tif")}

    r = subprocess.run(cli_args(synth_world, out), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert tree(out) == tree(clean)  # byte-identical final tree, ledger included
    assert not [p for p in out.rglob("*.tmp") if p.is_file()] and not (out / LEASE_KEY).exists()
    blocks = blocks_of(out)
    resumed = {name for name, b in blocks.items() if b["message"] == RESUMED}
    assert resumed == done_at_kill  # finished blocks were not recomputed, the rest were
    assert len(resumed) < len(blocks)
    for name in resumed:  # and their files were not rewritten
        key = f"cogs/{name}.tif"
        if key in cogs_at_kill:
            assert (out / key).stat().st_mtime_ns == cogs_at_kill[key]


def test_half_written_file_under_a_final_name_is_redone(clean, tmp_path, synth_world):
    """A damaged output file (as a non-atomic tool would leave it) fails the ledger check."""
    out = tmp_path / "damaged"
    shutil.copytree(clean, out)
    victim = sorted((out / "tiles" / "14").rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    (out / "cogs" / ".2947.tif.k3j_9x2q.tmp").write_bytes(b"partial")  # a killed writer's temp
    build(world_bbox("test"), ZOOM, str(out), SETTINGS, Query(str(synth_world)), workers=0)
    assert tree(out) == tree(clean)
    assert sum(b["message"] != RESUMED for b in blocks_of(out).values()) == 1


def test_second_run_on_the_same_output_is_refused_while_the_first_runs(clean, tmp_path,
                                                                        synth_world):
    out = tmp_path / "shared"
    first = subprocess.Popen(cli_args(synth_world, out), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / LEASE_KEY).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / LEASE_KEY).exists()
        second = subprocess.run(cli_args(synth_world, out), capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr
        assert "another run" in second.stderr and LEASE_KEY in second.stderr
        assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert tree(out) == tree(clean)  # the refused run wrote nothing into it


def test_lease_is_create_only_and_a_dead_holder_is_broken(tmp_path):
    storage = LocalStorage(str(tmp_path))
    with Lease(storage):
        with pytest.raises(LeaseHeldError):
            Lease(storage).acquire()
    assert not (tmp_path / LEASE_KEY).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket

    (tmp_path / LEASE_KEY).write_text(json.dumps({
        "token": "x", "host": socket.gethostname(), "pid": int(dead),
        "expires": time.time() + 3600}))
    with Lease(storage) as lease:  # the holder's process is gone: broken, taken over
        assert json.loads((tmp_path / LEASE_KEY).read_text())["token"] == lease.token
    (tmp_path / LEASE_KEY).write_text(json.dumps({
        "token": "y", "host": "another-host", "pid": 1, "expires": time.time() - 1}))
    with Lease(storage):  # expired (its heartbeat stopped): broken
        pass


def test_of_runs_racing_for_a_stale_lease_exactly_one_wins(tmp_path):
    """Issue row 7: the stale lease is broken by a delete conditional on its bytes (under an
    flock) and taken by a create-only write, so exactly one of the racing runs wins, every time
    (the read-delete-create of before let two win in most trials)."""
    one_winner_each_trial(lambda trial: LocalStorage(str(tmp_path / f"trial-{trial}")), 30)


def test_a_run_whose_lease_was_taken_over_stops_with_a_clear_error(tmp_path):
    """Issue row 7: the heartbeat finds another run's lease: the run is interrupted, the `with`
    raises LeaseLostError, and the other run's lease is left alone."""
    lose_the_lease(LocalStorage(str(tmp_path)))


def test_a_build_that_loses_its_lease_stops_writing(clean, tmp_path, synth_world):
    """Issue row 7, the CLI: a build (lease renewed every 0.2 s here) whose lease another run
    took over mid-build exits 1 with a clear message, without a traceback, before finishing,
    and leaves the other run's lease in place."""
    out = tmp_path / "lost"
    entries = out / "ledger" / "blocks"
    short_ttl = ("import sys, basemap.pipeline.lease as lease; lease.LEASE_TTL_S = 0.6; "
                 "from basemap.cli import main; sys.argv[0] = 'basemap'; main()")
    proc = subprocess.Popen([sys.executable, "-c", short_ttl, *cli_args(synth_world, out)[1:]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(entries.rglob("*.json")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the build ended before its lease could be taken: " + \
            proc.stderr.read()[-2000:]
        thief = thief_lease()
        (out / "ledger" / ".thief").write_bytes(thief)
        os.replace(out / "ledger" / ".thief", out / LEASE_KEY)  # another run broke it, atomically
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err[-3000:]
    assert "another run took over the lease" in err and "Traceback" not in err, err[-3000:]
    assert (out / LEASE_KEY).read_bytes() == thief
    assert not (out / "build.json").exists()  # it stopped: it did not write on to the end
    assert len(list(entries.rglob("*.json"))) < len(blocks_of(clean))


def test_changed_catalog_uses_the_frozen_manifest_and_reports(clean, tmp_path, synth_world,
                                                             caplog):
    """Row 22: an item that changed in the catalog after the first run doesn't enter a rerun."""
    world = tmp_path / "world"
    shutil.copytree(Path(synth_world).parent, world)
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    items = sorted((world / "sentinel-2-l2a").glob("*/*.json"))
    doc = json.loads(items[0].read_text())
    doc["properties"]["updated"] = "2026-11-24T00:00:00Z"
    items[0].write_text(json.dumps(doc))
    # The frozen manifest's key is over the search parameters, the catalog path among them:
    # copy the output's frozen manifest under the key the new catalog path gives.
    frozen = next((out / "ledger" / "manifests").glob("*.json"))
    search = json.loads(frozen.read_text())["search"]
    from basemap.pipeline.ledger import fingerprint

    search["stac"] = str(world / "catalog.json")
    doc = json.loads(frozen.read_text())
    doc["search"] = search
    frozen.unlink()
    (frozen.parent / f"{fingerprint((), search)[:16]}.json").write_text(json.dumps(doc))
    with caplog.at_level("WARNING", logger="basemap.pipeline.ledger"):
        build(world_bbox("test"), ZOOM, str(out), SETTINGS, Query(str(world / "catalog.json")),
              workers=0)
    assert "catalog changed" in caplog.text and doc_id(items[0]) in caplog.text
    assert all(b["message"] == RESUMED for b in blocks_of(out).values())


def doc_id(path: Path) -> str:
    return json.loads(path.read_text())["id"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("size, workers, full_at", [
    ("400k", "0", ""),  # the disk fills up writing tiles, in this process
    ("100k", "1", "writing cogs/"),  # writing the first COG, in a Dask worker process
])
def test_disk_full_leaves_nothing_under_a_final_name(tmp_path, synth_world, size, workers,
                                                     full_at):
    """Row 18: a small tmpfs fills up mid-build: the run stops (a full disk fails every block
    after it, so it is fatal, not a failed block): exit 1 with a message saying so, no
    traceback, no partial file, no temp file, no scratch folder. When the COG write fills it,
    GDAL's error comes back through Dask as the OSError it was turned into (issue row 9: it
    came back as a plain Exception, so the block "failed" and the run went on to exit 3)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "out"
        r = subprocess.run(cli_args(synth_world, out, workers), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 1, r.stderr[-2000:]
        assert "Error: no space left on the device of the output" in r.stderr, r.stderr[-2000:]
        assert full_at in r.stderr.split("Error: no space left")[-1]
        assert "Traceback" not in r.stderr and "failed:" not in r.stderr, r.stderr[-3000:]
        assert not [p for p in out.rglob("*.tmp") if p.is_file()]
        assert not (out / ".tmp").exists()
        for png in out.rglob("*.png"):  # every published tile is whole
            from PIL import Image

            with Image.open(png) as im:
                im.load()
        from rio_cogeo.cogeo import cog_validate

        for tif in out.rglob("*.tif"):  # and every published COG
            ok, errors, _ = cog_validate(str(tif), quiet=True)
            assert ok, (tif, errors)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
