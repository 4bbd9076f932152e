"""A world run keeps up to SHARDS_IN_FLIGHT shards on its cluster (issue 32): the next shard's
graph is submitted while the current one's last blocks run. The shards are still finished in
the plan's order, each shard's record written once its build is finished; the default period
the first shard with scenes decides is the one every later shard searches (as when each shard
read it from the previous build's record); and the tiles, COGs and ledger equal those of shards
built one at a time, byte for byte, and a rerun over them resumes every block."""

from __future__ import annotations

import json
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from basemap.cli import cli
from basemap.output.storage import LocalStorage
from basemap.pipeline.build import BuildSummary
from basemap.pipeline.ledger import RESUMED
from basemap.pipeline.plan import BuildSettings
from basemap.stac.query import Query
from basemap.types import BBox
from basemap.world import plan as world
from basemap.world import run as world_run
from tests.support.cli_runner import EVERY_ITEM

COMPARED = ("tiles/", "cogs/", "ledger/blocks/", "ledger/shards/")


def _files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix().startswith(COMPARED)}


class FakeRun:
    """run_shards' collaborators, replaced: what happens to each shard, in order."""

    def __init__(self, storage: LocalStorage, empty: set[int]) -> None:
        self.storage = storage
        self.empty = empty  # indices of the shards that find no scenes
        self.events: list[tuple] = []
        self.bboxes: list[tuple] = []
        self.in_flight = self.most = 0

    def prepare(self, bbox, settings, query, storage, start):
        n = len(self.bboxes)
        self.bboxes.append(bbox.as_tuple())
        self.events.append(("prepare", n, query.datetime))
        scenes = [] if n in self.empty else [f"scene-{n}"]
        return SimpleNamespace(n=n, scenes=scenes, storage=storage, jobs=[n],
                               search_args={"datetime": f"period-{n}"},
                               summary=BuildSummary(out=storage.root, bbox=bbox, seconds=1.0))

    def submit_graph(self, client, jobs, tiles, zmin):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.events.append(("submit", jobs[0]))
        return jobs[0]

    def collect(self, graph, progress):
        self.in_flight -= 1
        self.events.append(("collect", graph))
        return [], {}, 0

    def finish(self, prepared, results, pyramid, missing):
        self.events.append(("finish", prepared.n))
        return prepared.summary


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_shards_in_flight_are_bounded_finished_in_order_and_recorded_after_their_build(
        tmp_path, monkeypatch, in_flight):
    p = world.plan(zoom=14, block_size=4096, shard_size=1, land_only=False,
                   regions=[BBox.parse("5.0,45.0,7.5,46.5")])
    assert len(p.shards) >= 5
    storage = LocalStorage(str(tmp_path / "out"))
    fake = FakeRun(storage, empty={0})
    monkeypatch.setattr(world_run, "SHARDS_IN_FLIGHT", in_flight)
    monkeypatch.setattr(world_run, "checked", lambda zoom, out, settings, query: (
        settings, storage))
    monkeypatch.setattr(world_run, "leased", lambda s: nullcontext())
    monkeypatch.setattr(world_run, "dask_client", lambda *a, **k: nullcontext("client"))
    for name in ("prepare", "submit_graph", "collect", "finish"):
        monkeypatch.setattr(world_run, name, getattr(fake, name))
    records = storage.path(world_run.SHARDS_PREFIX)

    def recorded() -> set[str]:
        return {f.stem for f in records.glob("*.json")} if records.is_dir() else set()

    seen = []
    finish = fake.finish

    def finish_checked(prepared, *ran):
        seen.append(recorded())  # the shard's record is not written before its build finished
        assert p.shards[prepared.n].id not in seen[-1]
        return finish(prepared, *ran)

    monkeypatch.setattr(world_run, "finish", finish_checked)
    query = Query("catalog.json", defaults=("datetime",))
    assert world_run.run_shards(p, str(tmp_path / "out"), BuildSettings(), query,
                                pyramid=False) == []
    n = len(p.shards)
    assert fake.bboxes == [sh.bbox for sh in p.shards]
    assert fake.most == min(in_flight, n)
    assert [e[1] for e in fake.events if e[0] == "finish"] == list(range(1, n))  # 0: empty
    for k in range(n):  # shard k is submitted before shard k - in_flight + 1 is collected
        after = fake.events.index(("submit", k))
        if k - in_flight >= 0:
            assert fake.events.index(("collect", k - in_flight)) < after
        if k - in_flight + 1 >= 0 and in_flight > 1:
            assert fake.events.index(("collect", k - in_flight + 1)) > after
    assert recorded() == {sh.id for sh in p.shards}
    for sh in p.shards:
        doc = json.loads((records / f"{sh.id}.json").read_bytes())
        assert doc == {"shard": sh.id, "failed": [], "blocks": {}}
    # the default period: the first shard with scenes (shard 1) decides it for the later ones
    periods = [e[2] for e in fake.events if e[0] == "prepare"]
    assert periods == [None, None] + ["period-1"] * (n - 2)


@pytest.mark.slow
def test_overlapped_shards_equal_shards_built_one_at_a_time(synth_world, tmp_path,
                                                            monkeypatch):
    """Shards of one block each (the most boundaries), overlapped (the default) and one at a
    time: the same bytes; a rerun over the output resumes every block, bytes unchanged."""
    from basemap.synth.tiles import world_bbox

    plan = tmp_path / "plan.json"
    r = CliRunner().invoke(cli, ["plan", "--bbox", str(world_bbox("test")), "--shard-size", "1",
                                 "--block-size", "512", "--out", str(plan)])
    assert r.exit_code == 0, r.output
    assert len(world.Plan.read(plan).shards) >= 4

    def run(out, *more: str):
        r = CliRunner().invoke(cli, ["world", "run", str(plan), "--out", str(out), "--stac",
                                     str(synth_world), "--renderer", "linear", "--tile-format",
                                     "png", "--feather", "32", "--workers", "0", "--quiet",
                                     *EVERY_ITEM, *more])
        assert r.exit_code == 0, r.output
        return _files(out)

    overlapped = run(tmp_path / "overlapped")
    assert any(k.startswith("tiles/0/") for k in overlapped)
    monkeypatch.setattr(world_run, "SHARDS_IN_FLIGHT", 1)
    sequential = run(tmp_path / "sequential")
    assert sorted(overlapped) == sorted(sequential)
    assert [k for k in sequential if overlapped[k] != sequential[k]] == []
    monkeypatch.undo()
    assert run(tmp_path / "sequential") == sequential
    record = json.loads((tmp_path / "sequential" / "build.json").read_bytes())
    assert record["blocks"] and all(b["message"] == RESUMED for b in record["blocks"])
