"""CIEDE2000 of each simulated atmosphere's rendering to the clean one, per renderer and scene.

    python experiments/atmosphere_breakdown.py puglia,antwerp-port [--model W --model W2 ...]

For the first held-out frame of each place (``basemap.model.training.heldout.pick_frames``): the
U-Net with each weights file (default: the shipped ones) and Sentinel Hub's L2A-Optimized,
rendered clean and under the atmospheres 2-8 of
``basemap.model.training.augment.evaluation_atmospheres``; one row per renderer, one column per
atmosphere (which of gain and haze moves a renderer).
With ``--bands``, each row also gives the renderer's clean mean L* within bands of
L2A-Optimized's clean L* (``BANDS``): where in the tonal range the two differ.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from basemap.model.training.augment import evaluation_atmospheres
from basemap.model.training.corpus import heldout_scenes
from basemap.model.training.heldout import mean_de, pick_frames, render

from basemap.colour import srgb_to_lab

#: Band edges of L2A-Optimized's L* for ``--bands``.
BANDS = (0, 30, 45, 60, 75, 85, 101)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("places", help="comma-separated held-out places, e.g. puglia,antwerp-port")
    ap.add_argument("--model", action="append", default=None, help="U-Net weights (repeatable)")
    ap.add_argument("--bands", action="store_true", help="mean L* per band of L2A-Optimized's")
    args = ap.parse_args(argv)
    frames = pick_frames(heldout_scenes())
    atmospheres = evaluation_atmospheres()[1:]
    print("atmospheres:", "; ".join(f"{i + 2}: haze {a.haze:g} k {a.exponent:g} gain {a.gain:g}"
                                    for i, a in enumerate(atmospheres)))  # fmt: skip
    renderers = [("unet", m) for m in (args.model or [None])] + [("sh-l2a-optimized", None)]
    for place in args.places.split(","):
        scene = next(f for f in frames if f.place == place)
        refl, valid, _, _ = scene.read()
        if args.bands:
            anchor = render("sh-l2a-optimized", refl, valid)
            band = np.digitize(srgb_to_lab(anchor[:, valid])[0], BANDS) - 1
        for name, model in renderers:
            clean = render(name, refl, valid, model)
            row = [mean_de(clean, render(name, a.apply(refl, valid), valid, model), valid)
                   for a in atmospheres]  # fmt: skip
            label = f"{name}{'' if model is None else ' ' + model}"
            line = f"{place:16s} {label:28s} " + " ".join(f"{v:5.2f}" for v in row)
            if args.bands:
                lab = srgb_to_lab(clean[:, valid])[0]
                line += "  L* by band: " + " ".join(
                    f"{lo}-{hi} {lab[band == i].mean():4.1f} ({(band == i).mean():.0%})"
                    for i, (lo, hi) in enumerate(itertools.pairwise(BANDS)) if (band == i).any())
            print(line)


if __name__ == "__main__":
    main()
