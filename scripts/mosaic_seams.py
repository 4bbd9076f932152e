#!/usr/bin/env python
"""Seam excess of a whole build (OUT/mosaic.vrt) at its window, block and max-zoom tile borders.

Usage:
    python scripts/mosaic_seams.py OUT [--phases]

Window borders are the two edges of the U-Net's blend zones (phases 0 and `overlap` of the stride;
the worse is printed) or, for `per-tile-stretch`, its 512-px tiles. `--phases` also prints the
excess at every 16th phase of the window period: the spread a border family sits in by chance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from basemap.qa.evaluate import read_build, read_mosaic
from basemap.qa.seams import seam_excess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a build output folder (with build.json)")
    parser.add_argument("--phases", action="store_true", help="print the excess at other phases")
    args = parser.parse_args()
    settings = json.loads((args.out / "build.json").read_text())["settings"]
    data, region = read_mosaic(read_build(args.out))
    rgb, alpha, origin = data[:3], data[3], (region.x0, region.y0)

    def excess(period: int, phase: int) -> float:
        return seam_excess(rgb, alpha, period, phase, origin)

    if settings["renderer"] == "per-tile-stretch":
        window, phases = 512, (0,)
    else:
        window, phases = settings["window"] - settings["overlap"], (0, settings["overlap"])
    print(f"{settings['renderer']} ({rgb.shape[2]} x {rgb.shape[1]} px): "
          f"window {max(excess(window, p) for p in phases):.2f}  "
          f"block {excess(settings['block_size'], 0):.2f}  tile {excess(256, 0):.2f}")
    if args.phases:
        spread = {p: excess(window, p) for p in range(0, window, 16)}
        share = np.mean([v > 1 for v in spread.values()])
        shown = {p: round(v, 2) for p, v in spread.items()}
        print(f"window period {window}, excess by phase: {shown} ({share:.0%} above 1)")


if __name__ == "__main__":
    main()
