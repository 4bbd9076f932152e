"""What the network sees in training: a validation split of the pairs, and random crops of them
(flips, quarter turns, simulated atmospheres, nodata gap-filled as at inference), each source
group and place weighing the same."""

from __future__ import annotations

import numpy as np
import torch
from basemap.model.training.augment import random_atmosphere
from basemap.model.training.pairs import Pair

from basemap.errors import InputError
from basemap.render.gapfill import fill_gaps


def split_pairs(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Hold out whole pairs for validation (a seeded choice); with one pair, its bottom rows."""
    if len(pairs) >= 2:
        n_val = max(1, round(fraction * len(pairs)))
        order = np.random.default_rng(seed + 1).permutation(len(pairs))
        val = {int(i) for i in order[:n_val]}
        return [p for i, p in enumerate(pairs) if i not in val], [pairs[i] for i in sorted(val)]
    p = pairs[0]
    cut = int(p.valid.shape[0] * (1 - fraction))
    top = Pair(p.name, p.reflectance[:, :cut], p.valid[:cut], p.target[:, :cut])
    bottom = Pair(p.name, p.reflectance[:, cut:], p.valid[cut:], p.target[:, cut:])
    return [top], [bottom]


def pair_weights(pairs: list[Pair]) -> np.ndarray:
    """Sampling weights: each source group (a pair name's first path part, e.g. ``real`` or
    ``synth``) weighs the same, then each place in it (the second part), then valid area, so a
    big synthetic world or one large tile does not drown the small real scenes."""
    area = np.array([p.valid.sum() for p in pairs], dtype=np.float64)
    if area.sum() == 0:
        raise InputError("the training pairs have no valid pixel")
    parts = [p.name.split("/") for p in pairs]
    groups = [q[0] if len(q) > 1 else "" for q in parts]
    places = [tuple(q[:2]) if len(q) > 2 else tuple(q[:1]) for q in parts]
    w = np.zeros_like(area)
    for g in set(groups):
        in_g = [i for i, x in enumerate(groups) if x == g]
        g_places = {places[i] for i in in_g}
        for pl in g_places:
            idx = [i for i in in_g if places[i] == pl]
            total = area[idx].sum()
            if total > 0:
                w[idx] = area[idx] / total / len(g_places)
    return w / w.sum()


class CropSampler:
    """Random crops (flips, quarter turns, simulated atmospheres) of pairs (see pair_weights)."""

    def __init__(self, pairs: list[Pair], crop: int, rng: np.random.Generator,
                 atmosphere: bool = False) -> None:  # fmt: skip
        self.pairs, self.crop, self.rng, self.atmosphere = pairs, crop, rng, atmosphere
        self.weights = pair_weights(pairs)

    def one(self, augment: bool = True, views: int = 1
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """(reflectance (views,3,c,c), target float (3,c,c) in [0,1], mask (1,c,c)) of one crop.

        With augment, each view of the input (never the target) goes through its own random
        atmosphere when the sampler was made with ``atmosphere=True``
        (:mod:`basemap.model.training.augment`), and all go through one flip and quarter turn.
        Nodata is gap-filled as at inference (:mod:`basemap.render.gapfill`).
        """
        c = self.crop
        for _ in range(8):
            p = self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
            h, w = p.valid.shape
            y = int(self.rng.integers(0, max(h - c, 0) + 1))
            x = int(self.rng.integers(0, max(w - c, 0) + 1))
            mask = p.valid[y : y + c, x : x + c]
            if mask.mean() >= 0.3:
                break
        clean = np.zeros((3, c, c), np.float32)
        tgt = np.zeros((3, c, c), np.float32)
        m = np.zeros((1, c, c), np.float32)
        hh, ww = mask.shape
        clean[:, :hh, :ww] = p.reflectance[:, y : y + c, x : x + c] * mask
        tgt[:, :hh, :ww] = p.target[:, y : y + c, x : x + c] / 255.0 * mask
        m[0, :hh, :ww] = mask
        refl = np.stack([fill_gaps(random_atmosphere(self.rng).apply(clean, m[0] > 0, self.rng)
                                   if augment and self.atmosphere else clean, m[0] > 0)
                         for _ in range(views)])  # fmt: skip
        if augment:
            k = int(self.rng.integers(4))
            flip = bool(self.rng.integers(2))
            refl = np.rot90(refl, k, axes=(2, 3))
            tgt, m = (np.rot90(a, k, axes=(1, 2)) for a in (tgt, m))
            if flip:
                refl, tgt, m = refl[..., ::-1], tgt[..., ::-1], m[..., ::-1]
        return refl, tgt, m

    def batch(self, n: int, augment: bool = True, views: int = 1) -> tuple[torch.Tensor, ...]:
        """n crops stacked into tensors (reflectance, target, mask), `views` renderings of each
        crop's input: rows ``v * n + i`` are view v of crop i."""
        crops = [self.one(augment, views) for _ in range(n)]
        x = np.concatenate([np.stack([c[0][v] for c in crops]) for v in range(views)])
        y, m = (np.concatenate([np.stack([c[j] for c in crops])] * views) for j in (1, 2))
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (x, y, m))
