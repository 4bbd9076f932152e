"""Shared test fixtures: small rasters, and real servers on 127.0.0.1."""

import pytest


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory):
    """The synthetic Sentinel-2 world (test preset, seed 0), built once per session.

    Returns the path of its static STAC catalog (OUT/catalog.json); items live under
    OUT/sentinel-2-l2a/<item-id>/ with relative COG hrefs. Treat it as read-only.
    """
    from basemap.synth import make_world

    return make_world(tmp_path_factory.mktemp("synth_world"), seed=0, preset="test")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS `weed mini`) on free 127.0.0.1 ports, one bucket.

    Yields a tests.s3server.S3Server: .endpoint, .bucket, .env (AWS_* variables for clients and
    subprocesses), .filesystem() (s3fs), .http_get(key). Killed at the end of the session.
    """
    from s3server import S3Server

    server = S3Server.start(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_out(s3_server, monkeypatch, request):
    """A fresh `s3://bucket/<test-name>-<random>` prefix, with the AWS_* variables set for it."""
    import secrets

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.bucket}/{request.node.name[:40]}-{secrets.token_hex(4)}"
