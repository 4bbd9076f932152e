"""Window overlap: its cost, (window / stride)^2, against the seam excess it leaves.

    python benchmarks/overlap_seams.py --weights model/default.pt \
        --json benchmarks/results/seams.json

For each overlap in ``--overlaps``, each scene is colorized whole with the production path
(:func:`basemap.render.unet.colorize_array`, windows on a grid starting at the scene's top-left),
then :func:`basemap.qa.seams.seam_excess` is measured at the window-border families: period
``stride``, phases 0 (where a window starts) and ``overlap`` (where the previous one ends); the
worse of the two is the scene's excess. Excess <= 1 means the window borders are no more visible
than columns picked at random. Reported per overlap: the cost, seconds per output Mpx, and the
median and worst excess over the scenes. The cheapest overlap whose worst excess is <= 1 is the
recommendation.

Scenes: ``--bands R,G,B`` (one scene: three single-band uint16 L2A GeoTIFFs, e.g. the real
29RKH sample), else every item of a synthetic world (``--catalog``, default: made with ``basemap
synth --preset demo`` in ``--work``), up to ``--scenes``. A seam needs a model that has learned
something: pass trained weights (the shipped default is used when present).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, median, table, write_json  # noqa: E402


def scenes_from(args) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(name, float32 reflectance (3, H, W), valid (H, W))]."""
    import rasterio

    from basemap.stac.radiometry import to_reflectance

    if args.bands:
        paths = args.bands.split(",")
        dn = np.stack([rasterio.open(p).read(1) for p in paths])
        refl, valid = to_reflectance(dn, args.dn_offset)
        return [(Path(paths[0]).parent.name, refl, valid)]
    from basemap.stac.search import search
    from basemap.synth.tiles import world_bbox

    catalog = args.catalog
    if catalog is None:
        from basemap.synth.world import make_world

        catalog = make_world(Path(args.work) / "world-demo", seed=0, preset="demo")
    out = []
    for scene in search(str(catalog), world_bbox("demo"))[: args.scenes]:
        dn = np.stack([rasterio.open(scene.href(k)).read(1) for k in ("red", "green", "blue")])
        refl, valid = to_reflectance(dn, scene.dn_offset)
        out.append((scene.id, refl, valid))
    return out


def colorize_whole(model, refl: np.ndarray, valid: np.ndarray, window: int, overlap: int):
    """Colorize a whole image (window grid from its top-left; outside = invalid)."""
    from basemap.grid import Region
    from basemap.render.unet import colorize_array
    from basemap.render.windows import WindowGrid

    h, w = valid.shape
    grid = WindowGrid(window, overlap)
    need = grid.input_region(Region(0, 0, w, h))
    x0, y0, x1, y1 = need.x0, need.y0, need.x1, need.y1
    pad = ((0, 0), (-y0, y1 - h), (-x0, x1 - w))
    r = np.pad(refl, pad)
    v = np.pad(valid, pad[1:])
    return colorize_array(r, v, (x0, y0), Region(0, 0, w, h), model, window, overlap)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="U-Net weights (default: the shipped ones)")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--overlaps", default="0,16,32,64,128")
    p.add_argument("--bands", default=None, help="R,G,B single-band uint16 GeoTIFFs (one scene)")
    p.add_argument("--dn-offset", type=float, default=0.0)
    p.add_argument("--catalog", default=None)
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--work", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.work = args.work or tempfile.mkdtemp(prefix="bench-seams-")

    from basemap.model.weights import DEFAULT_WEIGHTS

    from basemap.qa.seams import seam_excess
    from basemap.render.inference import load_model

    weights = args.weights or str(DEFAULT_WEIGHTS)
    if not Path(weights).is_file():
        raise SystemExit(f"{weights}: no weights (train them, or pass --weights)")
    model = load_model(weights, device="cpu")
    scenes = scenes_from(args)
    rows = []
    for overlap in (int(o) for o in args.overlaps.split(",")):
        stride = args.window - overlap
        excess, seconds, mpx = [], 0.0, 0.0
        for _, refl, valid in scenes:
            t = time.perf_counter()
            rgb = colorize_whole(model, refl, valid, args.window, overlap)
            seconds += time.perf_counter() - t
            mpx += valid.size / 1e6
            phases = {0, overlap % stride}
            values = [seam_excess(rgb, valid, stride, q) for q in phases]
            values = [v for v in values if not np.isnan(v)]
            if values:
                excess.append(max(values))
        rows.append({"overlap": overlap, "stride": stride,
                     "cost": round((args.window / stride) ** 2, 4),
                     "s_per_mpx": round(seconds / mpx, 3),
                     "excess_median": round(median(excess), 3),
                     "excess_max": round(max(excess), 3) if excess else float("nan")})
    ok = [r for r in rows if r["excess_max"] <= 1.0]
    best = min(ok, key=lambda r: r["cost"]) if ok else None
    result = header() | {
        "benchmark": "overlap_seams",
        "weights": weights,
        "window": args.window,
        "scenes": [name for name, _, _ in scenes],
        "scene_shapes": [list(v.shape) for _, _, v in scenes],
        "rows": rows,
        "cheapest_overlap_with_excess_le_1": best["overlap"] if best else None,
    }
    print(table(rows, ["overlap", "stride", "cost", "s_per_mpx", "excess_median", "excess_max"]))
    print(f"cheapest overlap with worst excess <= 1: {result['cheapest_overlap_with_excess_le_1']}")
    write_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
