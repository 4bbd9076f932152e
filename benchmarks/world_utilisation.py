"""How busy a world run keeps its workers across shards, from the Dask task stream.

    cp -r basemap /tmp/basemap-before/     # or: git worktree add --detach /tmp/basemap-old REV
    python benchmarks/world_utilisation.py --old /tmp/basemap-before \\
        --json benchmarks/results/world_utilisation.json

The demo world (``basemap synth``'s ``demo`` preset, made once in ``--work``), planned with
``basemap plan`` (its bbox, ``--block-size``, ``--shard-size``), and built by ``basemap world
run --scheduler`` (``--renderer``, default linear: the case where per-shard overhead shows most)
on a fresh cluster for each run: a ``dask scheduler`` and 1 or 2 ``basemap worker`` processes of
one thread (tests/support/cluster.py), started before the run and not counted in its time.

Before the run a client installs the scheduler's task stream (``Client.get_task_stream``);
after it, every task's ``compute`` intervals give each worker's busy time. Utilisation is busy /
(the run's wall time x worker threads). The idle thread-seconds are split into: before the first
task (the driver's start: imports, the plan, the first shard's search), after the last (the
world pyramid, the exit), and between: inside the run's task span, where threads idle while a
shard's tail runs alone and the next shard is searched, planned and submitted; divided by the
shard boundaries (shards - 1), what each boundary costs. ``gaps``: the moments no task ran at all.
The driver's and the scheduler's peak RSS are sampled (psutil) during the run.

``--old``: the same runs with another checkout's package (``PYTHONPATH``, the driver and the
workers), alternating with this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import header, median, table, write_json  # noqa: E402
from pipeline import basemap_exe, ensure_world  # noqa: E402

from tests.support.cluster import Cluster  # noqa: E402


class PeakRss:
    """The peak RSS (bytes) of processes, sampled every 0.1 s in a thread while in use."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for name, proc in self.procs.items():
                try:
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
                except Exception:  # noqa: BLE001 - the process ended
                    pass

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def intervals(stream: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """{worker: its tasks' compute intervals, sorted} from task stream records."""
    out: dict[str, list[tuple[float, float]]] = {}
    for rec in stream:
        for ss in rec.get("startstops", ()):
            if ss["action"] == "compute":
                out.setdefault(rec["worker"], []).append((ss["start"], ss["stop"]))
    return {w: sorted(v) for w, v in out.items()}


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def gaps(spans: list[tuple[float, float]], min_s: float = 0.05) -> list[float]:
    """The lengths of the moments (over ``min_s``) inside the span when no task ran."""
    found, end = [], None
    for a, b in sorted(spans):
        if end is not None and a - end > min_s:
            found.append(a - end)
        end = b if end is None else max(end, b)
    return found


def stream_figures(stream: list[dict], t0: float, t1: float, threads: int,
                   shards: int) -> dict:
    """Utilisation and idle thread-seconds of a run from ``t0`` to ``t1`` (see the module)."""
    per_worker = intervals(stream)
    every = [s for v in per_worker.values() for s in v]
    wall = t1 - t0
    busy = sum(busy_seconds(v) for v in per_worker.values())
    first, last = min(a for a, _ in every), max(b for _, b in every)
    between = (last - first) * threads - busy
    holes = gaps(every)
    return {"wall_s": round(wall, 1), "tasks": len(stream), "busy_s": round(busy, 1),
            "busy_pct": round(100 * busy / (wall * threads), 1),
            "busy_in_span_pct": round(100 * busy / ((last - first) * threads), 1),
            "idle_start_s": round((first - t0) * threads, 1),
            "idle_end_s": round((t1 - last) * threads, 1),
            "idle_between_s": round(between, 1),
            "idle_per_boundary_s": round(between / max(shards - 1, 1), 2),
            "gaps": len(holes), "gaps_s": round(sum(holes), 1),
            "busy_per_worker_s": sorted(round(busy_seconds(v), 1)
                                        for v in per_worker.values())}


def world_run(plan: Path, catalog: Path, out: Path, workers: int, renderer: str,
              pythonpath: str | None, shards: int) -> dict:
    """The task stream figures of one `basemap world run` on a fresh cluster of ``workers``."""
    env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    with Cluster(out.parent / f"{out.name}-cluster", env=env) as cluster:
        names = {f"w{i}" for i in range(workers)}
        for name in sorted(names):
            cluster.add_worker(name, memory_limit="4GB")
        cluster.wait_for_workers(names)
        client = cluster.client
        client.get_task_stream(start=time.time())  # installs the scheduler's TaskStreamPlugin
        cmd = [basemap_exe(), "world", "run", str(plan), "--out", str(out), "--stac",
               str(catalog), "--scheduler", cluster.address, "--renderer", renderer, "--quiet",
               "--datetime", "../..", "--max-cloud", "100", "--max-items", "0"]
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ) | env)
        with PeakRss({"driver": proc.pid, "scheduler": cluster.scheduler.proc.pid}) as rss:
            _, err = proc.communicate()
        t1 = time.time()
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
        stream = client.get_task_stream(start=t0 - 1)
    figures = stream_figures(stream, t0, t1, workers, shards)
    return figures | {f"{k}_rss_mb": round(v / 1e6) for k, v in rss.peak.items()}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    from basemap.synth.tiles import world_bbox

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", choices=("test", "demo", "season"))
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--shard-size", type=int, default=2)
    p.add_argument("--zoom", type=int, default=14)
    p.add_argument("--renderer", default="linear")
    p.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--old", default=None, help="another checkout, run alternately")
    p.add_argument("--work", default=None, help="scratch folder, keeps the world between runs")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-world-util-"))
    catalog = ensure_world(work, args.preset)
    plan = work / "plan.json"
    subprocess.run([basemap_exe(), "plan", "--bbox", str(world_bbox(args.preset)), "--zoom",
                    str(args.zoom), "--block-size", str(args.block_size), "--shard-size",
                    str(args.shard_size), "--all", "--out", str(plan)], check=True,
                   capture_output=True)
    shards = len(json.loads(plan.read_text())["shards"])
    codes = {"new": None} | ({"old": str(Path(args.old).resolve())} if args.old else {})
    runs: dict[tuple[str, int], list[dict]] = {}
    for r in range(args.rounds):
        order = [(c, int(w)) for w in args.workers.split(",") for c in codes]
        for code, workers in order if r % 2 == 0 else order[::-1]:
            out = work / f"out-{code}-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / f"{out.name}-cluster", ignore_errors=True)
            runs.setdefault((code, workers), []).append(world_run(
                plan, catalog, out, workers, args.renderer, codes[code], shards))
    rows = []
    for (code, workers), measured in runs.items():
        row = {"code": code, "workers": workers, "runs": measured}
        for key in measured[0]:
            values = [m[key] for m in measured]
            row[key] = (round(median(values), 2) if isinstance(values[0], (int, float))
                        else values)
        rows.append(row)
    result = header() | {"benchmark": "world_utilisation", "preset": args.preset,
                         "block_size": args.block_size, "shard_size": args.shard_size,
                         "shards": shards, "renderer": args.renderer, "rounds": args.rounds,
                         "measure": "Dask task stream (compute intervals)", "rows": rows}
    print(f"{shards} shards of {args.shard_size}x{args.shard_size} blocks of {args.block_size} px")
    print(table(rows, ["code", "workers", "wall_s", "busy_s", "busy_pct", "busy_in_span_pct",
                       "idle_start_s", "idle_between_s", "idle_per_boundary_s", "idle_end_s",
                       "gaps", "gaps_s", "driver_rss_mb", "scheduler_rss_mb"]))
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
