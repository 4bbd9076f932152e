"""How consistent under the simulated atmospheres can a grading without learning be?

    python experiments/consistency_bounds.py [FAMILY ...]     # e.g. oracle: only the oracle rows

For every held-out L2A frame (``basemap.model.training.heldout.pick_frames``), the atmospheres
check of ``model/metrics.json`` (mean CIEDE2000 between the renderings under the eight
atmospheres of ``basemap.model.training.augment.evaluation_atmospheres``, over L2A-Optimized's)
for families of gradings that know nothing about the atmosphere, and for one that knows the
ground's brightness:

- ``grader N``: the auto grader itself, fitted to each whole (perturbed) image: it removes the
  haze it estimates from the darkest pixels and pulls exposure a fraction N of the way to the
  reference (the shipped targets use N = 0.25);
- ``brighten N``: the same, but exposure only ever lifts (its gain at least 1): dark scenes are
  pulled towards the reference, bright ones (desert, snow) keep their own exposure;
- ``local a, s``: no haze removal; exposure normalised per pixel by the Gaussian-weighted
  (sigma s px) geometric mean of the luminance around it, to the power a (a = 1: a uniform
  gain cancels exactly), then the grader's tone curve and clarity;
- ``unet a``: the shipped U-Net fed the reflectance times (Y_REF / the scene's median
  luminance) to the power a (a = 1: a uniform gain cancels exactly before the network);
- ``oracle a`` and ``oracle-grader a``: the shipped U-Net, or the grader, with a perfect prior of
  how bright the ground is: the perturbed reflectance times (the clean scene's median luminance /
  the perturbed one's) to the power a (a = 1: every gain cancels and the clean scene renders as
  shipped, so what is left is the haze, the offsets and the noise).

Per variant: the worst and mean ratio (goal of the check: <= 0.5 on every scene), the least L*
std ratio (goal >= 0.8) and the range of mean L* minus L2A-Optimized's (goal within 12).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from basemap.model import tone
from basemap.model.training import grader
from basemap.model.training.augment import evaluation_atmospheres
from basemap.model.training.corpus import heldout_scenes
from basemap.model.training.heldout import pick_frames, render, spread
from scipy.ndimage import gaussian_filter

from basemap.colour import luminance, saturate, srgb_to_lab

GRADER_NORMALIZE = (0.25, 0.5, 0.8)
BRIGHTEN = (0.25, 0.5)
LOCAL = ((0.5, 24.0), (0.8, 24.0), (0.8, 64.0))
UNET_NORMALIZE = (0.6, 1.0)
ORACLE = (0.75, 1.0)


def local_grade(refl: np.ndarray, valid: np.ndarray, power: float, sigma: float) -> np.ndarray:
    """``local power, sigma`` of the module docstring -> uint8 (3, H, W)."""
    w = valid.astype(np.float32)
    log_y = np.log(np.maximum(luminance(refl), 1e-3)).astype(np.float32)
    den = gaussian_filter(w, sigma, mode="constant")
    mean = np.exp(np.divide(gaussian_filter(log_y * w, sigma, mode="constant"), den,
                            out=np.zeros_like(den), where=den > 1e-6))  # fmt: skip
    gain = np.clip((grader.Y_REF / mean) ** power, 0.4, 2.5)
    linear = np.maximum(refl, 0) * tone.EXPOSURE * gain[None]
    display = grader.tone(saturate(linear, tone.SATURATION)).astype(np.float32)
    y = luminance(display)
    display += (grader.CLARITY * np.clip((0.92 - y) / 0.25, 0, 1) * grader.detail(y, valid))[None]
    rgb = np.rint(255 * (tone.FLOOR + (tone.TOP - tone.FLOOR) * np.clip(display, 0, 1)))
    return np.where(valid[None], rgb, 0).astype(np.uint8)


def whole_grade(refl, valid, clear, normalize: float, darken: bool = True) -> np.ndarray:
    """``grader normalize`` (or ``brighten normalize``, `darken` False) of the module docstring."""
    kept = grader.NORMALIZE, grader.GAIN_LIMIT
    grader.NORMALIZE, grader.GAIN_LIMIT = normalize, 3.0
    try:
        params = grader.fit_params(refl, valid, clear)
    finally:
        grader.NORMALIZE, grader.GAIN_LIMIT = kept
    if not darken:
        params = replace(params, gain=max(params.gain, 1.0))
    return grader.apply_params(refl, valid, params)


def normalized_unet(refl: np.ndarray, valid: np.ndarray, power: float) -> np.ndarray:
    """``unet power`` of the module docstring."""
    median = median_luminance(refl, valid)
    return render("unet", refl * np.float32((grader.Y_REF / median) ** power), valid)


def median_luminance(refl: np.ndarray, valid: np.ndarray) -> float:
    """The median luminance of the valid pixels."""
    return float(np.median(luminance(refl)[valid]))


def oracle(refl, valid, clear, clean_median: float, power: float, grade: str) -> np.ndarray:
    """``oracle power`` (grade "unet") or ``oracle-grader power`` (grade "grader")."""
    scaled = refl * np.float32((clean_median / median_luminance(refl, valid)) ** power)
    if grade == "unet":
        return render("unet", scaled, valid)
    return grader.grade(scaled, valid, clear)[0]


def main(argv: list[str] | None = None) -> None:
    """Print one row per variant (only the families named in `argv`, if any)."""
    import sys

    families = sys.argv[1:] if argv is None else argv
    variants = {f"grader {n:g}": (lambda r, v, c, m, n=n: whole_grade(r, v, c, n))
                for n in GRADER_NORMALIZE}
    variants |= {f"brighten {n:g}": (lambda r, v, c, m, n=n: whole_grade(r, v, c, n, False))
                 for n in BRIGHTEN}
    variants |= {f"local {a:g}, {s:g}": (lambda r, v, c, m, a=a, s=s: local_grade(r, v, a, s))
                 for a, s in LOCAL}
    variants |= {f"unet {a:g}": (lambda r, v, c, m, a=a: normalized_unet(r, v, a))
                 for a in UNET_NORMALIZE}
    for kind, label in (("unet", "oracle"), ("grader", "oracle-grader")):
        variants |= {f"{label} {a:g}": (lambda r, v, c, m, a=a, k=kind: oracle(r, v, c, m, a, k))
                     for a in ORACLE}
    variants = {k: f for k, f in variants.items() if not families or k.split()[0] in families}
    rows: dict[str, list[tuple[str, float, float, float]]] = {k: [] for k in variants}
    for scene in (s for s in pick_frames(heldout_scenes()) if s.level == "L2A"):
        refl, valid, clear, _ = scene.read()
        seen = [a.apply(refl, valid) for a in evaluation_atmospheres()]
        anchor = [render("sh-l2a-optimized", r, valid) for r in seen]
        anchor_de, anchor_l = spread(anchor, valid), srgb_to_lab(anchor[0][:, valid])[0]
        clean_median = median_luminance(refl, valid)
        for name, grade in variants.items():
            renders = [grade(r, valid, clear, clean_median) for r in seen]
            lab = srgb_to_lab(renders[0][:, valid])[0]
            rows[name].append((scene.place, spread(renders, valid) / anchor_de,
                               lab.std() / anchor_l.std(), lab.mean() - anchor_l.mean()))
    print(f"{'variant':16s} {'worst ratio':>20s} {'mean':>6s} {'least std':>10s}",
          f"{'mean L* - SH':>14s}")
    for name, r in rows.items():
        ratio, std, dl = (np.array([x[i] for x in r]) for i in (1, 2, 3))
        worst = r[int(np.argmax(ratio))][0]
        print(f"{name:16s} {ratio.max():6.2f} ({worst:>11s}) {ratio.mean():6.2f} {std.min():10.2f}"
              f" {dl.min():+6.1f}..{dl.max():+5.1f}")


if __name__ == "__main__":
    main()
