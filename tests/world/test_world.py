"""World planning: shards on the global block grid, land mask, and `basemap plan`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from basemap import grid
from basemap.cli import cli
from basemap.errors import InputError, PartialBuildError
from basemap.types import BBox
from basemap.world import plan as world
from tests.support.cli_runner import EVERY_ITEM


def test_land_mask_knows_land_from_ocean():
    land, cell = world.land_mask()
    assert land.shape == (720, 1440) and cell == 0.25

    def at(lat, lon):
        return land[int((90 - lat) / cell), int((lon + 180) / cell)]

    for lat, lon in [(46.2, 6.1), (23, 10), (-25, 135), (40, -100), (-80, 0), (64, -20)]:
        assert at(lat, lon), (lat, lon)  # Geneva, Sahara, Australia, USA, Antarctica, Iceland
    for lat, lon in [(0, -140), (40, -30), (-40, 80), (30, -160)]:
        assert not at(lat, lon), (lat, lon)  # Pacific, Atlantic, Indian Ocean
    # Earth is ~29% land by area; in 0.25-degree cells (any land; lakes count) rather more.
    assert 0.25 < land.mean() < 0.45


def test_world_plan_counts_are_sane():
    p = world.plan(zoom=14, block_size=4096, shard_size=8, land_only=True)
    s = world.summary(p)
    assert p.blocks_total == 1024 * 1024
    # Web Mercator inflates high latitudes (Antarctica, Greenland), and the mask is dilated by one
    # cell: between the area fraction (0.29) and 0.6.
    assert 0.29 < s["land_fraction_of_blocks"] < 0.6
    assert s["tiles_max_zoom"] == p.land_blocks * 256
    assert p.shard_zoom == 7  # 8 blocks x 4096 px = 128 tiles at z14 = one tile at z7
    ids = {sh.id for sh in p.shards}
    assert len(ids) == len(p.shards)
    everything = world.plan(zoom=14, block_size=4096, shard_size=8, land_only=False)
    assert len(everything.shards) == 128 * 128 > len(p.shards)


def test_shard_bbox_covers_exactly_its_blocks():
    """A build over a shard's bbox must plan the shard's blocks and no neighbour's."""
    p = world.plan(zoom=14, block_size=4096, shard_size=4, land_only=True,
                   regions=[BBox.parse("5.9,45.9,6.1,46.1"), BBox.parse("-75,-55,-60,-50")])
    assert p.shards
    for sh in p.shards:
        regions = grid.bbox_regions(BBox(*sh.bbox), 14)
        blocks = grid.plan_blocks(regions, 4096, 14)
        bx0, by0, bx1, by1 = sh.blocks
        assert {(b.bx, b.by) for b in blocks} == {
            (x, y) for x in range(bx0, bx1) for y in range(by0, by1)}


def test_region_plan_crossing_the_antimeridian_keeps_both_sides():
    p = world.plan(zoom=14, block_size=4096, shard_size=1, land_only=True,
                   regions=[BBox.parse("179,-18,-179,-16")])  # Fiji
    columns = {sh.blocks[0] for sh in p.shards}
    assert min(columns) < 10 and max(columns) > 1000
    ocean = world.plan(zoom=14, block_size=4096, shard_size=1, land_only=True,
                       regions=[BBox.parse("-125,-45,-124,-44")])  # open Pacific
    assert ocean.shards == () and ocean.blocks_total > 0


@pytest.mark.parametrize("bad", [{"block_size": 1000}, {"shard_size": 3}, {"shard_size": 0}])
def test_plan_rejects_sizes_that_do_not_tile(bad):
    kwargs = {"zoom": 14, "block_size": 4096, "shard_size": 8} | bad
    with pytest.raises(InputError):
        world.plan(**kwargs)


def test_plan_cli_writes_a_plan_that_reads_back(tmp_path):
    out = tmp_path / "shards.json"
    r = CliRunner().invoke(cli, ["plan", "--bbox", "5.9,45.9,6.1,46.1", "--shard-size", "1",
                                 "--block-size", "2048", "--out", str(out)])
    assert r.exit_code == 0, r.output
    p = world.Plan.read(out)
    assert p.block_size == 2048 and len(p.shards) == json.loads(out.read_text())["summary"][
        "shards"]
    assert all(np.isfinite(sh.bbox).all() for sh in p.shards)
    r = CliRunner().invoke(cli, ["plan"])
    assert r.exit_code != 0


def _world_run(synth_world, out, plan_args: list[str], *run_args: str):
    """`basemap plan PLAN_ARGS` (512-px blocks) then `basemap world run` of the test world into
    ``out`` (linear renderer, PNG tiles); returns the plan."""
    plan_path = out.parent / f"{out.name}-plan.json"
    r = CliRunner().invoke(cli, ["plan", *plan_args, "--block-size", "512", "--out",
                                 str(plan_path)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["world", "run", str(plan_path), "--out", str(out), "--stac",
                                 str(synth_world), "--renderer", "linear", "--tile-format", "png",
                                 "--feather", "32", "--workers", "0", "--quiet", *EVERY_ITEM,
                                 *run_args])
    assert r.exit_code == 0, r.output
    return world.Plan.read(plan_path)


def _tiles(out) -> dict[str, bytes]:
    """Every tile of an output: "z/x/y.png" -> bytes."""
    return {p.relative_to(out / "tiles").as_posix(): p.read_bytes()
            for p in (out / "tiles").rglob("*.png")}


@pytest.fixture(scope="module")
def shards_of_2(synth_world, tmp_path_factory):
    """A world run of the test world in shards of 2x2 blocks: (plan, output folder)."""
    from basemap.synth.tiles import world_bbox

    out = tmp_path_factory.mktemp("world") / "s2"
    p = _world_run(synth_world, out, ["--bbox", str(world_bbox("test")), "--shard-size", "2"])
    return p, out


@pytest.mark.slow
def test_world_run_builds_shards_then_an_exact_low_zoom_pyramid(small_build, shards_of_2):
    """`basemap world run` over a plan of the test world: shard tiles match a plain build's
    max-zoom pixels; every low zoom is the exact 2x reduction of its children (PNG: lossless)."""
    from PIL import Image

    from basemap.output.tiles import assemble, reduce2x

    reference, settings, _ = small_build
    p, out = shards_of_2
    assert p.shard_zoom == 12 and 1 <= len(p.shards) <= 6
    for z in (14, 13):  # the blocks' own tiles: the same bytes as the plain build's
        for ref in (reference / "tiles" / str(z)).rglob("*.png"):
            got = out / ref.relative_to(reference)
            assert got.read_bytes() == ref.read_bytes(), got

    def rgba(path):
        with Image.open(path) as im:
            return np.moveaxis(np.asarray(im.convert("RGBA")), -1, 0)

    assert (out / "tiles" / "0" / "0" / "0.png").is_file()
    for z in range(0, 12):  # each pyramid tile = exact reduction of its children
        for tile in (out / "tiles" / str(z)).rglob("*.png"):
            x, y = int(tile.parent.name), int(tile.stem)
            kids = []
            for dy in (0, 1):
                for dx in (0, 1):
                    k = out / "tiles" / str(z + 1) / str(2 * x + dx) / f"{2 * y + dy}.png"
                    kids.append(rgba(k) if k.is_file() else None)
            assert np.array_equal(rgba(tile), reduce2x(assemble(tuple(kids)))), tile


@pytest.mark.slow
def test_world_run_of_one_block_shards_builds_every_zoom_as_larger_shards_do(
        shards_of_2, synth_world, tmp_path):
    """Issue 32: with `--shard-size 1` the shard zoom is the blocks' root zoom; the world
    pyramid still builds every zoom below it, the same tiles, byte for byte, as shards of 2x2
    blocks over the same blocks (each shard's bbox planned again in one-block shards)."""
    p2, out2 = shards_of_2
    out = tmp_path / "s1"
    regions = [a for sh in p2.shards for a in ("--bbox", sh.bbox_arg())]
    p1 = _world_run(synth_world, out, [*regions, "--shard-size", "1"])
    assert p1.shard_zoom == 13 and len(p1.shards) == 4 * len(p2.shards)
    tiles, expected = _tiles(out), _tiles(out2)
    assert {int(k.split("/")[0]) for k in tiles} == set(range(15))  # z0..z14, z0..z12 included
    assert sorted(tiles) == sorted(expected)
    assert all(tiles[k] == expected[k] for k in expected)

    # An output of a run before the fix: entries without root tiles. The pyramid names the shard
    # (exit 3); `world run --index` of that shard rebuilds the block, and then the pyramid.
    from dataclasses import replace

    from basemap.output.storage import open_storage
    from basemap.pipeline.ledger import Ledger

    ledger = Ledger(open_storage(str(out)))
    index, shard = next((i, sh) for i, sh in enumerate(p1.shards)
                        if ledger.root(f"13/{sh.blocks[0]}/{sh.blocks[1]}") is not None)
    name = f"13/{shard.blocks[0]}/{shard.blocks[1]}"
    ledger.record(replace(ledger.read(name), root=False), None)
    ledger.storage.delete(Ledger.root_key(name))
    plan_path = str(tmp_path / "s1-plan.json")
    r = CliRunner().invoke(cli, ["world", "pyramid", plan_path, "--out", str(out),
                                 "--tile-format", "png"])
    assert isinstance(r.exception, PartialBuildError) and r.exception.exit_code == 3
    assert shard.id in str(r.exception) and f"--index {index}" in str(r.exception)
    r = CliRunner().invoke(cli, ["world", "run", plan_path, "--out", str(out), "--stac",
                                 str(synth_world), "--renderer", "linear", "--tile-format", "png",
                                 "--feather", "32", "--workers", "0", "--quiet", *EVERY_ITEM,
                                 "--index", str(index)])
    assert r.exit_code == 0, r.output
    assert ledger.read(name).root and ledger.root(name) is not None
    assert _tiles(out) == expected


def test_world_pyramid_reports_a_finished_shard_without_its_root_tile(tmp_path):
    """A shard recorded finished whose block has pixels but no lossless root tile in the ledger
    (an entry without one, or its PNG gone) is a hole named in the error, exit 3: its ancestors
    are not built from the other shards' tiles as if it were transparent."""
    from basemap.output.storage import open_storage
    from basemap.pipeline.ledger import BlockRecord, Ledger
    from basemap.world.run import SHARDS_PREFIX

    plan_path = tmp_path / "plan.json"
    p = world.plan(14, 512, 1, True, [BBox.parse("5.96,44.99,6.03,45.01")])
    p.write(plan_path)
    assert p.shard_zoom == 13 and len(p.shards) >= 2
    storage = open_storage(str(tmp_path / "out"))
    storage.check_writable()
    for sh in p.shards:
        storage.write_bytes(f"{SHARDS_PREFIX}/{sh.id}.json", json.dumps(
            {"shard": sh.id, "failed": [], "blocks": {"ok": 1}}).encode())
    ledger = Ledger(storage)
    for sh, kept in zip(p.shards[:2], (False, True), strict=True):
        name = f"13/{sh.blocks[0]}/{sh.blocks[1]}"
        ledger.record(BlockRecord(name, "fp", "ok", ((f"cogs/{name}.tif", 1, "0"),), root=kept),
                      np.zeros((4, 256, 256), np.uint8))
        if kept:  # its PNG deleted since
            storage.delete(Ledger.root_key(name))
    r = CliRunner().invoke(cli, ["world", "pyramid", str(plan_path), "--out",
                                 str(tmp_path / "out")])
    assert isinstance(r.exception, PartialBuildError) and r.exception.exit_code == 3
    for sh in p.shards[:2]:
        assert sh.id in str(r.exception) and "root tile" in str(r.exception)
    assert not (tmp_path / "out" / "tiles").exists()


def test_world_pyramid_does_not_build_over_an_unfinished_shard(tmp_path):
    """Row 23: a shard without a finished record is a hole: no ancestor tile, exit 3."""
    plan_path = tmp_path / "plan.json"
    world.plan(14, 512, 2, True, [BBox.parse("5.96,44.99,6.03,45.01")]).write(plan_path)
    r = CliRunner().invoke(cli, ["world", "pyramid", str(plan_path), "--out",
                                 str(tmp_path / "out")])
    assert isinstance(r.exception, PartialBuildError) and r.exception.exit_code == 3
    assert "not finished" in str(r.exception)
    assert not (tmp_path / "out" / "tiles").exists()


@pytest.mark.parametrize("levels", [0, 1])
def test_world_pyramid_reduced_in_groups_of_shards_is_the_same(shards_of_2, tmp_path,
                                                               monkeypatch, levels):
    """The world pyramid reduces the shards under one tile GROUP_LEVELS zooms up together (its
    memory bounded at world size): any grouping writes the same low-zoom tiles, byte for byte."""
    import shutil

    from basemap.world import run as world_run

    plan, out = shards_of_2
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    low = {k: v for k, v in _tiles(out).items() if int(k.split("/")[0]) < plan.shard_zoom}
    assert low, "the world run wrote tiles below the shard zoom"
    for key in low:
        (copy / "tiles" / key).unlink()
    monkeypatch.setattr(world_run, "GROUP_LEVELS", levels)
    assert world_run.world_pyramid(plan, str(copy), "png") == []
    assert {k: v for k, v in _tiles(copy).items() if int(k.split("/")[0]) < plan.shard_zoom} \
        == low
