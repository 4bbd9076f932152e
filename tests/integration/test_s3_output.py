"""Bucket output: `--out s3://bucket/prefix` on a real S3 server (SeaweedFS, tests/s3server.py).

The same build as conftest's `small_build`, written to the bucket: the same bytes under the same
keys, the right content types, a tile a web client fetches over plain HTTP, a rerun that resumes
from the ledger in the bucket, create-only leases (of runs racing for a stale one exactly one
wins; a run that loses it stops), a prefix that is not a basemap output refused, a local scratch
folder of the run's own, and the preflight (row 19).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from basemap.errors import ConfigError, LeaseHeldError
from basemap.output.ownership import MARKER, marker_bytes
from basemap.output.s3 import S3Storage
from basemap.pipeline.build import build
from basemap.pipeline.lease import LEASE_KEY, Lease
from basemap.pipeline.ledger import RESUMED
from basemap.stac.query import Query
from basemap.synth.tiles import world_bbox
from tests.support.lease_race import lose_the_lease, one_winner_each_trial


def local_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
            and p.parent.name != ".tmp"}


def bucket_tree(storage: S3Storage) -> dict[str, str]:
    return {k: hashlib.sha256(storage.read_bytes(k)).hexdigest() for k in storage.list("")}


@pytest.fixture(scope="module")
def s3_build(small_build, synth_world, s3_server):
    """small_build's settings built into s3://bucket/<prefix> (in-process, one worker thread)."""
    import os

    saved = {k: os.environ.get(k) for k in s3_server.env}
    os.environ.update(s3_server.env)
    try:
        _, settings, zoom = small_build
        url = f"s3://{s3_server.bucket}/build-{os.getpid()}"
        summary = build(world_bbox("test"), zoom, url, settings, Query(str(synth_world)), workers=0)
        yield S3Storage.from_url(url), summary
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_s3_build_writes_the_same_bytes_as_a_local_build(s3_build, small_build, s3_server,
                                                        monkeypatch):
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    storage, summary = s3_build
    assert summary.blocks.get("ok", 0) >= 4 and not summary.failed
    local = local_tree(small_build[0])
    remote = bucket_tree(storage)
    local.pop("build.json"), remote.pop("build.json")  # timings
    assert remote == local  # tiles, COGs, VRT, TileJSON, manifest, ledger: same keys, same bytes
    assert LEASE_KEY not in remote


def test_s3_objects_have_web_content_types_and_serve_over_http(s3_build, s3_server,
                                                             monkeypatch):
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    storage, _ = s3_build
    keys = storage.list("")
    tile = next(k for k in keys if k.startswith("tiles/14/"))
    cog = next(k for k in keys if k.startswith("cogs/"))
    fs = storage.fs
    assert fs.info(storage._full(tile))["ContentType"] == "image/png"
    assert fs.info(storage._full(cog))["ContentType"].startswith("image/tiff")
    assert fs.info(storage._full("tilejson.json"))["ContentType"] == "application/json"
    s3_server.allow_public_read()
    status, headers, body = s3_server.http_get(f"{storage.prefix}/{tile}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == storage.read_bytes(tile) and body[:8] == b"\x89PNG\r\n\x1a\n"


def test_s3_rerun_resumes_from_the_ledger_in_the_bucket(s3_build, small_build, synth_world,
                                                       s3_server, monkeypatch):
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    storage, first = s3_build
    before = bucket_tree(storage)
    _, settings, zoom = small_build
    again = build(world_bbox("test"), zoom, storage.root, settings, Query(str(synth_world)),
                  workers=0)
    assert again.blocks == first.blocks
    after = bucket_tree(storage)
    before.pop("build.json"), after.pop("build.json")
    assert after == before

    record = json.loads(storage.read_bytes("build.json"))
    assert all(b["message"] == RESUMED for b in record["blocks"])


def test_s3_lease_is_create_only(s3_server, s3_out):
    storage = S3Storage.from_url(s3_out)
    with Lease(storage):
        with pytest.raises(LeaseHeldError):
            Lease(storage).acquire()
    assert storage.size(LEASE_KEY) is None


def test_s3_preflight_refuses_a_missing_bucket_or_bad_credentials(s3_server, s3_out,
                                                                monkeypatch):
    with pytest.raises(ConfigError, match="not writable"):
        S3Storage.from_url(f"s3://no-such-bucket-{s3_server.bucket}/x").check_writable()
    # The CLI: exit 2 before any search (the STAC source doesn't even exist).
    env = dict(s3_server.env, AWS_SECRET_ACCESS_KEY="wrong")
    basemap = str(Path(sys.executable).parent / "basemap")
    r = subprocess.run([basemap, "build", "--bbox", "5.9,44.9,6.1,45.1", "--out", s3_out,
                        "--stac", "/nonexistent/catalog.json", "--renderer", "linear"],
                       capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, **env})
    assert r.returncode == 2, r.stderr
    assert "not writable" in r.stderr and "wrong" not in r.stderr  # no secret in messages


def test_of_runs_racing_for_a_stale_s3_lease_exactly_one_wins(s3_server, s3_out):
    """Issue row 7 on S3: the stale lease is deleted with If-Match its ETag, then taken with
    If-None-Match: exactly one of the racing runs wins, every time."""
    one_winner_each_trial(lambda trial: S3Storage.from_url(f"{s3_out}/trial-{trial}"), 20,
                          spread=0.02)


def test_an_s3_run_whose_lease_was_taken_over_stops(s3_server, s3_out):
    """Issue row 7 on S3: the heartbeat's renewal is conditional on this run's ETag; it fails
    once another run holds the lease: LeaseLostError, the other run's lease left alone."""
    lose_the_lease(S3Storage.from_url(s3_out))


def test_s3_prefix_that_is_not_a_basemap_output_is_refused(s3_server, s3_out):
    """Issue row 1 on S3: a non-empty prefix without the marker is refused, untouched; an empty
    one is claimed (the marker is the first object written)."""
    theirs = S3Storage.from_url(f"{s3_out}/theirs")
    theirs.write_bytes("index.html", b"<p>someone else's site</p>")
    with pytest.raises(ConfigError, match="is not empty and is not a basemap output"):
        theirs.check_writable()
    assert theirs.list("") == ["index.html"]
    ours = S3Storage.from_url(f"{s3_out}/ours")
    ours.check_writable()
    assert ours.list("") == [MARKER] and ours.read_bytes(MARKER) == marker_bytes()
    ours.check_writable()  # its own output: fine, again


def test_s3_scratch_is_the_runs_own_and_removed_at_the_end(synth_world, s3_server, s3_out,
                                                            tmp_path):
    """Issue row 14: a build to S3 makes its files in a local scratch folder of its own (unique
    name, mode 0700, this user's), not in a fixed $TMPDIR/basemap-scratch shared by every run
    and user, and removes it at the end."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    seen: dict[str, int] = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for p in tmpdir.glob("basemap-scratch*"):
                try:
                    st = p.lstat()
                except FileNotFoundError:
                    continue
                seen[p.name] = stat.S_IMODE(st.st_mode) | (st.st_uid == os.getuid()) << 12
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    b = world_bbox("test")
    try:
        r = subprocess.run(
            [str(Path(sys.executable).parent / "basemap"), "build", "--bbox",
             f"{b.west},{b.south},{(b.west + b.east) / 2},{(b.south + b.north) / 2}",
             "--zoom", "12-14", "--out", s3_out, "--stac", str(synth_world), "--renderer",
             "linear", "--block-size", "512", "--workers", "0", "--quiet"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, **s3_server.env, "TMPDIR": str(tmpdir)})
    finally:
        done.set()
        watcher.join()
    assert r.returncode == 0, r.stderr[-3000:]
    assert S3Storage.from_url(s3_out).list("cogs"), "the build wrote no COG"
    assert seen, "no scratch folder was seen"
    assert "basemap-scratch" not in seen  # the shared folder of before
    assert all(name.startswith("basemap-scratch-") and mode == 0o700 | 1 << 12
               for name, mode in seen.items()), {k: oct(v) for k, v in seen.items()}
    assert not list(tmpdir.glob("basemap-scratch*"))  # removed at the end


def test_s3_scratch_of_a_worker_is_in_its_own_temporary_folder(tmp_path):
    """A worker on another machine has its own TMPDIR: the scratch folder a run's storage object
    names is made there, never at the driver's path (which that machine may not have)."""
    storage = S3Storage.from_url("s3://bucket/prefix")
    driver = Path(storage.scratch_dir())
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    code = ("import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
            "print(s.scratch_dir()); s.clean_scratch()")
    made = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(storage),
                          capture_output=True, env={**os.environ, "TMPDIR": str(worker_tmp)},
                          check=True).stdout.decode().strip()
    storage.clean_scratch()
    assert Path(made).parent == worker_tmp and Path(made).name == driver.name
    assert not driver.exists() and not Path(made).exists()  # each removed on its machine
