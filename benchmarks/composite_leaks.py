"""Cloud and haze leaks of every compositing method, on a synthetic world whose SCL lies.

    python benchmarks/composite_leaks.py [--preset demo] [--dates N] [--old CHECKOUT] \\
        [--seed 0] [--json PATH]

The synthetic world's scenes are rendered with real SCL's errors (``render_tile(lies=True)``:
thin cloud and haze unflagged, cloud edges under-detected by 3 px, faint shadows missed, a third
of the snow flagged as cloud) and keep their ground truth. Each tile is composited on its own
grid with every method, and with the composite as it was before quality scores (feathered mean
of the SCL-accepted observations, no cloud buffer, no haze score, no fill). A covered pixel is
**contaminated** when a band differs from the truth (the mean over dates of the clean ground) by
more than ``TOL_ABS + TOL_REL * truth`` reflectance; **holes** are covered pixels left without a
value. One run measures all, so the ratios compare like with like. ``--old`` adds every method
as another checkout composites (its ``basemap/mosaic/composite.py`` loaded beside this one's, as in
``composite_memory.py``); ``--dates N``: the preset with N dates (five days apart from 4 June)
instead of its own, for more dates per pixel than ``basemap.mosaic.candidates.MAX_CANDIDATES``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt

import numpy as np
from common import header, write_json
from composite_memory import load_composite

from basemap.mosaic import composite as new_composite
from basemap.mosaic.composite import METHOD_NAMES, compositor
from basemap.mosaic.observation_quality import accepted_mask, edge_score, observation_quality
from basemap.synth.layout import PRESETS, layout
from basemap.synth.tiles import raw_offset_in_dn, render_tile, tiles

TOL_ABS, TOL_REL = 0.02, 0.15
FEATHER = 64
BEFORE = "mean (before: SCL only, no fill)"


def tile_inputs(tile, preset: str, seed: int):
    """Per date (reflectance RGB, valid, SCL at 10 m) and the truth of one tile."""
    lay = layout(preset)
    scenes = render_tile(tile, preset, seed, lies=True)
    out = []
    for k, s in enumerate(scenes):
        offset = 1000 if raw_offset_in_dn(tile, lay, k) else 0
        valid = (s.dn[:3] > 0).all(axis=0)
        refl = np.where(valid, (s.dn[:3].astype(np.float32) - offset) / 10000, 0).astype(np.float32)
        scl = np.repeat(np.repeat(s.scl, 2, axis=0), 2, axis=1)
        out.append((refl, valid, scl))
    truth = np.mean([s.clean[:3] for s in scenes], axis=0)
    return out, truth


def with_dates(preset: str, dates: int) -> str:
    """The name of ``preset`` with ``dates`` dates, five days apart from 4 June 2023 (registered
    in the synthetic world's presets for this run)."""
    first = dt.date(2023, 6, 4)
    when = [(f"{first + dt.timedelta(days=5 * k)}T10:37:19.031000Z", "05.09")
            for k in range(dates)]  # fmt: skip
    name = f"{preset}-{dates}"
    PRESETS[name] = dataclasses.replace(PRESETS[preset], dates=tuple(when))
    return name


def composite(method: str, inputs, module=new_composite) -> tuple[np.ndarray, np.ndarray]:
    """(reflectance, valid) of one method over a tile's dates, with ``module``'s compositors."""
    shape = inputs[0][1].shape
    if method == BEFORE:
        comp = compositor("mean", shape)
        for refl, valid, scl in inputs:
            acc = accepted_mask(valid, scl)
            comp.add(refl, acc, acc, edge_score(acc, FEATHER))
        made = comp.result()
        return made.reflectance, made.valid
    comp = module.compositor(method, shape)
    for refl, valid, scl in inputs:
        accepted, quality = observation_quality(refl, valid, scl, FEATHER)
        comp.add(refl, valid, accepted, quality)
    made = comp.result()
    return made.reflectance, made.valid


def main() -> None:
    """Measure every method on every tile; print a table; write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--dates", type=int, default=None)
    ap.add_argument("--old", default=None, help="a checkout of the code before (optional)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.dates:
        args.preset = with_dates(args.preset, args.dates)
    old = load_composite(args.old) if args.old else None
    methods = (BEFORE, *METHOD_NAMES, *(f"{m} (old)" for m in METHOD_NAMES if old))
    bad, holes, differ, gap = (dict.fromkeys(methods, 0) for _ in range(4))
    covered = 0
    for tile in tiles(args.preset):
        inputs, truth = tile_inputs(tile, args.preset, args.seed)
        cover = np.any([v for _, v, _ in inputs], axis=0)
        covered += int(cover.sum())
        made = {}
        for m in methods:
            name, is_old = m.removesuffix(" (old)"), m.endswith(" (old)")
            made[m] = refl, got = composite(name, inputs, old if is_old else new_composite)
            off = (np.abs(refl - truth) > TOL_ABS + TOL_REL * truth).any(axis=0)
            bad[m] += int((cover & got & off).sum())
            holes[m] += int((cover & ~got).sum())
            if is_old:  # pixels where the new code's result is not the same bits, and by how much
                new_refl, new_got = made[name]
                differ[m] += int(((new_refl != refl).any(axis=0) | (new_got != got)).sum())
                gap[m] += float(np.abs(new_refl - refl)[:, cover].mean(axis=0).sum())
    rows = {m: {"contaminated_pct": 100 * bad[m] / covered, "holes_pct": 100 * holes[m] / covered}
            | ({"differ_from_new_pct": 100 * differ[m] / covered,
                 "mean_abs_diff_from_new": gap[m] / covered} if m.endswith("(old)") else {})
            for m in methods}  # fmt: skip
    print(f"{'method':<34} {'contaminated %':>15} {'holes %':>9} {'new differs %':>14} "
          f"{'mean |new-old|':>15}")
    for m, r in rows.items():
        print(f"{m:<34} {r['contaminated_pct']:>15.4f} {r['holes_pct']:>9.4f}" + (
            f" {r['differ_from_new_pct']:>14.3f} {r['mean_abs_diff_from_new']:>15.2e}"
            if "differ_from_new_pct" in r else ""))
    write_json(header() | {"preset": args.preset, "seed": args.seed, "covered_px": covered,
                           "old": args.old,
                           "tolerance": {"abs": TOL_ABS, "rel": TOL_REL}, "methods": rows},
               args.json)


if __name__ == "__main__":
    main()
