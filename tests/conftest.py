"""Shared test fixtures: small rasters, and real servers on 127.0.0.1."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """Derived files (the U-Net's ONNX export) in the session's own cache, not the user's."""
    os.environ["BASEMAP_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory):
    """The synthetic Sentinel-2 world (test preset, seed 0), built once per session.

    Returns the path of its static STAC catalog (OUT/catalog.json); items live under
    OUT/sentinel-2-l2a/<item-id>/ with relative COG hrefs. Treat it as read-only.
    """
    from basemap.synth.world import make_world

    return make_world(tmp_path_factory.mktemp("synth_world"), seed=0, preset="test")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS `weed mini`) on free 127.0.0.1 ports, one bucket.

    Yields a tests.s3server.S3Server: .endpoint, .bucket, .env (AWS_* variables for clients and
    subprocesses), .filesystem() (s3fs), .http_get(key). Killed at the end of the session.
    """
    from tests.support.s3server import S3Server

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


# ---- STAC API and HTTP Range servers (tests/support/servers.py) ------------------------------


@pytest.fixture(scope="session")
def mini_world(tmp_path_factory):
    """A handmade static catalog (tests/support/mini_world.py): six Earth Search-shaped items with
    tiny COGs, one without a blue asset, two either side of the antimeridian. Returns
    catalog.json."""
    from tests.support.mini_world import make_mini_world

    return make_mini_world(tmp_path_factory.mktemp("mini_world"))


@pytest.fixture
def range_server():
    """Factory ``range_server(root_dir) -> tests.support.servers.RangeServer`` (started; stopped
    after the test). Range/HEAD support, switchable faults (add_fault), request log (count)."""
    from tests.support.servers import RangeServer

    started = []

    def start(root):
        started.append(RangeServer(root).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def stac_api():
    """Factory ``stac_api(items_dir_or_catalog, rewrite_href=None) -> base URL`` of a real STAC
    API (``rustac serve``, memory backend: core + item-search, NO query extension) loaded with
    the items (a dir of item JSONs, a static catalog, an ItemCollection, or a list of dicts);
    killed after the test."""
    from tests.support.servers import StacApiServer

    started = []

    def start(items, rewrite_href=None):
        started.append(StacApiServer(items, rewrite_href=rewrite_href).start())
        return started[-1].url

    yield start
    for server in started:
        server.stop()


def _serve(catalog_path):
    from tests.support.servers import serve_catalog

    return serve_catalog(catalog_path)


@pytest.fixture(scope="session")
def served_mini_world(mini_world):
    """``mini_world`` served for real: a tests.support.servers.ServedWorld NamedTuple
    ``(stac_api_url, range_server, catalog_path)``; asset hrefs in the API point to the Range
    server. Session-scoped: a test that adds faults must ``range_server.clear_faults()`` after."""
    world, stop = _serve(mini_world)
    yield world
    stop()


@pytest.fixture(scope="session")
def served_world(request):
    """The synthetic world (``synth_world``; ``mini_world`` until basemap.synth exists) served
    for real: ServedWorld ``(stac_api_url, range_server, catalog_path)``. COGs come from the
    Range server (http://127.0.0.1:PORT/...), items from rustac. Session-scoped: clear any
    faults you add (``range_server.clear_faults()``)."""
    import importlib.util

    name = "synth_world" if importlib.util.find_spec("basemap.synth") else "mini_world"
    world, stop = _serve(request.getfixturevalue(name))
    yield world
    stop()


@pytest.fixture(scope="session")
def xyz_build(tmp_path_factory):
    """A tiny hand-made build output: OUT/linear (webp) and OUT/unet (png) tile sets + TileJSON.

    See tests/support/xyz_build.py (bounds, zooms). Treat it as read-only; copy it to add files.
    """
    from tests.support.xyz_build import make_xyz_build

    return make_xyz_build(tmp_path_factory.mktemp("xyz_build"))


@pytest.fixture(scope="session")
def small_build(synth_world, tmp_path_factory):
    """A clean, uninterrupted build of the test world (linear renderer, 512-px blocks, z12-14,
    PNG tiles, in-process). Returns (out_dir, BuildSettings, ZoomRange). Read-only: copy it."""
    from basemap.pipeline.build import build
    from basemap.pipeline.plan import BuildSettings
    from basemap.stac.query import Query
    from basemap.synth.tiles import world_bbox
    from basemap.types import ZoomRange

    settings = BuildSettings(renderer="linear", block_size=512, tile_format="png", feather=32)
    zoom = ZoomRange(12, 14)
    out = tmp_path_factory.mktemp("small_build")
    summary = build(world_bbox("test"), zoom, str(out), settings, Query(str(synth_world)),
                    workers=0)
    assert summary.blocks.get("ok", 0) >= 4 and not summary.failed, summary.text()
    return out, settings, zoom
