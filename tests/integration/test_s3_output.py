"""Bucket output: `--out s3://bucket/prefix` on a real S3 server (SeaweedFS, tests/s3server.py).

The same build as conftest's `small_build`, written to the bucket: the same bytes under the same
keys, the right content types, a tile a web client fetches over plain HTTP, a rerun that resumes
from the ledger in the bucket, create-only leases, and the preflight (row 19).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from basemap.build import build
from basemap.errors import ConfigError, LeaseHeldError
from basemap.lease import LEASE_KEY, Lease
from basemap.ledger import RESUMED
from basemap.output.s3 import S3Storage
from basemap.synth.tiles import world_bbox


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
        summary = build(world_bbox("test"), zoom, url, settings, str(synth_world), workers=0,
                        progress=False)
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
    again = build(world_bbox("test"), zoom, storage.root, settings, str(synth_world), workers=0,
                  progress=False)
    assert again.blocks == first.blocks
    after = bucket_tree(storage)
    before.pop("build.json"), after.pop("build.json")
    assert after == before
    import json

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
