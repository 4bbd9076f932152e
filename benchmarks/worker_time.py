"""Where a build's worker time goes: compute per task kind, transfers between workers, idle.

    python benchmarks/worker_time.py --catalog build/recipe/world-1/catalog.json \\
        --weights model/default.pt --workers 1,2 --json benchmarks/results/worker_time.json

For each worker count: a LocalCluster made like the build's own (spawned processes, one thread
each, ``worker-saturation`` 1.0), a task-stream plugin on its scheduler, then ``basemap build
--scheduler`` of pipeline.py's large bbox as a subprocess. From the task stream: the seconds of
compute per task kind (``part``, ``block``, ``tile``, ...), of transfers between workers, and
the share of the build's wall time the workers were busy. Scaling lost to tasks that run slower
side by side shows as compute growing with the worker count; lost to idling or to moving
parts between workers, as a busy share under 100 % or transfer seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_json  # noqa: E402
from pipeline import bboxes, build_command, ensure_weights, ensure_world, run_build  # noqa: E402,E501

PLUGIN = "worker-time"


def _add_stream(dask_scheduler) -> None:
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    dask_scheduler.add_plugin(TaskStreamPlugin(dask_scheduler), name=PLUGIN)


def _stream(dask_scheduler) -> list[dict]:
    return list(dask_scheduler.plugins[PLUGIN].buffer)


def account(records: list[dict], since: float) -> dict:
    """Seconds of compute per task kind (the key's name before its first '-') and of
    transfers, over the task-stream records of work started after ``since``; per worker too."""
    kinds: dict[str, float] = {}
    workers: dict[str, dict[str, float]] = {}
    for rec in records:
        kind = str(rec["key"]).split("-")[0]
        for ss in rec["startstops"]:
            if ss["start"] < since:
                continue
            seconds = ss["stop"] - ss["start"]
            action = ss["action"]
            name = f"compute:{kind}" if action == "compute" else action
            kinds[name] = kinds.get(name, 0.0) + seconds
            mine = workers.setdefault(rec["worker"], {})
            mine[action] = mine.get(action, 0.0) + seconds
    return {"seconds": {k: round(v, 2) for k, v in sorted(kinds.items())},
            "per_worker": [{k: round(v, 2) for k, v in sorted(w.items())}
                           for w in workers.values()]}  # fmt: skip


def measure(cmd: list[str], workers: int) -> dict:
    """One build of ``cmd`` (plus ``--scheduler``) on a fresh local cluster of ``workers``."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                          "distributed.scheduler.worker-saturation": 1.0}):  # as the build
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0")
    try:
        with Client(cluster) as client:
            client.run_on_scheduler(_add_stream)
            since = time.time()
            seconds, _ = run_build([*cmd, "--scheduler", cluster.scheduler_address])
            result = account(client.run_on_scheduler(_stream), since)
    finally:
        cluster.close()
    busy = sum(sum(w.values()) for w in result["per_worker"])
    return {"workers": workers, "build_s": round(seconds, 2),
            "busy_share": round(busy / (seconds * workers), 3), **result}


def main(argv: list[str] | None = None) -> dict:
    """Run the builds; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", choices=("demo", "test"))
    p.add_argument("--catalog", default=None, help="catalog.json of `basemap synth`")
    p.add_argument("--weights", default=None)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--zoom", default="0-14")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--block-size", type=int, default=2048)
    p.add_argument("--work", default=None, help="scratch folder")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers inherit it, as the build's own do

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-worker-time-"))
    work.mkdir(parents=True, exist_ok=True)
    catalog = Path(args.catalog) if args.catalog else ensure_world(work, args.preset)
    weights = ensure_weights(work, args.weights)
    _, large = bboxes(args.preset)
    out = work / "out"
    cmd = build_command(large, out, catalog, args.zoom, weights, block_size=args.block_size,
                        window=args.window, overlap=args.overlap)
    runs = []
    for n in (int(v) for v in args.workers.split(",")):
        shutil.rmtree(out, ignore_errors=True)
        runs.append(measure(cmd, n))
        r = runs[-1]
        print(f"{n} worker(s): build {r['build_s']:.1f} s, workers busy "
              f"{100 * r['busy_share']:.0f} %: " + ", ".join(
                  f"{k} {v:.1f} s" for k, v in r["seconds"].items()))
    result = header() | {"benchmark": "worker_time", "preset": args.preset,
                         "bbox": list(large.as_tuple()), "runs": runs}
    write_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
