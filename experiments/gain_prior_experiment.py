"""Can the ground's brightness be learned from this corpus? A gain estimator, measured.

    python experiments/gain_prior_experiment.py [--seed S] [--desert-west] [--out build/F.json]

The atmospheres check needs a renderer that, shown one scene at several gains, renders it the same
each time, while it still renders snow brighter than forest (the lightness check). A renderer that
reads brightness from the level alone cannot do both (model card, "exposure rules are bounded by
the lightness check"); one that knows what the ground is could. This measures how much of that
knowledge the real training corpus holds, directly: a small fully convolutional network is
trained to predict the log of the gain applied to a crop of a real training scene (through the
random atmospheres of :mod:`basemap.model.training.augment`, with the gain drawn log-uniform in
``--gain``) from the perturbed crop alone, and a one-number baseline (log median luminance, least
squares on the same crops) is fitted beside it (``--steps`` of 16 crops; the network is saved beside
``--out``). Each is then run on every held-out frame under the eight evaluation atmospheres:

- ``slope``: d(predicted log gain) / d(true log gain) within a scene; 1 is a renderer that can
  undo every gain (the atmospheres check's gain part cancels), 0 one that cannot;
- ``clean_bias``: the predicted log gain of the clean scene (true: 0); normalising by it moves
  the scene's lightness by that much (snow read as "overexposed" would be darkened).

A network that learned what the ground is shows a slope near 1 with small clean biases on every
scene; one that learned the level shows the baseline's trade: a slope bought with biases that
grow with the scene's brightness. ``summary.<net|baseline>.prior_ok`` lists the frames where the
prior would do (``PRIOR_SLOPE``, ``PRIOR_BIAS``).

``--desert-west`` adds the west half of the held-out 29RKH desert tile to the training images and
measures the east half in place of the whole tile (as ``experiments/desert_experiment.py`` does for
the U-Net): whether the prior holds on unseen ground of a kind it has seen.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from basemap.model.training import augment
from basemap.model.training.augment import evaluation_atmospheres, random_atmosphere
from basemap.model.training.corpus import heldout_scenes, train_scenes
from basemap.model.training.heldout import pick_frames
from basemap.model.unet import Normalization
from torch import nn

from basemap.colour import luminance
from basemap.render.gapfill import fill_gaps

CROP = 128
BATCH = 16
MIN_CLEAR = 0.5
#: A prior good enough for the atmospheres check without losing the lightness check, per frame:
#: it follows at least this much of a gain (the snow and the desert need about 0.75)...
PRIOR_SLOPE = 0.75
#: ...and moves the clean scene's exposure by at most this much in log (a factor 1.35).
PRIOR_BIAS = 0.3


class GainNet(nn.Module):
    """Fully convolutional: (N, 3, H, W) normalised reflectance -> (N, 1, H/16, W/16) log gain."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        layers += [nn.Conv2d(c_in, c_in, 3, padding=2, dilation=2), nn.ReLU(),
                   nn.Conv2d(c_in, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense log-gain map."""
        return self.net(x)


def desert_halves() -> tuple[tuple, tuple]:
    """The 29RKH tile's west and east halves, each (reflectance, valid, usable)."""
    refl, valid, clear, _ = next(s for s in heldout_scenes() if s.place == "morocco-desert").read()
    half = refl.shape[2] // 2
    usable = valid & clear
    west, east = np.s_[:, :half], np.s_[:, half:]
    return tuple((refl[(slice(None), *side)], valid[side], usable[side]) for side in (west, east))


def load_train_images(desert_west: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(place, reflectance, usable mask) of every real training scene with a clear share (and
    the desert's west half with `desert_west`)."""
    out = []
    if desert_west:
        refl, _, usable = desert_halves()[0]
        out.append(("morocco-west", refl, usable))
    for s in train_scenes():
        refl, valid, clear, _ = s.read()
        usable = valid if clear is None else valid & clear
        if usable.sum() >= MIN_CLEAR * valid.sum() and usable.sum() >= 32 * 32:
            out.append((s.place, refl, usable))
    return out


def sample_batch(images, rng: np.random.Generator, norm: Normalization):
    """BATCH perturbed crops (normalised, gap-filled), their masks and true log gains."""
    places = sorted({p for p, _, _ in images})
    xs, ms, gs = [], [], []
    while len(xs) < BATCH:
        place = places[rng.integers(len(places))]
        cands = [i for i in images if i[0] == place]
        _, refl, usable = cands[rng.integers(len(cands))]
        h, w = usable.shape
        y, x = rng.integers(0, max(h - CROP, 0) + 1), rng.integers(0, max(w - CROP, 0) + 1)
        m = np.zeros((CROP, CROP), bool)
        sub = usable[y:y + CROP, x:x + CROP]
        m[:sub.shape[0], :sub.shape[1]] = sub
        if m.sum() < 0.3 * sub.size:
            continue
        r = np.zeros((3, CROP, CROP), np.float32)
        r[:, :sub.shape[0], :sub.shape[1]] = refl[:, y:y + CROP, x:x + CROP]
        atm = random_atmosphere(rng)
        xs.append(fill_gaps(atm.apply(r * m, m, rng), m))
        ms.append(m)
        gs.append(np.log(atm.gain))
    x = norm.apply(torch.from_numpy(np.stack(xs)))
    return x, torch.from_numpy(np.stack(ms)[:, None].astype(np.float32)), torch.tensor(gs)


def pooled(net: GainNet, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the dense prediction over the valid pixels of each image."""
    dense = nn.functional.interpolate(net(x), size=x.shape[-2:], mode="nearest")
    return (dense * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1)


def median_log_y(refl: np.ndarray, mask: np.ndarray) -> float:
    """The baseline's one feature: log of the median luminance over `mask`."""
    return float(np.log(max(np.median(luminance(refl[:, mask])), 1e-3)))


def train(images, steps: int, seed: int, width: int) -> tuple[GainNet, np.ndarray]:
    """The network, and the baseline's (intercept, slope) on log median luminance."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = Normalization()
    net = GainNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    feats, targets = [], []
    t0 = time.monotonic()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 1e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / steps)))
        x, m, g = sample_batch(images, rng, norm)
        loss = ((pooled(net, x, m) - g) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        refl = norm.invert(x).numpy()
        feats += [median_log_y(r, mm[0] > 0) for r, mm in zip(refl, m.numpy(), strict=True)]
        targets += g.tolist()
        if step % 250 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.monotonic() - t0:.0f} s)", flush=True)
    a = np.stack([np.ones(len(feats)), feats], axis=1)
    coef = np.linalg.lstsq(a, np.asarray(targets), rcond=None)[0]
    return net, coef


def pad16(refl: np.ndarray, valid: np.ndarray):
    """Pad an image on the right and bottom to multiples of 16 (the network's four poolings)."""
    h, w = valid.shape
    ph, pw = -h % 16, -w % 16
    r = np.pad(refl, ((0, 0), (0, ph), (0, pw)))
    v = np.pad(valid, ((0, ph), (0, pw)))
    return r, v


@torch.no_grad()
def measure(net: GainNet, coef: np.ndarray, desert_west: bool) -> list[dict]:
    """Slope and clean bias of the network and the baseline on every held-out frame (the
    desert's east half only, with `desert_west`)."""
    net.eval()
    norm = Normalization()
    rows = []
    atmospheres = evaluation_atmospheres()
    truth = np.log([a.gain for a in atmospheres])
    for s in pick_frames(heldout_scenes()):
        if desert_west and s.place == "morocco-desert":
            refl, valid, _ = desert_halves()[1]
        else:
            refl, valid, _, _ = s.read()
        if valid.sum() > 400_000:  # the desert tile: at most its central 1024 x 1024 px
            h, w = valid.shape
            cut = tuple(slice(max(0, n // 2 - 512), n // 2 + 512) for n in (h, w))
            refl, valid = refl[(slice(None), *cut)], valid[cut]
        preds, base = [], []
        for a in atmospheres:
            seen = a.apply(refl, valid, np.random.default_rng(0))
            r, v = pad16(fill_gaps(seen, valid), valid)
            x = norm.apply(torch.from_numpy(r)[None])
            m = torch.from_numpy(v[None, None].astype(np.float32))
            preds.append(float(pooled(net, x, m)))
            base.append(float(coef[0] + coef[1] * median_log_y(seen, valid)))
        row = {"scene": s.name, "place": s.place, "median_luminance": float(np.exp(
            median_log_y(refl, valid)))}
        for name, p in (("net", np.asarray(preds)), ("baseline", np.asarray(base))):
            slope = float(np.polyfit(truth, p, 1)[0])
            row[name] = {"slope": slope, "clean_bias": float(p[0])}
        rows.append(row)
        learned, level = row["net"], row["baseline"]
        print(f"{s.place:20s} Y {row['median_luminance']:.3f}  net slope {learned['slope']:.2f} "
              f"bias {learned['clean_bias']:+.2f}  baseline slope {level['slope']:.2f} "
              f"bias {level['clean_bias']:+.2f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Train the network and the baseline, measure them, write --out (and the network beside)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--gain", default="0.5,2.0", help="training gain range (log-uniform)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=16, help="channels of the first level")
    ap.add_argument("--desert-west", action="store_true",
                    help="train on the desert tile's west half too; measure its east half")
    ap.add_argument("--out", type=Path, default=Path("build/gain_prior.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    augment.GAIN = tuple(float(v) for v in args.gain.split(","))
    augment.CLEAN_FRACTION = 0.0  # every crop gets a gain (and an atmosphere)
    images = load_train_images(args.desert_west)
    print(f"{len(images)} training images", flush=True)
    t0 = time.monotonic()
    net, coef = train(images, args.steps, args.seed, args.width)
    wall = time.monotonic() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out.with_suffix(".pt"))
    rows = measure(net, coef, args.desert_west)
    summary = {k: {"slope": [min(r[k]["slope"] for r in rows), max(r[k]["slope"] for r in rows)],
                   "abs_clean_bias_max": max(abs(r[k]["clean_bias"]) for r in rows),
                   "prior_ok": [r["scene"] for r in rows if r[k]["slope"] >= PRIOR_SLOPE
                                and abs(r[k]["clean_bias"]) <= PRIOR_BIAS]}
               for k in ("net", "baseline")}
    args.out.write_text(json.dumps({"gain": augment.GAIN, "steps": args.steps, "width": args.width,
                                    "desert_west": args.desert_west, "train_s": wall,
                                    "baseline_coef": coef.tolist(), "scenes": rows,
                                    "summary": summary}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
