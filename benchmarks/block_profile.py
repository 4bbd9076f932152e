"""Where one block's time goes: cProfile of one block of the demo world, built in-process.

    python benchmarks/block_profile.py --catalog WORLD/catalog.json --json out.json

Plans the blocks of the preset's bbox (as ``basemap build`` does), takes the one with the most
scenes and does what the build's graph does for it: its part (composite, the windows it owns)
and the block (blend, COG, tiles) from its part and its neighbours' (computed beforehand, not
timed). Once to warm up (model load, GDAL caches), then once under cProfile on one thread; it
reports the time and the time of the parts: GDAL ``reproject`` calls, the warp's sampling (its
coordinate mapping included), distance transforms, reflectance, compositing, the network, COG and
tiles.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_json  # noqa: E402

#: part -> (file suffix, function name) of the functions whose cumulative time is the part.
PARTS = {
    "gdal_reproject": ("rasterio/warp.py", "reproject"),
    "warp_sampling": ("basemap/read/warp.py", "sample_bilinear"),  # the coordinate mapping inside
    "transform_bounds": ("rasterio/warp.py", "transform_bounds"),
    "read_dn": ("basemap/read/assets.py", "read_dn"),
    "distance_edt": ("scipy/ndimage/_morphology.py", "distance_transform_edt"),
    "distance_chamfer": ("basemap/mosaic/distance.py", "_chamfer"),
    "reflectance": ("basemap/stac/radiometry.py", "to_reflectance"),
    "quality": ("basemap/mosaic/observation_quality.py", "observation_quality"),
    "composite_add": ("basemap/mosaic/composite.py", "add"),
    "composite_result": ("basemap/mosaic/composite.py", "result"),
    "network": ("basemap/render/inference.py", "predict"),
    "windows": ("basemap/render/unet.py", "window_outputs"),
    "blend": ("basemap/render/unet.py", "blend_windows"),
    "cog": ("basemap/output/cog.py", "write_block_cog"),
    "tiles": ("basemap/output/pyramid.py", "write_levels"),
}


def busiest_job(catalog: str, preset: str, weights: str | None, block_size: int, work: Path):
    """(the BlockJobs of the preset's bbox, the index of the one with the most scenes)."""
    from basemap.grid import bbox_regions, plan_blocks
    from basemap.output.storage import open_storage
    from basemap.pipeline.plan import BlockJob, BuildSettings, assign_scenes, search_bbox
    from basemap.stac.search import search
    from basemap.synth.tiles import world_bbox

    settings = BuildSettings(zmin=14, zmax=14, model=weights, block_size=block_size)
    renderer = settings.make_renderer()
    planned = plan_blocks(bbox_regions(world_bbox(preset), 14), block_size, 14)
    scenes = search(catalog, search_bbox(planned, settings, renderer))
    assigned = assign_scenes(planned, scenes, settings, renderer)
    storage = open_storage(str(work))
    jobs = [BlockJob(block, chosen, settings, storage) for block, chosen in assigned]
    return jobs, max(range(len(jobs)), key=lambda i: len(jobs[i].scenes))


def parts_of(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each part of :data:`PARTS` (0 when it was not called)."""
    out = {}
    for name, (suffix, func) in PARTS.items():
        out[name] = round(sum(v[3] for (f, _, fn), v in stats.stats.items()
                              if fn == func and f.endswith(suffix)), 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Profile one block; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", required=True, help="catalog.json of `basemap synth`")
    p.add_argument("--preset", default="demo", choices=("demo", "test"))
    p.add_argument("--weights", default=None)
    p.add_argument("--block-size", type=int, default=2048)
    p.add_argument("--top", type=int, default=0, help="also print the top N functions")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from basemap.pipeline.block_task import build_block, render_part
    from basemap.pipeline.plan import window_owners

    with tempfile.TemporaryDirectory(prefix="bench-block-") as tmp:
        jobs, i = busiest_job(args.catalog, args.preset, args.weights, args.block_size,
                              Path(tmp))  # fmt: skip
        job = jobs[i]
        owned, needs = window_owners(jobs)
        # the neighbours' parts holding windows of this block (their own tasks in the graph)
        others = tuple(render_part(jobs[k], owned[k]) for k in needs[i][1:])

        def block_task():  # what the graph runs for this block: its part, then the block
            return build_block(job, (render_part(job, owned[i]), *others))

        block_task()  # warm-up: model load, GDAL caches
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        result = block_task()
        prof.disable()
        seconds = time.perf_counter() - start
    stats = pstats.Stats(prof)
    parts = parts_of(stats)
    result_info = {"block": job.block.name, "scenes": result.scenes, "status": result.status,
                   "windows_run": len(owned[i]), "parts_used": len(needs[i])}
    out = header() | {"benchmark": "block_profile", "block_s": round(seconds, 3),
                      "parts_s": parts, "network_share": round(parts["network"] / seconds, 3),
                      **result_info}
    print(f"block {job.block.name}: {seconds:.2f} s, {result.scenes} scenes, "
          f"{len(owned[i])} windows run, {len(needs[i])} parts")
    for name, s in parts.items():
        print(f"  {name:18s} {s:8.2f} s  {100 * s / seconds:5.1f} %")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)
    write_json(out, args.json)
    return out


if __name__ == "__main__":
    main()
