"""Inference throughput of the shipped model: `python benchmarks/bench_colorize.py [--size N]`.

Times colorize_array over an N x N region (with its 512-px windows, 64-px overlap and halo) on
random reflectance and prints output Mpx/s, so the overlap cost is included.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model()
    # A region [a*stride + overlap, b*stride) needs the fewest windows: (b - a) per axis.
    grid = WindowGrid()
    region = (64, 64, 64 + args.size, 64 + args.size)
    ib = grid.input_bounds(*region)
    rng = np.random.default_rng(0)
    refl = rng.random((3, ib[3] - ib[1], ib[2] - ib[0]), dtype=np.float32) * np.float32(0.3)
    valid = np.ones(refl.shape[1:], bool)
    colorize_array(refl[:, :512, :512], valid[:512, :512], ib[:2], (64, 64, 128, 128), model)
    t = time.perf_counter()
    colorize_array(refl, valid, ib[:2], region, model, batch_size=args.batch)
    dt = time.perf_counter() - t
    n = len(list(grid.windows(*region)))
    print(f"{args.size}x{args.size} px, {n} windows, {torch.get_num_threads()} threads, "
          f"{model.device}: {dt:.1f} s = {args.size**2 / dt / 1e6:.2f} Mpx/s")


if __name__ == "__main__":
    main()
