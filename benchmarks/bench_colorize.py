"""Inference throughput: `python benchmarks/bench_colorize.py [--size N] [--model W ...]`.

Times colorize_array over an N x N region (with its 512-px windows, 64-px overlap and halo) on
random reflectance and prints output Mpx/s, so the overlap cost is included. With several
``--model`` weights files the models run in turns for ``--rounds`` rounds (the machine is noisy)
and the median of each is printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from basemap.grid import Region
from basemap.render.inference import load_model
from basemap.render.unet import colorize_array
from basemap.render.windows import WindowGrid


def main() -> None:
    """Run the benchmark and print one line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1728,
                    help="region side in px (1728 = 4 strides - overlap: 4x4 windows)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--model", action="append", default=None,
                    help="weights file (repeatable; default: the shipped model)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [load_model(m) for m in (args.model or [None])]
    # A region [a*stride + overlap, b*stride) needs the fewest windows: (b - a) per axis.
    grid = WindowGrid()
    region = Region(64, 64, 64 + args.size, 64 + args.size)
    ib = grid.input_region(region)
    rng = np.random.default_rng(0)
    refl = rng.random((3, ib.height, ib.width), dtype=np.float32) * np.float32(0.3)
    valid = np.ones(refl.shape[1:], bool)
    times: dict[str, list[float]] = {m.path: [] for m in models}
    for model in models:  # warm-up (ONNX export, first allocation)
        colorize_array(refl[:, :512, :512], valid[:512, :512], (ib.x0, ib.y0),
                       Region(64, 64, 128, 128), model)
    for _ in range(args.rounds):
        for model in models:
            t = time.perf_counter()
            colorize_array(refl, valid, (ib.x0, ib.y0), region, model, batch_size=args.batch)
            times[model.path].append(time.perf_counter() - t)
    n = len(list(grid.windows(region)))
    for model in models:
        dt = float(np.median(times[model.path]))
        print(f"{model.path}: {args.size}x{args.size} px, {n} windows, "
              f"{torch.get_num_threads()} threads, {model.device}: {dt:.1f} s = "
              f"{args.size**2 / dt / 1e6:.2f} Mpx/s (median of {args.rounds})")


if __name__ == "__main__":
    main()
