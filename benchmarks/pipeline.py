"""`basemap build` end to end: overhead over the model, peak memory, and worker scaling.

    python benchmarks/pipeline.py --json benchmarks/results/pipeline.json

On the synthetic world (``basemap synth``'s ``demo`` preset, made once in ``--work``), with the
U-Net renderer (the shipped weights, else a random initialisation of the same architecture:
speed does not depend on the values), ``--zoom`` tiles, WebP:

* **overhead**: wall time of ``basemap build`` (a subprocess, ``--workers 2``) over the time the
  network alone needs for the same pixels: the windows of the global grid that touch the built
  blocks, each run once, at the per-window speed of :meth:`LoadedModel.predict` measured here
  with all cores (batch 4). The build runs each window once too (a window that straddles
  two blocks runs in one and is blended into both); the sum over blocks of the windows each
  touches is reported beside, for the redundancy a block-by-block build would have;
* **memory**: peak RSS of the whole process tree (the CLI, the Dask scheduler and its worker
  processes; psutil, sampled every 0.1 s) for a bbox ("small") and for one of 4x its area
  ("large": same height, 4x the width);
* **scaling**: build time of the large bbox with ``--workers 1`` over ``--workers 2``, run back
  to back in an order that alternates between rounds.

Rounds (``--rounds``) repeat the builds; medians are reported.
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
from common import header, median, write_json  # noqa: E402


def ensure_world(work: Path, preset: str) -> Path:
    """The synthetic world's catalog.json (made once per work folder and preset)."""
    from basemap.synth.world import make_world

    catalog = work / f"world-{preset}" / "catalog.json"
    if not catalog.is_file():
        make_world(catalog.parent, seed=0, preset=preset)
    return catalog


def ensure_weights(work: Path, weights: str | None) -> str:
    """A weights file: the given one, the shipped default, else a saved random initialisation."""
    from basemap.model.weights import DEFAULT_WEIGHTS, save_weights

    if weights:
        return weights
    if DEFAULT_WEIGHTS.is_file():
        return str(DEFAULT_WEIGHTS)
    path = work / "random-weights.pt"
    if not path.is_file():
        import torch
        from basemap.model.unet import Normalization, ResUNet, UNetConfig

        torch.manual_seed(0)
        save_weights(path, ResUNet(UNetConfig()).eval(), Normalization(),
                     {"note": "random initialisation, for benchmarks only"})
    return str(path)


def bboxes(preset: str):
    """(small, large) WGS84 bboxes: large is the middle of the world's bbox, small its middle
    quarter in width (same height), so large has exactly 4x the area."""
    from basemap.synth.tiles import world_bbox
    from basemap.types import BBox

    w = world_bbox(preset)
    cx, width = (w.west + w.east) / 2, (w.east - w.west) * 0.96
    large = BBox(cx - width / 2, w.south, cx + width / 2, w.north)
    small = BBox(cx - width / 8, w.south, cx + width / 8, w.north)
    return small, large


def tree_rss(proc) -> int:
    """Sum of the RSS of a process and all its descendants (bytes)."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # the tree changed while listed: next sample
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def basemap_exe() -> str:
    """This environment's ``basemap`` command (beside this Python, else on PATH)."""
    exe = Path(sys.executable).with_name("basemap")
    return str(exe) if exe.is_file() else shutil.which("basemap") or "basemap"


def build_command(bbox, out: Path, catalog: Path, zoom: str, weights: str | None = None,
                  **options) -> list[str]:
    """The ``basemap build`` command line of these benchmarks: this environment's ``basemap``,
    ``--quiet``, the U-Net with ``weights`` (None: the renderer of ``options``) and each of
    ``options`` as ``--name value`` (``block_size=2048`` -> ``--block-size 2048``)."""
    cmd = [basemap_exe(), "build",
           "--bbox", ",".join(f"{v:.6f}" for v in bbox.as_tuple()), "--zoom", zoom,
           "--out", str(out), "--stac", str(catalog), "--quiet",
           "--datetime", "../..", "--max-cloud", "100", "--max-items", "0"]  # every item
    if weights is not None:
        cmd += ["--model", weights]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return cmd


def run_build(cmd: list[str], interval: float = 0.1) -> tuple[float, int]:
    """(wall seconds, peak RSS of the process tree in bytes) of a build subprocess."""
    import psutil

    start = time.perf_counter()
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = psutil.Process(popen.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = popen.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if popen.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({popen.returncode}):\n{out[-4000:]}")
    return seconds, peak[0]


def windows_of(out: Path, window: int, overlap: int) -> tuple[int, int, float]:
    """(windows of the global grid touching the built blocks, windows the build's blocks touch
    in total (each block counts its own), built megapixels) from OUT/build.json."""
    from basemap.grid import Region
    from basemap.render.windows import WindowGrid

    record = json.loads((out / "build.json").read_text())
    grid = WindowGrid(window, overlap)
    size = record["settings"]["block_size"]
    union, per_block, mpx = set(), 0, 0.0
    for b in record["blocks"]:
        if b["status"] not in ("ok", "degraded"):
            continue
        _, bx, by = (int(v) for v in b["block"].split("/"))
        x0, y0 = bx * size, by * size
        wins = list(grid.windows(Region(x0, y0, x0 + size, y0 + size)))
        union.update(wins)
        per_block += len(wins)
        mpx += size * size / 1e6
    return len(union), per_block, mpx


def window_seconds(weights: str, window: int, batch: int = 4, repeat: int = 3) -> float:
    """Seconds per window of LoadedModel.predict with all cores (best of ``repeat`` batches)."""
    import numpy as np
    import torch

    from basemap.render.inference import load_model

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(cores)
    model = load_model(weights, device="cpu")
    x = np.random.default_rng(0).uniform(0, 0.4, (batch, 3, window, window)).astype(np.float32)
    model.predict(x)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        model.predict(x)
        best = min(best, time.perf_counter() - t)
    return best / batch


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", choices=("demo", "test"))
    p.add_argument("--catalog", default=None, help="use this synthetic world's catalog.json "
                   "(made with `basemap synth --preset PRESET`) instead of making one")
    p.add_argument("--workers", type=int, default=2, help="workers of the overhead and memory "
                   "builds (scaling compares 1 with this)")
    p.add_argument("--zoom", default="0-14")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--block-size", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--weights", default=None)
    p.add_argument("--renderer", default="unet")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: scaling,memory")
    p.add_argument("--work", default=None, help="scratch folder, keeps the world between runs")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    catalog = Path(args.catalog) if args.catalog else ensure_world(work, args.preset)
    weights = ensure_weights(work, args.weights)
    small, large = bboxes(args.preset)
    skip = set(filter(None, args.skip.split(",")))

    def build(bbox, workers: int, name: str) -> tuple[float, int, Path]:
        out = work / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = build_command(bbox, out, catalog, args.zoom,
                            weights if args.renderer == "unet" else None,
                            renderer=args.renderer, block_size=args.block_size,
                            window=args.window, overlap=args.overlap, workers=workers)
        seconds, rss = run_build(cmd)
        return seconds, rss, out

    runs: dict[str, list] = {"small_w2": [], "large_w2": [], "large_w1": []}
    for r in range(args.rounds):
        if "scaling" not in skip and r % 2:  # the order alternates: drift cancels in the ratios
            runs["large_w1"].append(build(large, 1, "large_w1"))
        runs["large_w2"].append(build(large, args.workers, "large_w2"))
        if "scaling" not in skip and not r % 2:
            runs["large_w1"].append(build(large, 1, "large_w1"))
        if "memory" not in skip:
            runs["small_w2"].append(build(small, args.workers, "small_w2"))

    out_large = runs["large_w2"][-1][2]
    n_global, n_build, mpx = windows_of(out_large, args.window, args.overlap)
    t_window = window_seconds(weights, args.window) if args.renderer == "unet" else float("nan")
    t_large = median([r[0] for r in runs["large_w2"]])
    model_s = n_global * t_window
    result = header() | {
        "benchmark": "pipeline",
        "preset": args.preset,
        "zoom": args.zoom,
        "renderer": args.renderer,
        "weights": weights,
        "block_size": args.block_size,
        "window": args.window,
        "overlap": args.overlap,
        "rounds": args.rounds,
        "workers": args.workers,
        "bbox_small": list(small.as_tuple()),
        "bbox_large": list(large.as_tuple()),
        "large": {
            "build_s": round(t_large, 2),
            "build_s_rounds": [round(r[0], 2) for r in runs["large_w2"]],
            "megapixels": round(mpx, 3),
            "windows_global": n_global,
            "windows_touching_each_block_summed": n_build,
            "window_s": round(t_window, 4),
            "model_only_s": round(model_s, 2),
            "overhead": round(t_large / model_s, 3) if model_s else None,
        },
    }
    if runs["small_w2"]:
        rss_s = median([r[1] for r in runs["small_w2"]])
        rss_l = median([r[1] for r in runs["large_w2"]])
        result["memory"] = {
            "peak_rss_small_mib": round(rss_s / 2**20, 1),
            "peak_rss_large_mib": round(rss_l / 2**20, 1),
            "ratio": round(rss_l / rss_s, 3),
            "small_build_s": round(median([r[0] for r in runs["small_w2"]]), 2),
            "small_megapixels": round(windows_of(runs["small_w2"][-1][2], args.window,
                                                 args.overlap)[2], 3),
        }
    if runs["large_w1"]:
        t1 = median([r[0] for r in runs["large_w1"]])
        result["scaling"] = {
            "workers1_s": round(t1, 2),
            f"workers{args.workers}_s": round(t_large, 2),
            "speedup": round(t1 / t_large, 3),
            "speedup_rounds": [round(a[0] / b[0], 3)
                               for a, b in zip(runs["large_w1"], runs["large_w2"], strict=True)],
        }
    print(json.dumps({k: result[k] for k in ("large", "memory", "scaling") if k in result},
                     indent=1))
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
