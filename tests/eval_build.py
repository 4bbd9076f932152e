"""A small build-shaped output made from the synthetic test world, for `basemap evaluate` tests.

Layout as the build writes it: OUT/build.json, OUT/manifest.json (stac.write_manifest),
OUT/tilejson.json and OUT/tiles/14/{x}/{y}.png rendered with `linear` from the same composite
that evaluate re-reads (basemap.evaluate.read_sample). Blocks of 512 px, windows 256/32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from basemap import stac
from basemap.evaluate import read_build, read_sample
from basemap.grid import lonlat_to_px
from basemap.renderers import Region, get_renderer
from basemap.synth import world_bbox

ZOOM = 14
BUILD = {"zoom": ZOOM, "renderer": "linear", "block_size": 512, "window": 256, "overlap": 32,
         "composite": "mean", "feather": 8, "manifest": "manifest.json"}


def make_eval_build(out: Path, catalog: Path) -> Path:
    """Write the build-shaped output into OUT; returns OUT."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bbox = world_bbox("test")
    stac.write_manifest(stac.search(str(catalog), bbox), out / "manifest.json")
    (out / "build.json").write_text(json.dumps(BUILD))
    (out / "tilejson.json").write_text(json.dumps({
        "tilejson": "3.0.0", "name": "linear", "tiles": ["tiles/{z}/{x}/{y}.png"],
        "minzoom": ZOOM, "maxzoom": ZOOM, "bounds": list(bbox.as_tuple()),
    }))
    x0, y0 = lonlat_to_px(bbox.west, bbox.north, ZOOM)
    x1, y1 = lonlat_to_px(bbox.east, bbox.south, ZOOM)
    region = Region(int(x0), int(y0), int(x1) + 1, int(y1) + 1).aligned_out(256)
    build = read_build(out)
    pad = 16  # > feather + 1: the composite inside `region` is exact
    inputs = read_sample(build, Region(region.x0 - pad, region.y0 - pad, region.x1 + pad,
                                       region.y1 + pad).aligned_out(256))
    rgb = get_renderer("linear").render(inputs.composite, inputs.valid, inputs.origin, region)
    rows, cols = region.slices(inputs.origin)
    alpha = np.where(inputs.valid[rows, cols], 255, 0).astype(np.uint8)
    rgba = np.concatenate([rgb, alpha[None]]).transpose(1, 2, 0)
    for ty in range(region.y0 // 256, region.y1 // 256):
        for tx in range(region.x0 // 256, region.x1 // 256):
            r, c = ty * 256 - region.y0, tx * 256 - region.x0
            tile = rgba[r : r + 256, c : c + 256]
            if tile[..., 3].any():
                path = out / "tiles" / str(ZOOM) / str(tx) / f"{ty}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(tile, "RGBA").save(path)
    return out
