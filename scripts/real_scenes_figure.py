"""The README's picture: held-out real Sentinel-2 scenes, the U-Net beside the classic renderers.

    python scripts/real_scenes_figure.py [WEIGHTS] --out docs/real-scenes.png

Rows: the U-Net, the auto grader's whole-image target (what the U-Net was trained towards, on
other places), then the classic renderers (sh-l2a-optimized, stretch-clahe, linear,
per-tile-stretch); columns: held-out scenes (none of their places was trained on). Each scene is
rendered whole, then shown at the same size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from basemap.model.training.corpus import heldout_scenes
from basemap.model.training.grader import grade
from basemap.model.training.heldout import render
from PIL import Image, ImageDraw

TARGET = "auto grader (target)"
ROWS = ("unet", TARGET, "sh-l2a-optimized", "stretch-clahe", "linear", "per-tile-stretch")
#: (scene name prefix, caption): farmland, pasture, forest and lake, snow, desert, port, hazy L1C.
COLUMNS = (
    ("S2A_MSIL2A_20170613T101031_87_48", "Austria, arable, Jun"),
    ("S2A_MSIL2A_20170617T113321_4_55", "Ireland, pasture, Jun"),
    ("S2A_MSIL2A_20171221T112501_56_35", "Portugal, Dec"),
    ("S2B_MSIL2A_20170924T93020_69_24", "Finland, forest+lake"),
    ("S2B_MSIL2A_20180204T94161_57_38", "Finland, snow, Feb"),
    ("29RKH", "Morocco, desert"),
    ("optical_cube_20231007", "Port of Antwerp, Oct"),
    ("T56JMM_20180629_L1C", "NSW, hazy L1C"),
)
SIZE, LABEL = 150, 150


def main() -> None:
    """Render the grid and write the PNG."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/real-scenes.png"))
    args = ap.parse_args()
    scenes = {s.name: s for s in heldout_scenes()}
    picked = [(next(s for n, s in scenes.items() if n.startswith(p)), c) for p, c in COLUMNS]
    sheet = Image.new("RGB", (LABEL + SIZE * len(picked), 20 + SIZE * len(ROWS)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, (scene, caption) in enumerate(picked):
        draw.text((LABEL + j * SIZE + 4, 4), caption, fill="black")
        refl, valid, clear, _ = scene.read()
        for i, name in enumerate(ROWS):
            if name == TARGET:
                rgb = grade(refl, valid, clear)[0]
            else:
                rgb = render(name, refl, valid, args.weights if name == "unet" else None)
            tile = Image.fromarray(np.moveaxis(rgb, 0, -1))
            side = min(tile.size)
            tile = tile.crop((0, 0, side, side)).resize((SIZE, SIZE), Image.LANCZOS)
            sheet.paste(tile, (LABEL + j * SIZE, 20 + i * SIZE))
            if j == 0:
                draw.text((4, 20 + i * SIZE + SIZE // 2), name, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
