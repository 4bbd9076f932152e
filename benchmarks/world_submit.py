"""The largest graph a world run submits at once: its submit time, the scheduler's memory, and
the driver's memory with the world's plan loaded.

    python benchmarks/world_submit.py --json benchmarks/results/world_submit.json

Plans the land of the world at z14 with the default block and shard sizes (``basemap plan
--world``), in this process (the driver), and takes the shards with the most land blocks (64: the
largest graphs). Each block gets 32 scenes (the per-block cap) of its shard's 72 (9 MGRS tiles x
the 8 clearest items), with Earth Search-like ids, hrefs and footprints, and the U-Net renderer
(its weights handed to the scheduler as a plugin, as a run does). A ``dask scheduler`` with no
worker (the tasks stay on it) is started; the graphs of ``SHARDS_IN_FLIGHT`` shards (what a world
run holds at once), then more (``--shards``), are submitted with
:func:`basemap.pipeline.graph.submit_graph`. After each step: the scheduler's RSS (psutil, after
a second to settle) and the driver's; the longest submit of one shard's graph in the step.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import header, table, write_json  # noqa: E402

from tests.support.cluster import Cluster  # noqa: E402


def rss_mb(pid: int | None = None) -> float:
    """A process's resident memory in MB (default: this one)."""
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 1e6, 1)


def scenes_of(shard, per_shard: int = 72) -> list:
    """``per_shard`` Earth Search-like scenes over a shard (9 MGRS tiles x 8 dates)."""
    from basemap.stac.scene import Scene

    w, s, e, n = shard.bbox
    out = []
    for i in range(per_shard):
        tile, date = f"{31 + i % 9}TLR", f"2025{1 + i // 9:02d}15"
        item = f"S2B_{tile}_{date}_0_L2A"
        base = (f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/"
                f"{tile[:2]}/{tile[2]}/{tile[3:]}/2025/{date[4:6]}/{item}")
        ring = [[w + (e - w) * k / 20, s + (n - s) * ((k * 7) % 20) / 20] for k in range(21)]
        out.append(Scene(
            id=item, collection="sentinel-2-c1-l2a", datetime=f"{date}T10:30:21.024000Z",
            updated="2025-07-01T00:00:00Z", epsg=32600 + 31 + i % 9, bbox=(w, s, e, n),
            footprint=json.dumps({"type": "Polygon", "coordinates": [ring]}),
            assets=tuple((k, f"{base}/{b}.tif") for k, b in (
                ("red", "B04"), ("green", "B03"), ("blue", "B02"), ("scl", "SCL"))),
            dn_offset=-1000.0, processing_baseline="05.11", cloud_cover=12.5,
            grid_code=f"MGRS-{tile}", source="earth-search-c1"))
    return out


def shard_jobs(shard, settings, storage) -> list:
    """The block jobs of a shard (every block of its bbox), 32 of its scenes each."""
    from basemap.grid import bbox_regions, plan_blocks
    from basemap.pipeline.plan import BlockJob
    from basemap.types import BBox

    scenes = scenes_of(shard)
    blocks = plan_blocks(bbox_regions(BBox(*shard.bbox), settings.zmax), settings.block_size,
                         settings.zmax)
    return [BlockJob(b, tuple(scenes[(i * 5) % 40:(i * 5) % 40 + 32]), settings, storage)
            for i, b in enumerate(blocks)]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    from basemap.output.storage import LocalStorage
    from basemap.output.tiles import TileOutput
    from basemap.pipeline.graph import submit_graph
    from basemap.pipeline.plan import BuildSettings
    from basemap.world import plan as world
    from basemap.world.run import SHARDS_IN_FLIGHT

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", default=f"{SHARDS_IN_FLIGHT},8,32",
                   help="shards submitted in all after each step, comma-separated")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-world-submit-"))
    driver = {"start_mb": rss_mb()}
    t = time.perf_counter()
    plan = world.plan(zoom=14)
    driver |= {"plan_s": round(time.perf_counter() - t, 2), "plan_mb": rss_mb(),
               "shards_planned": len(plan.shards)}
    largest = sorted(plan.shards, key=lambda sh: -sh.land_blocks)
    settings = BuildSettings(renderer="unet", zmin=plan.shard_zoom, zmax=plan.zoom,
                             block_size=plan.block_size)
    storage = LocalStorage(str(work / "out"))
    tiles = TileOutput(storage, settings.tile_format)
    rows, held = [], []
    with Cluster(work / "cluster") as cluster:
        client = cluster.client
        pid = cluster.scheduler.proc.pid
        time.sleep(1)
        idle = rss_mb(pid)
        for total in [int(n) for n in args.shards.split(",")]:
            times = []
            while len(held) < total:
                jobs = shard_jobs(largest[len(held)], settings, storage)
                t = time.perf_counter()
                held.append(submit_graph(client, jobs, tiles, settings.zmin))
                times.append(time.perf_counter() - t)
            time.sleep(1)
            tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            rows.append({"shards": total, "blocks": sum(len(h.jobs) for h in held),
                         "tasks": tasks, "submit_s_per_shard": round(max(times), 3),
                         "scheduler_mb": rss_mb(pid),
                         "scheduler_mb_per_shard": round((rss_mb(pid) - idle) / total, 1),
                         "driver_mb": rss_mb()})
    driver |= {"peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1)}
    result = header() | {"benchmark": "world_submit", "zoom": plan.zoom,
                         "block_size": plan.block_size, "shard_size": plan.shard_size,
                         "largest_shard_blocks": largest[0].land_blocks,
                         "scenes_per_block": 32, "renderer": "unet",
                         "shards_in_flight": SHARDS_IN_FLIGHT, "scheduler_idle_mb": idle,
                         "driver": driver, "rows": rows}
    print(f"world plan: {driver['shards_planned']} shards in {driver['plan_s']} s, driver "
          f"{driver['plan_mb']} MB; scheduler idle {idle} MB")
    print(table(rows, ["shards", "blocks", "tasks", "submit_s_per_shard", "scheduler_mb",
                       "scheduler_mb_per_shard", "driver_mb"]))
    print(f"driver peak RSS {driver['peak_mb']} MB")
    write_json(result, args.json)
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
