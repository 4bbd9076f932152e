"""`basemap build` on the synthetic world: outputs, partition invariance, zone edge, bad inputs.

Small settings keep this fast (test world of 4 x 3 km tiles, 512-px blocks, z12-14, the `linear`
renderer for pipeline mechanics). The seam excess of the U-Net is in test_build_seams.py.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mercantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rio_cogeo.cogeo import cog_validate

from basemap.grid import ORIGIN_SHIFT, Block, lonlat_to_px, tile_bounds_mercator
from basemap.output.tiles import assemble, reduce2x
from basemap.pipeline.build import build
from basemap.pipeline.plan import BlockJob, BuildSettings
from basemap.stac.query import Query
from basemap.synth.tiles import world_bbox
from basemap.types import BBox, ZoomRange
from tests.support.cli_runner import run_cli
from tests.support.stac_check import validate_stac

ZOOM = ZoomRange(12, 14)
SETTINGS = BuildSettings(renderer="linear", block_size=512, tile_format="png", feather=32)


def _build(catalog, out, bbox=None, workers=0, settings=SETTINGS, zoom=ZOOM):
    return build(bbox or world_bbox("test"), zoom, str(out), settings, Query(str(catalog)),
                 workers=workers)


@pytest.fixture(scope="module")
def full(synth_world, tmp_path_factory):
    """The whole test bbox in one run, on a real 1-process LocalCluster (spawn)."""
    out = tmp_path_factory.mktemp("full")
    summary = _build(synth_world, out, workers=1)
    return out, summary


def _tiles(root, z):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(Path(root, "tiles", str(z)).rglob("*.png"))}


def _cog_pixels(root):
    out = {}
    for p in sorted(Path(root, "cogs").rglob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.relative_to(root).as_posix()] = ds.read()
    return out


def test_outputs(full):
    out, summary = full
    assert summary.blocks.get("ok", 0) >= 4 and not summary.failed
    assert set(summary.tiles) == {12, 13, 14}
    cogs = list(Path(out, "cogs").rglob("*.tif"))
    assert len(cogs) == summary.blocks["ok"]
    for p in cogs:
        ok, errors, _ = cog_validate(p, quiet=True)
        assert ok, errors
        with rasterio.open(p) as ds:
            assert ds.count == 4 and ds.dtypes[0] == "uint8" and ds.overviews(1) == [2]
            assert ds.colorinterp[3].name == "alpha"
    tj = json.loads(Path(out, "tilejson.json").read_text())
    assert tj["tilejson"] == "3.0.0" and tj["tiles"] == ["tiles/{z}/{x}/{y}.png"]
    assert (tj["minzoom"], tj["maxzoom"]) == (12, 14)
    assert tj["attribution"] == "Contains modified Copernicus Sentinel data"
    rec = json.loads(Path(out, "build.json").read_text())
    for key in ("bbox", "zoom", "settings", "stride", "halo", "resampling", "compositing",
                "items", "version", "model"):
        assert key in rec, key
    assert rec["settings"]["block_size"] == 512 and len(rec["items"]) == summary.scenes
    # OUT/stac/ (issue 13): one valid Item per COG in a valid Collection.
    coll, items = validate_stac(Path(out))
    assert sorted(Path(out, "stac", "items", i["assets"]["data"]["href"]).resolve()
                  for i in items) == sorted(p.resolve() for p in cogs)
    assert any(ln["rel"] == "tilejson" for ln in coll["links"])


def test_vrt_returns_the_cog_pixels(full):
    out, _ = full
    with rasterio.open(out / "mosaic.vrt") as vrt:
        mosaic = vrt.read()
        t = vrt.transform
        for p in Path(out, "cogs").rglob("*.tif"):
            with rasterio.open(p) as ds:
                col, row = ~t * (ds.transform.c, ds.transform.f)
                col, row = round(col), round(row)
                assert np.array_equal(mosaic[:, row:row + ds.height, col:col + ds.width],
                                      ds.read())
        # outside every block: transparent
        assert mosaic[3].min() == 0


def test_every_tile_agrees_with_mercantile_and_the_pyramid(full):
    out, _ = full
    with rasterio.open(out / "mosaic.vrt") as vrt:
        mosaic, t = vrt.read(), vrt.transform
    n = 0
    for p in Path(out, "tiles").rglob("*.png"):
        z, x, y = (int(v) for v in p.relative_to(out / "tiles").with_suffix("").parts)
        assert tile_bounds_mercator(x, y, z) == pytest.approx(
            tuple(mercantile.xy_bounds(x, y, z)), abs=1e-6)
        tile = np.moveaxis(np.asarray(Image.open(p).convert("RGBA")), -1, 0)
        if z == 14:  # the max-zoom tile is exactly the mosaic's pixels at its mercantile bounds
            b = mercantile.xy_bounds(x, y, z)
            col, row = (round(v) for v in ~t * (b.left, b.top))
            assert np.array_equal(tile, mosaic[:, row:row + 256, col:col + 256]), p
        else:  # a lower tile is the exact reduction of its four children (invariant 6)
            kids = []
            for c in mercantile.children(x, y, z):
                q = out / "tiles" / f"{c.z}/{c.x}/{c.y}.png"
                kids.append((c, np.moveaxis(np.asarray(Image.open(q).convert("RGBA")), -1, 0)
                             if q.exists() else None))
            order = sorted(kids, key=lambda k: (k[0].y, k[0].x))
            assert np.array_equal(tile, reduce2x(assemble(tuple(k[1] for k in order)))), p
        n += 1
    assert n > 10


def test_partition_invariance(full, synth_world, tmp_path):
    """Two halves built into other folders give byte-identical z14 tiles and the same COG
    pixels as the whole bbox built in one run (docs/design.md, invariant 2)."""
    out, _ = full
    bb = world_bbox("test")
    mid = 6.001  # not on a block border: the blocks straddling it are built by both halves
    halves = [BBox(bb.west, bb.south, mid, bb.north), BBox(mid, bb.south, bb.east, bb.north)]
    parts = [tmp_path / "west", tmp_path / "east"]
    for half, part in zip(halves, parts, strict=True):
        _build(synth_world, part, bbox=half)
    whole = _tiles(out, 14)
    merged = {}
    for part in parts:
        for key, data in _tiles(part, 14).items():
            assert merged.setdefault(key, data) == data, f"halves disagree on {key}"
    assert merged.keys() == whole.keys()
    diff = [k for k in whole if whole[k] != merged[k]]
    assert not diff, f"{len(diff)} max-zoom tiles differ, e.g. {diff[:3]}"
    cogs = _cog_pixels(out)
    half_cogs = {**_cog_pixels(parts[0]), **_cog_pixels(parts[1])}
    assert cogs.keys() == half_cogs.keys()
    for key in cogs:
        assert np.array_equal(cogs[key], half_cogs[key]), key


def _world_copy(synth_world, tmp_path, scl=None):
    """A copy of the test world; with `scl`, every SCL pixel set to that class."""
    root = tmp_path / "world"
    shutil.copytree(Path(synth_world).parent, root)
    for path in root.glob("sentinel-2-l2a/*/SCL.tif") if scl is not None else ():
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            ds.write(np.full((1, ds.height, ds.width), scl, np.uint8))
    return root


def test_no_nodata_stripe_at_the_utm_zone_edge(synth_world, tmp_path):
    """Items in zones 31 and 32 meet at 6 E. With clouds masked off (SCL all vegetation), every
    pixel of a bbox straddling 6 E is valid: no transparent stripe where the zones meet."""
    root = _world_copy(synth_world, tmp_path, scl=4)
    bb = world_bbox("test")
    small = BBox(5.99, bb.south + 0.002, 6.01, bb.north - 0.002)
    _build(root / "catalog.json", tmp_path / "out", bbox=small, zoom=ZoomRange(14, 14))
    with rasterio.open(tmp_path / "out" / "mosaic.vrt") as vrt:
        alpha = vrt.read(4)
        t = vrt.transform
    ox, oy = round((t.c + ORIGIN_SHIFT) / t.a), round((ORIGIN_SHIFT - t.f) / t.a)
    x0, y0 = lonlat_to_px(small.west, small.north, 14)
    x1, y1 = lonlat_to_px(small.east, small.south, 14)
    inside = alpha[int(y0) + 1 - oy:int(y1) - oy, int(x0) + 1 - ox:int(x1) - ox]
    assert inside.size > 20000
    assert (inside == 255).all(), f"{(inside == 0).sum()} transparent pixels inside the bbox"


def test_build_over_http_matches_local(full, served_world, tmp_path):
    """The same blocks read from a real STAC API + HTTP Range server give the same bytes."""
    out, _ = full
    bb = world_bbox("test")
    small = BBox(5.995, bb.south + 0.004, 6.005, bb.north - 0.004)
    summary = _build(served_world.stac_api_url, tmp_path, bbox=small, zoom=ZoomRange(14, 14))
    assert summary.blocks.get("ok") and served_world.range_server.count() > 0
    local = _tiles(out, 14)
    remote = _tiles(tmp_path, 14)
    assert remote and all(local[k] == v for k, v in remote.items())
    # what each block's reads cost is recorded: the server sent those bytes (and a few more,
    # for the preflight's open of one asset per source, which is not a block's)
    blocks = json.loads((tmp_path / "build.json").read_text())["blocks"]
    sent = sum(r.sent for r in served_world.range_server.log if r.path.endswith(".tif"))
    got = sum(b["reads"]["bytes"] for b in blocks)
    assert 0 < got <= sent and got == summary.reads.bytes
    assert all(b["reads"]["requests"] > 0 and b["reads"]["tile_bytes"] > 0 for b in blocks
               if b["status"] == "ok")
    assert "HTTP requests" in summary.text()


def test_tokens_are_deterministic(full, synth_world):
    """Dask keys come from __dask_tokenize__: equal in two processes for equal jobs."""
    from dask.base import tokenize

    from basemap.output.storage import LocalStorage
    from basemap.stac.manifest import read_manifest

    scenes = tuple(read_manifest(full[0] / "manifest.json"))
    job = BlockJob(Block(4232, 2946, 512, 14), scenes, SETTINGS, LocalStorage("/x"))
    code = (
        "from basemap.pipeline.plan import BlockJob, BuildSettings; from basemap.grid import Block;"
        "from basemap.stac.manifest import read_manifest;"
        "from basemap.output.storage import LocalStorage;"
        "from dask.base import tokenize;"
        f"s=tuple(read_manifest({str(full[0] / 'manifest.json')!r}));"
        "print(tokenize(BlockJob(Block(4232, 2946, 512, 14), s, BuildSettings(renderer='linear',"
        " block_size=512, tile_format='png', feather=32), LocalStorage('/x'))))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert tokenize(job) == other
    assert tokenize(job) != tokenize(BlockJob(job.block, scenes[:-1], SETTINGS, job.storage))


# ---- bad inputs (docs/reliability.md, rows 1-6, 13) ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bbox", "5,46,6,45"], "south=46.0 must be less than north"),
        (["--bbox", "5,-95,6,45"], "outside -90..90"),
        (["--bbox", "nan,45,6,46"], "finite"),
        (["--bbox", "5,45,6,46", "--zoom", "15-3"], "reversed"),
        (["--bbox", "5,45,6,46", "--zoom", "0-20"], "above the supported"),
        (["--bbox", "5,45,6,46", "--zoom", "-1-3"], "zoom"),
        (["--bbox", "5,45,6,46", "--block-size", "768"], "block-size"),
        (["--bbox", "5,45,6,46", "--window", "128", "--overlap", "100"], "overlap"),
    ],
)
def test_bad_input_exits_2_before_network(args, message, range_server, tmp_path, monkeypatch,
                                          capsys):
    srv = range_server(tmp_path)
    code, _, err = run_cli(["build", "--stac", srv.url, "--out", str(tmp_path / "o"),
                            "--renderer", "linear", *args], monkeypatch, capsys)
    assert code == 2, err
    assert message in err
    assert srv.count() == 0, "no network call before the input is validated"
    assert not (tmp_path / "o" / "tiles").exists()


def test_unwritable_local_output_exits_2_before_any_work(range_server, tmp_path, monkeypatch,
                                                         capsys):
    """Row 19, local: --out under a regular file cannot be created; preflight says so, exit 2,
    before the STAC source is asked anything (root ignores permission bits, so a file is used)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    srv = range_server(tmp_path)
    code, _, err = run_cli(["build", "--stac", srv.url, "--bbox", "5.99,45,6.01,45.01",
                            "--out", str(blocker / "out"), "--renderer", "linear"],
                           monkeypatch, capsys)
    assert code == 2, err
    assert "not writable" in err and "--out" in err
    assert srv.count() == 0, "the preflight comes before any network call"


def test_zero_items_exit_0_no_tiles(synth_world, tmp_path, monkeypatch, capsys):
    code, out, _ = run_cli(["build", "--stac", str(synth_world), "--bbox", "10,10,10.01,10.01",
                            "--out", str(tmp_path), "--renderer", "linear", "--workers", "0",
                            "--quiet"], monkeypatch, capsys)
    assert code == 0
    assert "No items found" in out
    assert not (tmp_path / "tiles").exists() and not (tmp_path / "cogs").exists()


def test_item_without_blue_is_skipped(synth_world, tmp_path, caplog):
    root = _world_copy(synth_world, tmp_path)
    item = sorted(root.glob("sentinel-2-l2a/*/*.json"))[0]
    doc = json.loads(item.read_text())
    del doc["assets"]["blue"]
    item.write_text(json.dumps(doc))
    small = BBox(5.995, 44.997, 6.0, 45.0)
    summary = _build(root / "catalog.json", tmp_path / "out", bbox=small, zoom=ZoomRange(14, 14))
    assert f"skipping item {doc['id']}: no 'blue' asset" in caplog.text
    assert summary.blocks.get("ok") and not summary.failed


def test_all_cloud_is_filled_not_a_hole(synth_world, tmp_path, monkeypatch, capsys):
    """Row 13: every SCL pixel is cloud: no observation is accepted, yet nothing is left
    transparent: every pixel a scene covers is filled from the rejected observations, recorded
    per block (build.json) and per pixel (the provenance COG), exit 0."""
    root = _world_copy(synth_world, tmp_path, scl=9)
    code, out, err = run_cli(
        ["build", "--stac", str(root / "catalog.json"), "--bbox", "5.995,44.997,6.0,45.0",
         "--zoom", "14", "--out", str(tmp_path / "out"), "--renderer", "linear",
         "--block-size", "512", "--workers", "0", "--quiet"], monkeypatch, capsys)
    assert code == 0, err
    assert "failed" not in out
    rec = json.loads((tmp_path / "out" / "build.json").read_text())
    assert rec["blocks"] and {b["status"] for b in rec["blocks"]} == {"ok"}
    assert {b["filled"] for b in rec["blocks"]} == {1.0} and rec["filled_fraction"] == 1.0
    for b in rec["blocks"]:
        with rasterio.open(tmp_path / "out" / b["cog"]) as ds:
            alpha = ds.read(4)
        with rasterio.open(tmp_path / "out" / b["cog"].replace("cogs/", "provenance/")) as ds:
            count, filled = ds.read()
        assert (alpha == 255).any() and count.max() == 0
        # Opaque exactly where filled: transparent only beyond every scene's footprint.
        assert np.array_equal(alpha == 255, filled == 255)


def test_latitude_clamp_and_antimeridian_plan(synth_world, tmp_path, monkeypatch, capsys):
    """Rows 2-3: latitudes beyond Web Mercator are clamped with a warning; a bbox across 180
    plans blocks at both edges of the world and searches one box with west > east."""
    code, out, err = run_cli(["build", "--stac", str(synth_world), "--bbox", "5,80,6,89.5",
                              "--zoom", "10", "--out", str(tmp_path), "--renderer", "linear",
                              "--workers", "0", "--quiet"], monkeypatch, capsys)
    assert code == 0 and "clamped" in err and "No items found" in out
    from basemap.grid import bbox_regions, plan_blocks
    from basemap.pipeline.plan import search_bbox

    bbox = BBox(179.95, -17.0, -179.95, -16.9)
    blocks = plan_blocks(bbox_regions(bbox, 14), 512, 14)
    world = 256 << 14
    assert {b.region.x0 == 0 for b in blocks} == {True, False}
    assert {b.region.x1 == world for b in blocks} == {True, False}
    box = search_bbox(blocks, SETTINGS, SETTINGS.make_renderer())
    assert box.crosses_antimeridian and box.west < 179.95 and box.east > -179.95


def test_gpu_resource_only_when_advertised():
    """Block tasks are annotated with GPU only if some worker advertises it (else they would
    never run)."""
    from distributed import Client, LocalCluster

    from basemap.pipeline.graph import gpu_slots

    for resources, expected in ((None, False), ({"GPU": 1}, True)):
        with LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                          dashboard_address=":0", resources=resources) as cluster, \
                Client(cluster) as client:
            assert (gpu_slots(client)[0] > 0) is expected
