"""Faults during `basemap build` (docs/reliability.md, rows 7-11, 16-18 and 24), for real.

Every test builds a small part of the synthetic test world (two 512-px blocks, z12-14, the
`linear` renderer, PNG tiles) and compares it with a clean build of the same blocks. Assets come
from a real HTTP Range server with switchable faults and items from a real STAC API (`rustac
serve`), both on 127.0.0.1 and fresh for each test: GDAL caches remote files per process, so new
URLs keep one test's cache out of the next. Worker deaths use real LocalCluster worker processes
of a `basemap build` subprocess. GDAL's retries and timeouts are made short through the
environment variables `basemap.read.scenes.gdal_env` honours (GDAL_HTTP_MAX_RETRY, ...).

The faulty asset is the red band (B04) of item S2A_31THK_20200714_0_L2A, which touches block
13/4232/2946 and not its neighbour 13/4231/2946.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from basemap.pipeline.build import build
from basemap.pipeline.ledger import RESUMED
from basemap.pipeline.plan import BuildSettings
from basemap.stac.query import Query
from basemap.types import BBox, ZoomRange
from tests.support.cli_runner import EVERY_ITEM, run_cli

ZOOM = ZoomRange(12, 14)
SETTINGS = BuildSettings(renderer="linear", block_size=512, tile_format="png", feather=32)
#: Two blocks, 13/4231/2946 and 13/4232/2946 (the blocks are whole: the bbox only picks them).
BBOX = BBox(5.96, 45.0, 5.99, 45.01)
ITEM = "S2A_31THK_20200714_0_L2A"
FAULTY = f"/sentinel-2-l2a/{ITEM}/B04.tif"
HIT, SPARED = "13/4232/2946", "13/4231/2946"
#: Short GDAL retries for the tests (the defaults, 4 retries from 1 s, are for the real world).
FAST_RETRY = {"GDAL_HTTP_MAX_RETRY": "2", "GDAL_HTTP_RETRY_DELAY": "0.05",
              "GDAL_HTTP_TIMEOUT": "1", "GDAL_HTTP_CONNECTTIMEOUT": "1"}


def outputs(root: Path) -> dict[str, str]:
    """sha256 of every published file that depends on pixels: COGs, tiles, ledger entries."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for top in ("cogs", "tiles", "ledger/blocks") for p in sorted((root / top).rglob("*"))
            if p.is_file()}


def of_block(files: dict[str, str], name: str) -> dict[str, str]:
    """The files of one block: its COG, ledger entry and root tile, and its tiles z14-z13."""
    z, x, y = (int(v) for v in name.split("/"))
    mine = {f"cogs/{name}.tif", f"ledger/blocks/{name}.json", f"ledger/blocks/{name}.png"}
    for dz in (0, 1):
        for ty in range(y << dz, (y + 1) << dz):
            mine.update(f"tiles/{z + dz}/{tx}/{ty}.png" for tx in range(x << dz, (x + 1) << dz))
    return {k: v for k, v in files.items() if k in mine}


def blocks_of(out: Path) -> dict[str, dict]:
    return {b["block"]: b for b in json.loads((out / "build.json").read_text())["blocks"]}


def leftovers(out: Path) -> list[Path]:
    """Temporary files left in the output (none may survive a run)."""
    return [p for p in out.rglob("*") if p.is_file() and (p.name.endswith(".tmp")
                                                          or ".tmp" in p.relative_to(out).parts)]


@pytest.fixture(scope="module")
def clean(synth_world, tmp_path_factory):
    """The two blocks built without any fault, from the local catalog."""
    out = tmp_path_factory.mktemp("clean")
    summary = build(BBOX, ZOOM, str(out), SETTINGS, Query(str(synth_world)), workers=0)
    assert summary.blocks == {"ok": 2}, summary.text()
    files = outputs(out)
    assert of_block(files, HIT) and of_block(files, SPARED) and "tiles/12/2116/1473.png" in files
    return files


@pytest.fixture
def world(synth_world):
    """The synthetic world served by a fresh Range server + STAC API (new URLs for GDAL)."""
    from tests.support.servers import serve_catalog

    served, stop = serve_catalog(synth_world)
    yield served
    stop()


def cli_args(stac: str, out: Path, workers: int = 0) -> list[str]:
    return ["build", "--bbox", f"{BBOX.west},{BBOX.south},{BBOX.east},{BBOX.north}",
            "--zoom", "12-14", "--out", str(out), "--stac", stac, "--renderer", "linear",
            "--block-size", "512", "--tile-format", "png", "--feather", "32",
            "--workers", str(workers), "--quiet", *EVERY_ITEM]


# ---- rows 7, 8, 10: one asset misbehaves -------------------------------------------------------


def test_500_500_then_200_is_retried_and_identical_to_a_clean_run(clean, world, tmp_path,
                                                                   monkeypatch):
    """Row 8: GDAL's retry (exponential backoff with jitter) gets through; same bytes."""
    for k, v in FAST_RETRY.items():
        monkeypatch.setenv(k, v)
    srv = world.range_server
    fault = srv.add_fault(FAULTY, "status", status=500, times=2)
    summary = build(BBOX, ZOOM, str(tmp_path), SETTINGS, Query(world.stac_api_url), workers=0)
    assert summary.blocks == {"ok": 2} and not summary.failed, summary.text()
    assert fault.fired == 2
    statuses = [r.status for r in srv.log if r.path == FAULTY]
    assert statuses[:3] == [500, 500, 200], statuses
    assert outputs(tmp_path) == clean


def test_asset_404_skips_the_item_and_marks_the_block_degraded(clean, world, tmp_path,
                                                                monkeypatch, caplog):
    """Row 7: no retry, the item is skipped with a log line naming it, the block is degraded
    (summary, build.json, ledger), and the rest is built as in a clean run."""
    for k, v in FAST_RETRY.items():
        monkeypatch.setenv(k, v)
    srv = world.range_server
    srv.add_fault(FAULTY, "status", status=404)
    with caplog.at_level("WARNING", logger="basemap.read.scenes"):
        summary = build(BBOX, ZOOM, str(tmp_path), SETTINGS, Query(world.stac_api_url), workers=0)
    assert summary.blocks == {"ok": 1, "degraded": 1} and not summary.failed, summary.text()
    assert srv.count(FAULTY, "GET") == 0 and srv.count(FAULTY) == 1  # one HEAD, not retried
    assert ITEM in caplog.text and "B04.tif" in caplog.text and "404" in caplog.text
    blocks = blocks_of(tmp_path)
    assert blocks[HIT]["status"] == "degraded" and ITEM in blocks[HIT]["message"]
    assert blocks[SPARED]["status"] == "ok"
    entry = json.loads((tmp_path / "ledger" / "blocks" / f"{HIT}.json").read_text())
    assert entry["status"] == "degraded" and ITEM in " ".join(entry["notes"])
    files = outputs(tmp_path)
    assert of_block(files, SPARED) == of_block(clean, SPARED)
    # the degraded block is built from the other items: its COG exists, with other pixels
    assert f"cogs/{HIT}.tif" in files and files[f"cogs/{HIT}.tif"] != clean[f"cogs/{HIT}.tif"]


@pytest.mark.parametrize("kind", ["truncate", "corrupt"])
def test_truncated_or_corrupt_cog_fails_its_block_naming_the_href(kind, clean, world, tmp_path,
                                                                   monkeypatch, capsys):
    """Row 10: the error names the href, the block has no output (and no pyramid tile is built
    over its hole), requests are bounded, the other block is built; exit 3."""
    for k, v in FAST_RETRY.items():
        monkeypatch.setenv(k, v)
    srv = world.range_server
    if kind == "truncate":  # every answer stops after 100 bytes of the promised length
        srv.add_fault(FAULTY, "truncate", keep_bytes=100)
    else:  # a whole, well-served file that is not a TIFF
        srv.add_route(FAULTY, b"not a tiff " * 5000, content_type="image/tiff")
    code, _, err = run_cli(cli_args(world.stac_api_url, tmp_path), monkeypatch, capsys)
    assert code == 3, err
    message = blocks_of(tmp_path)[HIT]["message"]
    assert HIT in err and f"AssetError: opening asset red of scene {ITEM} at {srv.url}{FAULTY}" \
        in message and "truncated or corrupt" in message, message
    assert srv.count(FAULTY) <= 3, srv.log  # HEAD + a GET or two, not retried forever
    files = outputs(tmp_path)
    assert not of_block(files, HIT) and of_block(files, SPARED) == of_block(clean, SPARED)
    assert "tiles/12/2116/1473.png" not in files  # its parent is not built over the hole
    assert not leftovers(tmp_path)


# ---- rows 9 and 11: the server keeps failing: the block fails, a rerun retries only it ---------


@pytest.mark.parametrize("fault", [
    pytest.param({"kind": "status", "status": 503}, id="503-storm"),
    pytest.param({"kind": "status", "status": 429, "retry_after": 1}, id="429-storm"),
    pytest.param({"kind": "stall", "seconds": 60}, id="stall"),
])
def test_server_storm_or_stall_fails_the_block_then_a_rerun_finishes(fault, clean, world,
                                                                     tmp_path, monkeypatch,
                                                                     capsys):
    """Rows 9, 11: GDAL retries each request MAX_RETRY times with backoff (a stall is a timeout,
    retried the same way), then the block fails, the other goes on, exit 3 listing it; with the
    server healthy again a rerun recomputes only the failed block and ends exit 0."""
    for k, v in FAST_RETRY.items():
        monkeypatch.setenv(k, v)
    srv = world.range_server
    srv.add_fault(FAULTY, **fault)
    t0 = time.monotonic()
    code, _, err = run_cli(cli_args(world.stac_api_url, tmp_path), monkeypatch, capsys)
    took = time.monotonic() - t0
    assert code == 3, err
    assert "1 block(s) failed" in err and HIT in err and "run the same command again" in err
    attempts = [r for r in srv.log if r.path == FAULTY]
    assert len(attempts) == 1 + int(FAST_RETRY["GDAL_HTTP_MAX_RETRY"]), attempts  # bounded
    assert all(r.status == fault.get("status") for r in attempts)  # None: stalled, timed out
    assert took < 60, f"the stalled build took {took:.0f} s: timeouts did not fire"
    blocks = blocks_of(tmp_path)
    assert blocks[HIT]["status"] == "failed" and ITEM in blocks[HIT]["message"]
    assert blocks[HIT]["message"].startswith("AssetError:") and "rerun" in blocks[HIT]["message"]
    assert blocks[SPARED]["status"] == "ok"
    assert not of_block(outputs(tmp_path), HIT)

    srv.clear_faults()
    code, _, err = run_cli(cli_args(world.stac_api_url, tmp_path), monkeypatch, capsys)
    assert code == 0, err
    blocks = blocks_of(tmp_path)
    assert blocks[SPARED]["message"] == RESUMED  # not recomputed
    assert blocks[HIT]["status"] == "ok" and blocks[HIT]["message"] != RESUMED
    assert outputs(tmp_path) == clean
    assert not leftovers(tmp_path)


# ---- row 24: an invalid COG is never published ------------------------------------------------


def test_invalid_cog_is_not_published_and_its_block_fails(clean, synth_world, tmp_path,
                                                          monkeypatch):
    """Row 24: the first COG written is made invalid (its overviews rewritten before the main
    image's data, as a plain GTiff + later overviews does); rio-cogeo's validation rejects it,
    nothing is published under its name, the block fails, the other is built."""
    import rasterio
    import rio_cogeo.cogeo as cogeo

    real = cogeo.cog_translate
    broken = []

    def cog_translate_then_break(src, dst, *args, **kwargs):  # injects the fault only
        real(src, dst, *args, **kwargs)
        if broken:
            return
        with rasterio.open(dst) as ds:
            profile, data = ds.profile, ds.read()
        profile.update(driver="GTiff", tiled=True, blockxsize=256, blockysize=256)
        with rasterio.open(dst, "w", **profile) as ds:
            ds.write(data)
        with rasterio.open(dst, "r+") as ds:
            ds.build_overviews([2])
        broken.append(dst)

    monkeypatch.setattr(cogeo, "cog_translate", cog_translate_then_break)
    summary = build(BBOX, ZOOM, str(tmp_path), SETTINGS, Query(str(synth_world)), workers=0)
    assert broken and len(summary.failed) == 1 and "InvalidCOGError" in summary.failed[0]
    victim = summary.failed[0].split(" ")[0]
    other = SPARED if victim == HIT else HIT
    files = outputs(tmp_path)
    assert not of_block(files, victim) and of_block(files, other) == of_block(clean, other)
    assert not leftovers(tmp_path) and not Path(broken[0]).exists()


# ---- rows 16, 17: worker processes die ---------------------------------------------------------


def cli_process(args: list[str], env: dict) -> subprocess.Popen:
    exe = str(Path(sys.executable).parent / "basemap")
    return subprocess.Popen([exe, *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_worker_killed_mid_task_reruns_it_elsewhere_same_bytes(clean, world, tmp_path):
    """Row 16: the worker process reading the faulty asset (held by a stall) is SIGKILLed; the
    task runs again on another worker; no partial or duplicate object; same bytes as clean."""
    import psutil

    srv = world.range_server
    srv.add_fault(FAULTY, "stall", seconds=120, times=1)  # holds the task until the kill
    out = tmp_path / "out"
    proc = cli_process(cli_args(world.stac_api_url, out, workers=2), {"GDAL_HTTP_TIMEOUT": "100"})
    try:
        deadline = time.monotonic() + 120
        stalled = None
        while stalled is None and time.monotonic() < deadline and proc.poll() is None:
            stalled = next((r for r in list(srv.log) if r.status is None), None)
            time.sleep(0.05)
        assert stalled is not None, proc.communicate(timeout=30)
        victims = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if any(c.laddr.port == stalled.port for c in p.net_connections("tcp"))]
        assert len(victims) == 1, victims  # the worker process waiting on the stalled request
        assert not (out / "ledger" / "blocks" / f"{HIT}.json").exists()  # mid-task
        victims[0].send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert not victims[0].is_running()
    assert outputs(out) == clean and not leftovers(out)
    assert sorted(blocks_of(out)) == sorted([HIT, SPARED])  # each block once
    assert srv.count(FAULTY, "HEAD") >= 2  # asked again by the task's second run


@pytest.mark.slow
def test_worker_over_its_memory_limit_fails_the_block_after_allowed_failures(clean, synth_world,
                                                                              tmp_path):
    """Row 17: one block task grows its worker past BASEMAP_WORKER_MEMORY each time it runs;
    the nanny restarts the worker; after ALLOWED_FAILURES + 1 deaths the block fails
    (KilledWorker), the other block is built, the run exits 3 in bounded time."""
    from basemap.pipeline.graph import ALLOWED_FAILURES

    marker = tmp_path / "victim"
    env = {
        "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([str(Path(__file__).parents[1] / "support"
                                                     / "fault_plugin.py")]),
        "FAULT_HOG_MARKER": str(marker), "FAULT_HOG_MB": "1200",
        "BASEMAP_WORKER_MEMORY": "800MB",
    }
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = cli_process(cli_args(str(synth_world), out, workers=2), env)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    took = time.monotonic() - t0
    assert proc.returncode == 3, err[-3000:]
    assert marker.exists()
    failed = [n for n, b in blocks_of(out).items() if b["status"] == "failed"]
    assert len(failed) == 1 and "KilledWorker" in blocks_of(out)[failed[0]]["message"], err
    assert f"on {ALLOWED_FAILURES + 1} different workers" in blocks_of(out)[failed[0]]["message"]
    assert failed[0] in err and "1 block(s) failed" in err
    other = SPARED if failed[0] == HIT else HIT
    files = outputs(out)
    assert not of_block(files, failed[0]) and of_block(files, other) == of_block(clean, other)
    assert took < 200
