"""Peak memory of compositing one fully covered block part: 8 vs 64 dates, old vs new code.

    git worktree add --detach /tmp/basemap-old <commit before>
    python benchmarks/composite_memory.py --old /tmp/basemap-old --size 512 --dates 8,64 \\
        [--method best] [--json PATH]

Each date is made just before it is added and dropped after (as ``composite_part`` reads one
scene at a time): one smooth ground, per date a gain, clouds with shadows over about a third of
the part (SCL 9 and 3: rejected, kept for the fill) and accepted/quality from
:func:`basemap.mosaic.observation_quality.observation_quality`. Memory is what tracemalloc traces
(numpy's arrays included) above what was allocated before the compositor: **held** after the last
``add``, **peak** over every ``add`` (the date being added included) and ``result()``; per pixel
and for a 2048 px block part (:data:`PART_PX`: ~8 Mpx with its halo). ``--old`` is another checkout:
its ``basemap/mosaic/composite.py`` is loaded beside this one's (its other imports resolve here).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from common import header, write_json

from basemap.mosaic import composite as new_composite
from basemap.mosaic.observation_quality import observation_quality

#: Pixels of a 2048 px block part with its halo (the 3,584 px read region of BENCHMARKS.md §4
#: is 12.8 Mpx; parts of a block with windows are 7-9 Mpx).
PART_PX = 8_000_000


def load_composite(checkout: str | Path):
    """``basemap/mosaic/composite.py`` of another checkout, as a module beside this one's. Loaded
    from a copy in a temporary folder: numba's cache, keyed by the file's path, then never mixes it
    with the checkout's own ``basemap.mosaic.composite``."""
    path = Path(tempfile.mkdtemp(prefix="basemap-old-")) / "basemap_old_composite.py"
    shutil.copyfile(Path(checkout) / "basemap" / "composite.py", path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache finds its functions by module name
    spec.loader.exec_module(module)
    return module


def ground(size: int) -> np.ndarray:
    """A smooth (3, size, size) float32 reflectance field."""
    yy, xx = np.mgrid[:size, :size] / np.float32(size)
    return np.stack([0.05 + 0.04 * np.sin(9 * xx + b) * np.cos(7 * yy - b)
                     for b in range(3)]).astype(np.float32)  # fmt: skip


def scene(base: np.ndarray, k: int, rng: np.random.Generator):
    """(reflectance, valid, accepted, quality) of date ``k``: a gain, clouds and shadows."""
    size = base.shape[-1]
    yy, xx = np.mgrid[:size, :size] / np.float32(size)
    cloud = np.zeros((size, size), bool)
    for cy, cx in rng.random((6, 2)):
        cloud |= np.hypot(yy - cy, xx - cx) < 0.13
    shadow = np.roll(cloud, size // 20, axis=1) & ~cloud
    refl = base * np.float32(1 + 0.03 * np.sin(k))
    refl = np.where(shadow, np.float32(0.6) * refl, np.where(cloud, np.float32(0.6), refl))
    refl = refl.astype(np.float32)
    scl = np.where(cloud, 9, np.where(shadow, 3, 4)).astype(np.uint8)
    valid = np.ones((size, size), bool)
    accepted, quality = observation_quality(refl, valid, scl, feather=64)
    return refl, valid, accepted, quality


def measure(module, method: str, size: int, dates: int, seed: int) -> dict:
    """Held and peak traced bytes, and seconds, of one part composited with ``module``."""
    base, rng = ground(size), np.random.default_rng(seed)
    tracemalloc.start()
    start_bytes = tracemalloc.get_traced_memory()[0]
    comp = module.compositor(method, (size, size))
    peak, seconds = 0, 0.0
    for k in range(dates):
        inputs = scene(base, k, rng)
        tracemalloc.reset_peak()
        t = time.perf_counter()
        comp.add(*inputs)
        seconds += time.perf_counter() - t
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        del inputs
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    t = time.perf_counter()
    made = comp.result()
    seconds += time.perf_counter() - t
    peak = max(peak, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    del made, comp
    px = size * size
    return {"held_b_per_px": (held - start_bytes) / px, "peak_b_per_px": (peak - start_bytes) / px,
            "peak_gb_part": (peak - start_bytes) / px * PART_PX / 1e9, "seconds": seconds}


def main() -> None:
    """Measure old and new for each number of dates; print a table; write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default=None, help="a checkout of the code before (optional)")
    ap.add_argument("--size", type=int, default=512, help="the part's side (px)")
    ap.add_argument("--dates", default="8,64")
    ap.add_argument("--method", default="best")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    codes = {"new": new_composite} | ({"old": load_composite(args.old)} if args.old else {})
    dates = [int(d) for d in args.dates.split(",")]
    for module in codes.values():  # compile (numba) outside the measurement
        measure(module, args.method, 64, 2, args.seed)
    rows = [{"code": name, "dates": n} | measure(module, args.method, args.size, n, args.seed)
            for n in dates for name, module in codes.items()]  # fmt: skip
    print(f"{'code':<5} {'dates':>5} {'held B/px':>10} {'peak B/px':>10} "
          f"{'peak GB/part':>13} {'s':>7}")
    for r in rows:
        print(f"{r['code']:<5} {r['dates']:>5} {r['held_b_per_px']:>10.1f} "
              f"{r['peak_b_per_px']:>10.1f} {r['peak_gb_part']:>13.2f} {r['seconds']:>7.2f}")
    for name in codes:
        peaks = [r["peak_b_per_px"] for r in rows if r["code"] == name]
        print(f"{name}: peak at {dates[-1]} dates / at {dates[0]} = {peaks[-1] / peaks[0]:.2f}")
    write_json(header() | {"size": args.size, "method": args.method, "part_px": PART_PX,
                           "old": args.old, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
