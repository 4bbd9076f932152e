"""Secrets stay out of logs and records: `basemap -vv build` as a subprocess against a real S3
server (SeaweedFS) and a real STAC API (rustac) on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

#: Where the mini world's tiny COGs have pixels (zone 29N, easting 300 km, northing 2800 km).
BBOX = "-11.0,25.28,-10.98,25.3"
BUILD = ["--bbox", BBOX, "--zoom", "14", "--renderer", "linear", "--block-size", "512",
         "--workers", "0", "--quiet"]


def _basemap(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from basemap.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_vv_build_to_s3_logs_no_credentials(s3_out, s3_server, mini_world):
    """-vv with an s3:// output: botocore's debug output (request headers with signatures and
    X-Amz-Security-Token) is kept out and every log line is redacted. A build with the server's
    credentials finishes with no signature in its log; one with a session token (refused by the
    server at the preflight, exit 2) has the token nowhere in its output."""
    done = _basemap(["-vv", "build", "--stac", str(mini_world), "--out", s3_out, *BUILD],
                    dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DEBUG" in done.stderr  # -vv is on
    assert s3_server.secret_key not in done.stderr
    assert not re.search(r"Signature=[0-9a-f]{16}", done.stderr), done.stderr[-3000:]
    token = "IQoJb3JpZ2luX2VjEFAKESESSIONTOKEN0123456789abcdef"
    env = dict(os.environ, AWS_SESSION_TOKEN=token)
    done = _basemap(["-vv", "build", "--stac", str(mini_world), "--out", s3_out + "-token",
                     *BUILD], env)
    assert "DEBUG" in done.stderr
    assert token[:16] not in done.stderr and token[:16] not in done.stdout


def test_stac_url_token_is_not_recorded_or_logged(served_mini_world, tmp_path):
    """--stac URL?token=SECRET: build.json, manifest, ledger, STAC output and the -vv log hold
    the URL redacted, never the token."""
    secret = "S3CRETt0ken4stac"
    out = tmp_path / "out"
    url = f"{served_mini_world.stac_api_url}/?token={secret}"
    done = _basemap(["-vv", "build", "--stac", url, "--collection", "sentinel-2-l2a",
                     "--datetime", "2000-01-01/..", "--out", str(out), *BUILD], dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "build.json").exists() and (out / "manifest.json").exists()
    assert secret not in done.stderr and secret not in done.stdout
    leaks = [p for p in Path(out).rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert "token=REDACTED" in (out / "build.json").read_text()
