"""basemap.pipeline.graph: an in-process cluster, deterministic keys, the pyramid above the blocks.

The whole graph under faults (worker deaths, full disks) runs in tests/integration/test_faults.py
and test_resume.py; here the small pieces, on an in-process cluster (workers=0).
"""

from basemap.grid import Block
from basemap.output.storage import LocalStorage
from basemap.output.tiles import TileOutput
from basemap.pipeline.graph import _key, dask_client, gpu_slots, run_graph
from basemap.pipeline.plan import BlockJob, BuildSettings


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
        assert gpu_slots(client)[0] == 0
        results, written, missing = run_graph(client, jobs, TileOutput(storage, "png"), 9)
    assert [r.status for r in results] == ["empty", "empty"]
    assert not any(written.values()) and missing == 0  # pyramid tasks ran, wrote nothing
    assert not (tmp_path / "tiles").exists()
    assert sorted(p.name for p in (tmp_path / "ledger" / "blocks" / "13" / "0").iterdir()) == [
        "0.json"] and (tmp_path / "ledger" / "blocks" / "13" / "1" / "0.json").is_file()


def test_gpu_and_cpu_workers_split_composite_and_network(synth_world, tmp_path):
    """On a cluster where only some workers advertise ``GPU``, the composites and the network
    are separate tasks: every ``part`` (the network) runs on the GPU worker, and the build's
    pixels are the same bytes as the one-task-per-part build (the resource is a label: the
    "GPU" worker runs on CPU here)."""
    import filecmp

    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig
    from basemap.model.weights import save_weights
    from distributed import Client, Scheduler, SpecCluster, Worker
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    from basemap.pipeline.build import build
    from basemap.pipeline.plan import BuildSettings as Settings
    from basemap.stac.query import Query
    from basemap.synth.tiles import world_bbox
    from basemap.types import ZoomRange

    torch.manual_seed(0)
    tiny = ResUNet(UNetConfig(base=4, levels=3, tone_prior=False)).eval()
    weights = save_weights(tmp_path / "tiny.pt", tiny, Normalization())
    settings = Settings(renderer="unet", model=str(weights), window=128, overlap=32,
                        block_size=512, feather=32, tile_format="png")  # fmt: skip
    bbox, zoom = world_bbox("test"), ZoomRange(13, 14)
    build(bbox, zoom, str(tmp_path / "fused"), settings, Query(str(synth_world)), workers=0)
    workers = {"gpu": {"cls": Worker, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
               "cpu": {"cls": Worker, "options": {"nthreads": 1}}}  # fmt: skip
    with SpecCluster(workers=workers, scheduler={"cls": Scheduler,
                                                 "options": {"dashboard_address": ":0"}},
                     silence_logs=False) as cluster, Client(cluster) as client:  # fmt: skip
        stream = TaskStreamPlugin(cluster.scheduler)
        cluster.scheduler.add_plugin(stream)
        gpu = next(a for a, w in client.scheduler_info()["workers"].items() if w["resources"])
        build(bbox, zoom, str(tmp_path / "split"), settings, Query(str(synth_world)),
              scheduler=cluster.scheduler_address)  # fmt: skip
        ran = [(r["key"].split("-")[0], r["worker"]) for r in stream.buffer]
    parts = [w for k, w in ran if k == "part"]
    assert parts and set(parts) == {gpu}, ran
    assert len([k for k, _ in ran if k == "composite"]) == len(parts)
    for kind in ("tiles", "cogs"):
        a, b = tmp_path / "fused" / kind, tmp_path / "split" / kind
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        _, bad, err = filecmp.cmpfiles(a, b, [str(f) for f in files], shallow=False)
        assert not bad and not err, (kind, bad[:3], err[:3])
