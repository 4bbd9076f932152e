"""Experiment: targets whose exposure adapts more to the scene, then the twin fine-tune.

    python experiments/exposure_experiment.py --normalize 0.75 --out build/v5.pt

The auto grader moves exposure ``NORMALIZE`` (0.25) of the way, in log, from a scene's median
luminance to its reference; the model card finds the held-out atmosphere check limited by that
(a gain the targets keep, the model keeps). This grades the recipe's real and synthetic pairs
with another fraction (into ``WORK/pairs-normalize-<f>``), fine-tunes the shipped weights on
them with the recipe's TWINS stage, and evaluates on the held-out scenes against targets graded
the same way (``<out>.metrics.json``). The package's grader is not changed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    """Grade, fine-tune, evaluate."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--normalize", type=float, required=True)
    ap.add_argument("--work", type=Path, default=Path("build/recipe"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init", type=Path, default=ROOT / "model" / "default.pt")
    args = ap.parse_args(argv)

    import torch
    from basemap.model.training import grader
    from basemap.model.training.heldout import evaluate_weights
    from basemap.model.training.recipe import SYNTH_SEEDS, TWINS, real_pairs, synth_pairs
    from basemap.model.training.train import train

    torch.set_num_threads(1)
    grader.NORMALIZE = args.normalize
    pairs = args.work / f"pairs-normalize-{args.normalize:g}"
    t0 = time.monotonic()
    real_pairs(pairs / "real")
    synth_pairs(args.work, pairs / "synth", SYNTH_SEEDS)
    print(f"pairs ready in {time.monotonic() - t0:.0f} s", flush=True)
    result = train(pairs, args.out, TWINS, progress=True, init=args.init)
    print(f"trained in {result['wall_s']:.0f} s", flush=True)
    metrics = evaluate_weights(args.out)
    metrics["experiment"] = {"normalize": args.normalize, "init": str(args.init)}
    args.out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics["summary"], indent=1))


if __name__ == "__main__":
    main()
