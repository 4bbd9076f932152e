"""The recipe of the shipped weights, in one command: ``python -m basemap.model.training.recipe``.

1. Pairs (the `auto` grader, :mod:`basemap.model.training.grader`, into
   ``WORK/pairs-v<its VERSION>``): the real training scenes of
   :mod:`basemap.model.training.corpus` (``real/<place>/<scene>``; frames under a quarter clear
   by SCL are skipped) and synthetic worlds (basemap.synth, demo preset) for SYNTH_SEEDS, every
   date (``synth/s<seed>/<item>``). Real and synthetic weigh the same in sampling, and within
   them each place (:func:`basemap.model.training.sampler.pair_weights`).
2. Training (:mod:`basemap.model.training.train`) with RECIPE: MAE + Laplacian + feature loss
   (VGG-16 with HED's weights, on 2 crops of each batch), every input through a random simulated
   atmosphere (:mod:`basemap.model.training.augment`), targets the grading of the clean image.
   With ``--twins`` (an experiment, not the shipped weights: see the model card) RECIPE's
   weights go to ``WORK/<out>.stage1.pt`` (reused when they exist with that configuration) and
   TWINS fine-tunes them: each crop through two atmospheres, the difference of the two
   renderings added to the loss.
3. Evaluation on the held-out real scenes (:mod:`basemap.model.training.heldout`) ->
   model/metrics.json.

``--lambdas 0.75,0.25,0 --out build/ablation.pt`` trains the same recipe without the feature loss
(the ablation in the model card).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from basemap.model.training.corpus import train_scenes
from basemap.model.training.grader import VERSION as GRADER_VERSION
from basemap.model.training.heldout import evaluate_weights
from basemap.model.training.losses import parse_lambdas
from basemap.model.training.pairs import SourceImage, find_sources, make_pair
from basemap.model.training.train import TrainConfig, train
from basemap.model.unet import UNetConfig
from basemap.model.weights import DEFAULT_WEIGHTS, load_weights

from basemap.synth.world import make_world

SYNTH_SEEDS = (1, 2, 3, 4)
#: Frames with less of their valid area clear (SCL) than this are not graded into pairs.
MIN_CLEAR = 0.25
RECIPE = TrainConfig(epochs=10, steps_per_epoch=200, batch=8, crop=128, lr=1e-3,
                     lambdas=(0.6, 0.2, 0.2), feature_crops=2, atmosphere=True, seed=0,
                     arch=UNetConfig(base=8, levels=5, tone_prior=True))  # fmt: skip
#: ``--twins``, from RECIPE's weights: every crop through two atmospheres, their outputs pulled
#: together (the twin term), at a lower learning rate.
TWINS = replace(RECIPE, epochs=4, lr=3e-4, consistency=1.0, seed=1)
#: The shipped weights' held-out checks (the model card's numbers).
DEFAULT_METRICS = DEFAULT_WEIGHTS.with_name("metrics.json")


def pairs_dir(work: Path) -> Path:
    """Where the recipe's pairs are graded under WORK: one folder per grader version."""
    return work / f"pairs-v{GRADER_VERSION}"


def synth_pairs(work: Path, root: Path, seeds: tuple[int, ...]) -> None:
    """Make (or reuse) demo worlds for `seeds`; grade every item into ROOT/s<seed>/."""
    for seed in seeds:
        dest = root / f"s{seed}"
        if (dest / ".done").is_file():
            continue
        catalog = work / f"world-{seed}" / "catalog.json"
        if not catalog.is_file():
            make_world(catalog.parent, seed=seed, preset="demo", progress=False)
        for src in find_sources(str(catalog)):
            make_pair(src, dest)
        (dest / ".done").touch()


def real_pairs(root: Path) -> int:
    """Grade the real training scenes into ROOT/<place>/<scene>/; returns how many."""
    n = 0
    for scene in train_scenes():
        if not (root / scene.place / scene.name / "target.tif").is_file():
            _, valid, clear, _ = scene.read()
            cloudy = clear is not None and (clear & valid).sum() < MIN_CLEAR * valid.sum()
            if valid.sum() < 256 or cloudy:
                continue
            make_pair(SourceImage(scene.name, scene.rgb, scene.dn_offset, scene.scl),
                      root / scene.place)
        n += 1
    return n


def _trained_with(weights: Path, config: TrainConfig) -> bool:
    """Whether `weights` exists and was trained with `config` (a finished stage is reused)."""
    return weights.is_file() and load_weights(weights)[2].get("trained_with") == json.loads(
        json.dumps(config.to_dict()))


def main(argv: list[str] | None = None) -> None:
    """Build the pairs, train, evaluate; write the weights and model/metrics.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("build/recipe"), help="scratch folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--lambdas", default=None, help="override m,l,f (the ablation: 0.75,0.25,0)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 on a shared 2-core machine: 2 spin-wait 7x slower)")
    ap.add_argument("--eval-only", action="store_true", help="evaluate --out, do not train")
    ap.add_argument("--twins", action="store_true",
                    help="then fine-tune with the twin term (TWINS; the experiment of the model "
                         "card, not the shipped weights)")  # fmt: skip
    ap.add_argument("--metrics", type=Path, default=None,
                    help="metrics JSON (default: model/metrics.json for the default weights, "
                         "else beside --out)")  # fmt: skip
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    stages = (RECIPE, TWINS) if args.twins else (RECIPE,)
    if args.lambdas is not None:
        stages = tuple(replace(c, lambdas=parse_lambdas(args.lambdas)) for c in stages)
    pairs = pairs_dir(args.work)
    t0 = time.monotonic()
    n_real = real_pairs(pairs / "real")
    synth_pairs(args.work, pairs / "synth", SYNTH_SEEDS)
    print(f"pairs ready in {time.monotonic() - t0:.0f} s ({n_real} real)", flush=True)
    if not args.eval_only and len(stages) == 1:
        result = train(pairs, args.out, stages[0], progress=True)
        print(f"trained in {result['wall_s']:.0f} s", flush=True)
    elif not args.eval_only:
        stage1 = args.work / f"{args.out.stem}.stage1.pt"
        if not _trained_with(stage1, stages[0]):
            result = train(pairs, stage1, stages[0], progress=True)
            print(f"stage 1 trained in {result['wall_s']:.0f} s", flush=True)
        result = train(pairs, args.out, stages[1], progress=True, init=stage1)
        print(f"twins trained in {result['wall_s']:.0f} s", flush=True)
    metrics = evaluate_weights(args.out)
    default = args.out.resolve() == DEFAULT_WEIGHTS.resolve()
    path = args.metrics or (DEFAULT_METRICS if default else args.out.with_suffix(".metrics.json"))
    path.write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics["summary"], indent=1))


if __name__ == "__main__":
    main()
