"""Experiment: the grader and the tone prior on Sentinel Hub L2A-Optimized's curve, measured.

    python experiments/tone_experiment.py --contrast 0.85 --pivot 0.1 --out build/tone.pt

The model card bounds the atmospheres check by contrast: a gain moves a renderer in proportion
to its tone curve's log-slope, and the auto grader's filmic curve is 1.2-1.9x as steep as
L2A-Optimized's above reflectance 0.1 (Puglia's fields, the desert, snow) and 0.7-0.85x as steep
below it (dark forest: the L* std floor). This keeps the grader's haze, exposure, saturation and
clarity but replaces its roll-off and sRGB step with L2A-Optimized's adj / gamma curve
(:func:`basemap.render.classic.l2a_optimized_curve`), its log-slope times ``--contrast`` around
reflectance ``--pivot``, then sRGB; the U-Net's tone prior follows. It grades the recipe's pairs
that way (into ``WORK/pairs-tone-<contrast>-<pivot>``), trains the recipe and evaluates on the
held-out scenes against targets graded the same way (``<out>.metrics.json``). The package is
not changed; the weights it writes carry the filmic tone prior's format and render correctly
only under this patch (``<out>.metrics.json`` is the measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from basemap.colour import srgb_encode
from basemap.render.classic import l2a_optimized_curve


def tone(reflectance: np.ndarray, contrast: float, pivot: float) -> np.ndarray:
    """Graded reflectance -> sRGB-encoded [0, 1] on the experiment's curve (numpy)."""
    r = pivot * (np.maximum(reflectance, 1e-6) / pivot) ** contrast
    return srgb_encode(l2a_optimized_curve(r))


def patch(contrast: float, pivot: float) -> None:
    """Point the grader's tone and the U-Net's tone prior at the curve (checked equal)."""
    import torch
    from basemap.model import unet
    from basemap.model.tone import EXPOSURE, FLOOR, TOP
    from basemap.model.training import grader

    def grader_tone(linear):  # the grader's linear display light is reflectance x EXPOSURE
        return tone(np.maximum(linear, 0) / EXPOSURE, contrast, pivot)

    def neutral_grade(reflectance):
        lin = unet.saturate(reflectance.clamp(min=0))
        r = pivot * (lin.clamp(min=1e-6) / pivot) ** contrast
        lin = l2a_optimized_curve(r)  # torch too: np.clip dispatches to Tensor.clip
        srgb = torch.where(lin <= 0.0031308, 12.92 * lin,
                           1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)  # fmt: skip
        return FLOOR + (TOP - FLOOR) * srgb.clamp(0, 1)

    grader.tone, unet.neutral_grade = grader_tone, neutral_grade
    refl = np.random.default_rng(0).uniform(0.001, 0.9, (3, 16, 16)).astype(np.float32)
    clarity, grader.CLARITY = grader.CLARITY, 0.0
    want = grader.apply_params(refl, np.ones((16, 16), bool), grader.GradeParams(0.0, 1.0))
    grader.CLARITY = clarity
    got = neutral_grade(torch.from_numpy(refl)[None])[0].numpy() * 255
    assert np.abs(got - want).max() <= 0.51, "the tone prior and the grader disagree"


def main(argv: list[str] | None = None) -> None:
    """Grade, train, evaluate."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contrast", type=float, required=True)
    ap.add_argument("--pivot", type=float, required=True)
    ap.add_argument("--work", type=Path, default=Path("build/recipe"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    # The U-Net's ONNX export is cached by weights and code, not by this patch.
    os.environ["BASEMAP_CACHE"] = str(args.out.with_suffix(".cache").resolve())

    import torch
    from basemap.model.training.heldout import evaluate_weights
    from basemap.model.training.recipe import RECIPE, SYNTH_SEEDS, real_pairs, synth_pairs
    from basemap.model.training.train import train

    torch.set_num_threads(1)
    patch(args.contrast, args.pivot)
    pairs = args.work / f"pairs-tone-{args.contrast:g}-{args.pivot:g}"
    t0 = time.monotonic()
    real_pairs(pairs / "real")
    synth_pairs(args.work, pairs / "synth", SYNTH_SEEDS)
    print(f"pairs ready in {time.monotonic() - t0:.0f} s", flush=True)
    result = train(pairs, args.out, RECIPE, progress=True)
    print(f"trained in {result['wall_s']:.0f} s", flush=True)
    metrics = evaluate_weights(args.out)
    metrics["experiment"] = {"contrast": args.contrast, "pivot": args.pivot}
    args.out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics["summary"], indent=1))


if __name__ == "__main__":
    main()
