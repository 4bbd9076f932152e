"""The same `basemap build` with two checkouts of the code, in one run: speed-up and seams.

    git worktree add /tmp/basemap-old 955642d
    python benchmarks/commits.py --old /tmp/basemap-old --work /tmp/bc --rounds 2 \\
        --json benchmarks/results/commits.json

On the demo world (``basemap synth --preset demo``, made once in ``--work``; or ``--catalog``),
the demo bbox (``world_bbox("demo")``, 8 blocks of 2048 px at z14), the same weights file for
both, ``--workers`` 2: each round builds with the old checkout and the new one (the order
alternates between rounds, so drift in the machine's load cancels), each as a subprocess with
``PYTHONPATH`` set to its checkout. Then the seam excess at window / block / tile borders of
each output over the whole build, measured by the new checkout's code for both: the delivered
max-zoom tiles and the lossless COG mosaic (``mosaic.vrt``); ``basemap evaluate``'s 1024-px
sample holds only 2-4 borders of each family, too few to compare two builds. And once ``basemap
colorize`` (new checkout) of a 3-band image with as many pixels as the build made, for the
build's throughput against the model-only path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, header, median, write_json  # noqa: E402
from pipeline import build_command, ensure_weights, ensure_world, run_build  # noqa: E402


def _colorize_env() -> dict:
    """This checkout's code, the network on every core (as the build's workers use them all)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_NUM_THREADS", None)
    return env


def build_cmd(out: Path, catalog: Path, weights: str, zoom: str, workers: int) -> list[str]:
    """The one `basemap build` command line both checkouts run."""
    from basemap.synth.tiles import world_bbox

    return build_command(world_bbox("demo"), out, catalog, zoom, weights, workers=workers)


def timed_build(checkout: Path, cmd: list[str], out: Path) -> tuple[float, int]:
    """(seconds, peak RSS) of one build of ``cmd`` with ``checkout``'s code."""
    shutil.rmtree(out, ignore_errors=True)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "OMP_NUM_THREADS")}
    os.environ["PYTHONPATH"], os.environ["OMP_NUM_THREADS"] = str(checkout), "1"
    try:
        return run_build(cmd)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def seams(out: Path) -> dict:
    """Seam excess (window, block, tile) of a build over its whole extent: the delivered tiles
    and the COG mosaic, measured by this checkout's code whichever code built it; and, for the
    window borders, the share of all phases of the window period that read as high or higher."""
    from basemap.qa.evaluate import read_build, read_mosaic, read_tiles, rendering_figures

    build = read_build(out)
    mosaic, region = read_mosaic(build)
    images = {"tiles": read_tiles(build, region), "cogs": (mosaic[:3], mosaic[3] > 0)}
    origin = (region.x0, region.y0)
    result = {}
    for name, (rgb, valid) in images.items():
        figures = {k: round(v, 3) for k, v in rendering_figures(rgb, valid, origin, build).items()
                   if k.startswith("seam")}  # fmt: skip
        figures["window_phase_share"] = round(phase_share(rgb, valid, origin, build.stride), 3)
        result[name] = figures
    return result


def phase_share(rgb, valid, origin: tuple[int, int], period: int) -> float:
    """The share of the ``period`` phases whose excess (the worse of columns and rows) is at
    least that of phase 0: near 0 when borders at phase 0 stand out, ~0.5 when they do not."""
    import numpy as np

    from basemap.qa.seams import boundary_steps, family_ratio, luminance

    lum = luminance(rgb)
    per_axis = []
    for image, mask, start in ((lum, valid, origin[0]), (lum.T, valid.T, origin[1])):
        steps = boundary_steps(image, mask)
        ratios = np.array([family_ratio(steps, start, period, q) for q in range(period)])
        per_axis.append(ratios / np.nanpercentile(ratios, 95))
    excess = np.fmax(*per_axis)
    return float(np.mean(excess >= excess[0]))


def colorize_seconds(work: Path, catalog: Path, megapixels: float,
                     weights: str) -> tuple[float, float]:  # fmt: skip
    """(seconds, Mpx) of `basemap colorize` (this checkout) on a 3-band uint16 GeoTIFF of
    about ``megapixels``: a demo scene's red/green/blue DN tiled to that size."""
    import numpy as np
    import rasterio
    from affine import Affine

    from basemap.stac.search import search
    from basemap.synth.tiles import world_bbox

    scene = search(str(catalog), world_bbox("demo"))[0]
    bands = []
    for key in ("red", "green", "blue"):
        with rasterio.open(scene.href(key)) as ds:
            bands.append(ds.read(1))
    side = int(round((megapixels * 1e6 / 2) ** 0.5))  # 1:2 (like 2 x 4 blocks)
    reps = (-(-side // bands[0].shape[0]), -(-2 * side // bands[0].shape[1]))
    data = np.stack([np.tile(b, reps)[:side, :2 * side] for b in bands])
    data[data == 0] = 1000  # no nodata: every pixel is rendered
    src, dst = work / "colorize-in.tif", work / "colorize-out.tif"
    with rasterio.open(src, "w", driver="GTiff", width=2 * side, height=side, count=3,
                       dtype="uint16", crs="EPSG:32631", tiled=True,
                       transform=Affine(10, 0, 600000, 0, -10, 5000000)) as ds:
        ds.write(data)
    exe = Path(sys.executable).with_name("basemap")
    start = time.perf_counter()
    subprocess.run([str(exe), "colorize", str(src), str(dst), "--model", weights,
                    "--dn-offset", "-1000"], env=_colorize_env(), check=True,
                   capture_output=True)
    return time.perf_counter() - start, data.shape[1] * data.shape[2] / 1e6


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", required=True, help="checkout of the old commit")
    p.add_argument("--new", default=str(ROOT), help="checkout of the new code (default: here)")
    p.add_argument("--catalog", default=None)
    p.add_argument("--work", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--zoom", default="0-14")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--skip", default="", help="comma-separated: seams,colorize")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    catalog = Path(args.catalog) if args.catalog else ensure_world(work, "demo")
    weights = ensure_weights(work, args.weights)
    checkouts = {"old": Path(args.old).resolve(), "new": Path(args.new).resolve()}
    times: dict[str, list[float]] = {"old": [], "new": []}
    rss: dict[str, list[int]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            out = work / f"out-{name}"
            seconds, peak = timed_build(checkouts[name],
                                        build_cmd(out, catalog, weights, args.zoom,
                                                  args.workers), out)
            times[name].append(round(seconds, 2))
            rss[name].append(peak)
            print(f"round {r}: {name} {seconds:.1f} s", flush=True)
    record = json.loads((work / "out-new" / "build.json").read_text())
    mpx = sum(1 for b in record["blocks"] if b["status"] in ("ok", "degraded")) \
        * record["settings"]["block_size"] ** 2 / 1e6
    ratios = [o / n for o, n in zip(times["old"], times["new"], strict=True)]
    result = header() | {
        "benchmark": "commits", "old": str(checkouts["old"]), "new": str(checkouts["new"]),
        "command": build_cmd(Path("OUT"), catalog, weights, args.zoom, args.workers),
        "megapixels": mpx, "seconds": times, "speedup": round(median(ratios), 3),
        "speedup_rounds": [round(x, 3) for x in ratios],
        "peak_rss_mib": {k: round(median(v) / 2**20, 1) for k, v in rss.items()},
        "build_mpx_s": {k: round(mpx / median(v), 3) for k, v in times.items()},
    }
    skip = set(filter(None, args.skip.split(",")))
    if "seams" not in skip:
        result["seams"] = {k: seams(work / f"out-{k}") for k in checkouts}
    if "colorize" not in skip:
        seconds, cmpx = colorize_seconds(work, catalog, mpx, weights)
        result["colorize"] = {"seconds": round(seconds, 2), "megapixels": round(cmpx, 3),
                              "mpx_s": round(cmpx / seconds, 3)}
        result["build_over_colorize"] = round(result["build_mpx_s"]["new"]
                                              / result["colorize"]["mpx_s"], 3)
    print(json.dumps({k: v for k, v in result.items() if k not in header()}, indent=1))
    write_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
