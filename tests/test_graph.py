"""basemap.graph: an in-process cluster, deterministic keys, the pyramid above the blocks.

The whole graph under faults (worker deaths, full disks) runs in tests/integration/test_faults.py
and test_resume.py; here the small pieces, on an in-process cluster (workers=0).
"""

from basemap.block import BlockJob, BuildSettings
from basemap.graph import _key, dask_client, has_gpu_workers, run_graph
from basemap.grid import Block
from basemap.output.storage import LocalStorage
from basemap.output.tiles import TileOutput


def test_keys_come_from_the_values():
    s = BuildSettings(renderer="linear")
    job = BlockJob(Block(1, 2, 512, 14), (), s, LocalStorage("/x"))
    assert _key("block", job) == _key("block", BlockJob(Block(1, 2, 512, 14), (), s,
                                                         LocalStorage("/x")))
    assert _key("block", job) != _key("block", BlockJob(Block(1, 3, 512, 14), (), s,
                                                         LocalStorage("/x")))


def test_blocks_without_scenes_are_empty_and_nothing_is_built_above_them(tmp_path):
    storage = LocalStorage(str(tmp_path))
    s = BuildSettings(renderer="linear", block_size=512, zmin=9, zmax=14, tile_format="png")
    jobs = [BlockJob(Block(x, 0, 512, 14), (), s, storage) for x in (0, 1)]
    with dask_client(workers=0) as client:
        assert not has_gpu_workers(client)
        results, written, missing = run_graph(client, jobs, TileOutput(storage, "png"), 9,
                                              progress=False)
    assert [r.status for r in results] == ["empty", "empty"]
    assert not any(written.values()) and missing == 0  # pyramid tasks ran, wrote nothing
    assert not (tmp_path / "tiles").exists()
    assert sorted(p.name for p in (tmp_path / "ledger" / "blocks" / "13" / "0").iterdir()) == [
        "0.json"] and (tmp_path / "ledger" / "blocks" / "13" / "1" / "0.json").is_file()
