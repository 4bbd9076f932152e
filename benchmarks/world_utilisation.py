"""How busy a world run keeps its workers across shards: 1 and 2 workers, old code and new.

    git worktree add --detach /tmp/basemap-old <commit before>
    python benchmarks/world_utilisation.py --old /tmp/basemap-old \\
        --json benchmarks/results/world_utilisation.json

The demo world (``basemap synth``'s ``demo`` preset, made once in ``--work``), planned with
``basemap plan`` (its bbox, ``--block-size``, ``--shard-size``), and built by ``basemap world
run`` (``--renderer``, default linear: the case where per-shard overhead shows most) with
``--workers 1`` and ``--workers 2``, each run into a fresh folder, in a subprocess. Busy is the
CPU time of the run's whole process tree (the driver, the scheduler, the workers: everything
the run waited for, by ``getrusage`` of the finished children) over wall time x workers, i.e.
the share of the cores the run held that did work; idle core-seconds are the rest, and divided
by the shards, what each shard boundary costs (cluster start-up, the last block of a shard
running alone, the next shard's search and planning). ``--old``: the same runs with another
checkout's package (``PYTHONPATH``), alternating with this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, median, table, write_json  # noqa: E402
from pipeline import basemap_exe, ensure_world  # noqa: E402


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process and its waited-for tree."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def world_run(plan: Path, catalog: Path, out: Path, workers: int, renderer: str,
              pythonpath: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one `basemap world run`."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [basemap_exe(), "world", "run", str(plan), "--out", str(out), "--stac", str(catalog),
           "--workers", str(workers), "--renderer", renderer, "--quiet",
           "--datetime", "../..", "--max-cloud", "100", "--max-items", "0"]
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, children_cpu() - cpu


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
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        order = [(c, int(w)) for w in args.workers.split(",") for c in codes]
        for code, workers in order if r % 2 == 0 else order[::-1]:
            out = work / f"out-{code}-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            runs.setdefault((code, workers), []).append(
                world_run(plan, catalog, out, workers, args.renderer, codes[code]))
    rows = []
    for (code, workers), measured in runs.items():
        wall = median([w for w, _ in measured])
        cpu = median([c for _, c in measured])
        idle = wall * workers - cpu
        rows.append({"code": code, "workers": workers, "wall_s": round(wall, 1),
                     "cpu_s": round(cpu, 1), "busy_pct": round(100 * cpu / (wall * workers), 1),
                     "idle_core_s": round(idle, 1),
                     "idle_core_s_per_shard": round(idle / shards, 2)})
    result = header() | {"benchmark": "world_utilisation", "preset": args.preset,
                         "block_size": args.block_size, "shard_size": args.shard_size,
                         "shards": shards, "renderer": args.renderer, "rounds": args.rounds,
                         "rows": rows}
    print(f"{shards} shards of {args.shard_size}x{args.shard_size} blocks of {args.block_size} px")
    print(table(rows, ["code", "workers", "wall_s", "cpu_s", "busy_pct", "idle_core_s",
                       "idle_core_s_per_shard"]))
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
