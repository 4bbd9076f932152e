"""Shared helpers of the benchmark scripts: timing, medians, machine facts, JSON results.

Benchmarks are scripts, not tests: run them by hand (``python benchmarks/<name>.py --help``).
Each prints a short human table and, with ``--json PATH``, writes its figures as one JSON object
(the machine, the date, the exact command and every number), which is what BENCHMARKS.md quotes.
On a shared machine absolute times are noisy; the scripts interleave the things they compare in
rounds and report the median over rounds of per-round ratios.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: The repository root (benchmarks/ lives directly under it).
ROOT = Path(__file__).resolve().parent.parent


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best (minimum) wall time in seconds of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def median(values: list[float]) -> float:
    """Median of a non-empty list (NaN when empty)."""
    return float(statistics.median(values)) if values else float("nan")


def machine() -> dict:
    """Facts about this machine that decide the figures."""
    import psutil

    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": model,
        "cores": cores,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def header() -> dict:
    """The common part of every result: date (UTC), command and machine."""
    argv = [Path(sys.argv[0]).as_posix()] + sys.argv[1:]
    try:
        argv[0] = Path(argv[0]).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python " + shlex.join(argv),
        "machine": machine(),
    }


def write_json(result: dict, path: str | os.PathLike | None) -> None:
    """Write a result as pretty JSON when a path is given (creating its folder)."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=_plain) + "\n")


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain fixed-width text table of ``rows`` (dicts) over ``columns``."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
