"""The colour checks on held-out real scenes (model/metrics.json): what a basemap's users judge.

For every held-out scene (:func:`basemap.model.training.corpus.heldout_scenes`), the U-Net and
the classic renderers are compared on:

- ``clipped_pct``: valid pixels with a channel at 0 or 255;
- ``spearman``: rank correlation of input luminance and output L* (tone order kept);
- ``mean_L``, ``std_L``: lightness and its spread, against Sentinel Hub's L2A-Optimized;
- ``veg_a``, ``veg_bluish_pct``: over vegetation (NDVI > 0.4), mean a* and % with b* < -2;
- ``de_target``: mean CIEDE2000 to the auto grader's whole-image grading of the scene, and
  ``lab_offset_to_target``: which way it is off (mean L*, a*, b* minus the target's);
- ``de_atmospheres``: mean CIEDE2000 between renderings of the scene under the eight simulated
  atmospheres and gains of :func:`basemap.model.training.augment.evaluation_atmospheres`;
- ``de_dates`` (per place with a time series): mean CIEDE2000 between renderings of consecutive
  clear dates, over pixels clear in both.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
from basemap.model.training.augment import evaluation_atmospheres
from basemap.model.training.corpus import Scene, heldout_scenes
from basemap.model.training.grader import grade
from scipy.stats import spearmanr
from tqdm import tqdm

from basemap.colour import ciede2000, clipped_pct, luminance, srgb_to_lab
from basemap.grid import Region
from basemap.render.base import get_renderer

CLASSIC = ("sh-l2a-optimized", "linear", "stretch-clahe", "per-tile-stretch")
#: A frame counts for the date comparison when at least this much of it is clear.
CLEAR_DATE = 0.7
#: Without SCL, a pixel is taken as cloud when its blue reflectance exceeds this.
CLOUD_BLUE = 0.2
#: Ground L2A-Optimized renders at least this light (desert, snow) must stay bright...
BRIGHT_GROUND = 70.0
#: ...at this mean L* or more (and unclipped, as every scene).
BRIGHT_MIN_L = 60.0
#: Pixels compared per pair of renderings (a fixed stride through larger scenes).
SAMPLE = 100_000


def render(name: str, reflectance: np.ndarray, valid: np.ndarray,
           model: str | None = None) -> np.ndarray:
    """Render a whole image (padding it with nodata to whatever context the renderer needs)."""
    h, w = valid.shape
    region = Region(0, 0, w, h)
    r = get_renderer(name, model)
    need = r.input_region(region)
    refl = np.zeros((3, need.height, need.width), np.float32)
    mask = np.zeros((need.height, need.width), bool)
    rows, cols = region.slices((need.x0, need.y0))
    refl[:, rows, cols] = reflectance
    mask[rows, cols] = valid
    return r.render(refl, mask, (need.x0, need.y0), region)


def mean_de(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Mean CIEDE2000 over `where` (a fixed stride of at most SAMPLE pixels of it)."""
    step = max(1, int(where.sum()) // SAMPLE)
    pa, pb = a[:, where][:, ::step], b[:, where][:, ::step]
    return float(ciede2000(srgb_to_lab(pa), srgb_to_lab(pb)).mean())


def spread(renders: list[np.ndarray], valid: np.ndarray) -> float:
    """Mean CIEDE2000 between every pair of renderings of one scene (``de_atmospheres``)."""
    return float(np.mean([mean_de(a, b, valid) for a, b in itertools.combinations(renders, 2)]))


def _clear(scene_clear: np.ndarray | None, refl: np.ndarray, valid: np.ndarray) -> np.ndarray:
    clear = valid & (refl[2] < CLOUD_BLUE)
    return clear if scene_clear is None else clear & scene_clear


def scene_metrics(scene: Scene, renderers: dict[str, str | None]) -> dict:
    """Every number of the module docstring for one scene, per renderer."""
    refl, valid, clear_scl, nir = scene.read()
    clear = _clear(clear_scl, refl, valid)
    target, _ = grade(refl, valid, clear_scl)
    ndvi = (nir - refl[0]) / np.maximum(nir + refl[0], 1e-6) if nir is not None else None
    veg = valid & clear & (ndvi > 0.4) if ndvi is not None else None
    lum = luminance(refl)
    target_lab = srgb_to_lab(target[:, valid]).mean(axis=1)
    rows = {}
    for name, model in renderers.items():
        rgb = render(name, refl, valid, model)
        lab = srgb_to_lab(rgb[:, valid])
        idx = np.linspace(0, lab.shape[1] - 1, min(lab.shape[1], 50_000)).astype(int)
        row = {
            "clipped_pct": clipped_pct(rgb, valid),
            "spearman": float(spearmanr(lum[valid][idx], lab[0][idx]).statistic),
            "mean_L": float(lab[0].mean()),
            "std_L": float(lab[0].std()),
            "de_target": mean_de(rgb, target, valid),
            "lab_offset_to_target": [float(v) for v in lab.mean(axis=1) - target_lab],
        }
        if veg is not None and veg.sum() >= 50:
            vlab = srgb_to_lab(rgb[:, veg])
            row["veg_a"] = float(vlab[1].mean())
            row["veg_bluish_pct"] = float(100 * (vlab[2] < -2).mean())
        renders = [rgb] + [render(name, a.apply(refl, valid), valid, model)
                           for a in evaluation_atmospheres()[1:]]  # fmt: skip
        row["de_atmospheres"] = spread(renders, valid)
        rows[name] = row
    return {"scene": scene.name, "place": scene.place, "date": scene.date, "level": scene.level,
            "pixels": int(valid.sum()), "renderers": rows}  # fmt: skip


def date_consistency(scenes: list[Scene], renderers: dict[str, str | None]) -> dict:
    """Per series: mean CIEDE2000 between consecutive clear dates of the same ground."""
    out = {}
    by_place: dict[str, list[Scene]] = {}
    for s in scenes:  # one series: one place and one footprint (Puglia has six fields)
        by_place.setdefault(f"{s.place}/{s.name.split('_')[0]}", []).append(s)
    for place, group in by_place.items():
        frames = []
        for s in sorted(group, key=lambda s: s.date):
            refl, valid, clear_scl, _ = s.read()
            clear = _clear(clear_scl, refl, valid)
            if valid.sum() and clear.sum() >= CLEAR_DATE * valid.sum():
                frames.append((s, refl, valid, clear))
        if len(frames) < 2:
            continue
        res = {}
        for name, model in renderers.items():
            rgbs = [render(name, r, v, model) for _, r, v, _ in frames]
            des = []
            for (a, (_, _, va, ca)), (b, (_, _, vb, cb)) in itertools.pairwise(
                zip(rgbs, frames, strict=True)
            ):
                both = va & vb & ca & cb
                if both.sum() >= 50:
                    des.append(mean_de(a, b, both))
            res[name] = float(np.mean(des)) if des else None
        out[place] = {"dates": [f[0].date for f in frames], "de_dates": res}
    return out


def pick_frames(scenes: list[Scene]) -> list[Scene]:
    """The clearest frame of each series per quarter (at least half clear): time series are
    long, and a frame that is all cloud is not a picture of the ground. A place's only frame is
    kept whatever its clear share: it was picked as a picture of the ground, and without SCL
    the blue threshold takes snow for cloud (the Finnish snow patch)."""
    frames_of = Counter(s.place for s in scenes)
    best: dict[tuple, tuple[float, Scene]] = {}
    for s in scenes:
        refl, valid, clear_scl, _ = s.read()
        frac = _clear(clear_scl, refl, valid).sum() / max(valid.sum(), 1)
        quarter = (s.date[:4], (int(s.date[4:6] or 1) - 1) // 3)
        key = (s.place, s.name.split("_")[0], quarter)
        kept = frac >= 0.5 or frames_of[s.place] == 1
        if kept and (key not in best or frac > best[key][0]):
            best[key] = (frac, s)
    return [s for _, s in best.values()]


def evaluate_weights(weights: str | Path | None) -> dict:
    """All held-out checks for `weights` (None: the shipped default); a JSON-ready dict."""
    renderers: dict[str, str | None] = {"unet": str(weights) if weights else None}
    renderers |= {name: None for name in CLASSIC}
    scenes = heldout_scenes()
    frames = pick_frames(scenes)
    per_scene = [scene_metrics(s, renderers)
                 for s in tqdm(frames, desc="held-out scenes", unit="scene")]  # fmt: skip
    dates = date_consistency([s for s in scenes if s.place in ("antwerp-port", "puglia")],
                             renderers)  # fmt: skip
    return {"scenes": per_scene, "dates": dates, "summary": summarize(per_scene, dates)}


def atmosphere_ratio(row: dict, anchor: dict) -> float:
    """A renderer's ``de_atmospheres`` over L2A-Optimized's on the same scene."""
    return row["de_atmospheres"] / max(anchor["de_atmospheres"], 1e-6)


def summarize(per_scene: list[dict], dates: dict) -> dict:
    """The issue's acceptance checks, each with the worst case and whether it holds."""
    u = [(s, s["renderers"]["unet"], s["renderers"]["sh-l2a-optimized"]) for s in per_scene]
    l2a = [t for t in u if t[0]["level"] == "L2A"]
    l1c = [t for t in u if t[0]["level"] == "L1C" and "veg_bluish_pct" in t[1]]
    veg = [t for t in l2a if "veg_a" in t[1]]
    mean_de = float(np.mean([r["de_target"] for _, r, _ in u]))
    classic_de = {n: float(np.mean([s["renderers"][n]["de_target"] for s in per_scene]))
                  for n in CLASSIC}  # fmt: skip
    atm = [atmosphere_ratio(r, sh) for _, r, sh in u]
    classic_atm = {n: [max(atmosphere_ratio(s["renderers"][n], sh) for s, _, sh in u),
                       max(abs(s["renderers"][n]["mean_L"] - sh["mean_L"]) for s, _, sh in u)]
                   for n in CLASSIC[1:]}  # fmt: skip
    date_rows = [(p, d["de_dates"]["unet"], d["de_dates"]["sh-l2a-optimized"])
                 for p, d in dates.items()]  # fmt: skip
    bright = {s["place"]: r["mean_L"] for s, r, sh in u if sh["mean_L"] >= BRIGHT_GROUND}
    checks = {
        "max_clipped_pct": (max(r["clipped_pct"] for _, r, _ in u), "<= 1"),
        "min_spearman_l2a": (min(r["spearman"] for _, r, _ in l2a), ">= 0.9"),
        "max_abs_dL_vs_l2a_optimized": (max(abs(r["mean_L"] - sh["mean_L"]) for _, r, sh in u),
                                        "<= 12"),
        "min_std_ratio_vs_l2a_optimized": (min(r["std_L"] / sh["std_L"] for _, r, sh in u),
                                           ">= 0.8"),
        "max_veg_a": (max(r["veg_a"] for _, r, _ in veg), "< -2"),
        "max_veg_bluish_pct_l2a": (max(r["veg_bluish_pct"] for _, r, _ in veg), "<= 5"),
        "max_veg_bluish_pct_l1c": (max(r["veg_bluish_pct"] for _, r, _ in l1c) if l1c else None,
                                   "<= 50"),
        "l1c_veg_bluish_pct_l2a_optimized": (
            max(sh["veg_bluish_pct"] for _, _, sh in l1c) if l1c else None, "(reference)"),
        "bright_ground_mean_L": (bright, f">= {BRIGHT_MIN_L:g} where L2A-Optimized >= "
                                         f"{BRIGHT_GROUND:g} (desert, snow)"),
        "max_atmosphere_de_ratio_vs_l2a_optimized": (max(atm), "<= 0.5"),
        "classic_atmosphere_ratio_and_abs_dL": (classic_atm, "(reference: worst of each)"),
        "dates_de_unet_vs_l2a_optimized": ({p: [a, b] for p, a, b in date_rows}, "unet lower"),
        "mean_de_to_targets": (mean_de, "<= 5 and below every classic renderer"),
        "classic_de_to_targets": (classic_de, "(reference)"),
    }
    ok = {
        "max_clipped_pct": checks["max_clipped_pct"][0] <= 1,
        "min_spearman_l2a": checks["min_spearman_l2a"][0] >= 0.9,
        "max_abs_dL_vs_l2a_optimized": checks["max_abs_dL_vs_l2a_optimized"][0] <= 12,
        "min_std_ratio_vs_l2a_optimized": checks["min_std_ratio_vs_l2a_optimized"][0] >= 0.8,
        "max_veg_a": checks["max_veg_a"][0] < -2,
        "max_veg_bluish_pct_l2a": checks["max_veg_bluish_pct_l2a"][0] <= 5,
        "max_veg_bluish_pct_l1c": (checks["max_veg_bluish_pct_l1c"][0] or 0) <= 50,
        "bright_ground_mean_L": bool(bright) and min(bright.values()) >= BRIGHT_MIN_L,
        "max_atmosphere_de_ratio_vs_l2a_optimized": max(atm) <= 0.5,
        "dates_de_unet_vs_l2a_optimized": all(a is not None and b is not None and a < b
                                              for _, a, b in date_rows),
        "mean_de_to_targets": mean_de <= 5 and all(mean_de < v for v in classic_de.values()),
    }
    return {k: {"value": v[0], "goal": v[1], **({"ok": ok[k]} if k in ok else {})}
            for k, v in checks.items()}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """``python -m basemap.model.training.heldout [WEIGHTS]``: print the summary of the checks."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", default=None)
    ap.add_argument("--json", type=Path, default=None, help="write everything here")
    args = ap.parse_args(argv)
    result = evaluate_weights(args.weights)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
