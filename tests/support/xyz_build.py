"""A tiny hand-made tile pyramid + TileJSON (Pillow), standing in for a build's XYZ output.

Two renderers side by side, laid out like the build (OUT/<renderer>/tilejson.json +
OUT/<renderer>/tiles/{z}/{x}/{y}.<ext>): ``linear`` as WEBP (lossless) and ``unet`` as PNG. The
picture is a smooth pattern of global pixel coordinates, so neighbouring tiles join up and the map
shows something a screenshot can measure.
"""

from __future__ import annotations

import json
from pathlib import Path

import mercantile
import numpy as np
from PIL import Image

BOUNDS = (5.95, 45.95, 6.25, 46.15)  # W, S, E, N
ZOOMS = (8, 10)


def _tile_image(z: int, x: int, y: int, hue: int) -> Image.Image:
    """RGBA 256x256: stripes and a radial pattern in global pixels, opaque inside BOUNDS."""
    gy, gx = np.mgrid[0:256, 0:256].astype(np.float64)
    gx += x * 256
    gy += y * 256
    world = 256 * 2**z
    u, v = gx / world, gy / world
    r = 128 + 100 * np.sin(u * 2**z * 9.0)
    g = 128 + 100 * np.cos(v * 2**z * 7.0)
    b = np.full_like(r, hue)
    rgb = np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)
    lon = (u * 360.0) - 180.0
    lat = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * v))))
    inside = (lon >= BOUNDS[0]) & (lon <= BOUNDS[2]) & (lat >= BOUNDS[1]) & (lat <= BOUNDS[3])
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def make_xyz_build(out: Path) -> Path:
    """Write OUT/linear (webp) and OUT/unet (png) tile sets; returns OUT."""
    for renderer, ext, hue in (("linear", "webp", 40), ("unet", "png", 200)):
        root = Path(out) / renderer
        for z in range(ZOOMS[0], ZOOMS[1] + 1):
            for t in mercantile.tiles(*BOUNDS, zooms=z):
                path = root / "tiles" / str(z) / str(t.x) / f"{t.y}.{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                img = _tile_image(z, t.x, t.y, hue)
                if ext == "webp":
                    img.save(path, "WEBP", lossless=True)
                else:
                    img.save(path, "PNG")
        tilejson = {
            "tilejson": "3.0.0",
            "name": renderer,
            "tiles": [f"tiles/{{z}}/{{x}}/{{y}}.{ext}"],
            "minzoom": ZOOMS[0],
            "maxzoom": ZOOMS[1],
            "bounds": list(BOUNDS),
            "center": [(BOUNDS[0] + BOUNDS[2]) / 2, (BOUNDS[1] + BOUNDS[3]) / 2, ZOOMS[1]],
        }
        (root / "tilejson.json").write_text(json.dumps(tilejson))
    return Path(out)
