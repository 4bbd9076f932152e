"""Seam excess of builds of the synthetic world: invisible borders with the U-Net, visible with
the per-tile stretch (so the measure can see seams when there are some).

The test world's mosaic is small (about 1500 x 1000 px, a quarter of it valid after cloud
masking), so the excess of a border family with only a few members is noisy: a seam-free
rendering stays below 1.2 here (on the demo build the evaluated figures are <= 1.0,
docs/method.md).
"""

import json

import numpy as np
import pytest
import rasterio

from basemap.grid import ORIGIN_SHIFT
from basemap.pipeline.build import build
from basemap.pipeline.plan import BuildSettings
from basemap.qa.seams import seam_excess
from basemap.stac.query import Query
from basemap.synth.tiles import world_bbox
from basemap.types import ZoomRange

BLOCK = 512


def _excess(out, window_period, window_phases):
    with rasterio.open(out / "mosaic.vrt") as vrt:
        a, t = vrt.read(), vrt.transform
    origin = (round((t.c + ORIGIN_SHIFT) / t.a), round((ORIGIN_SHIFT - t.f) / t.a))
    rgb, alpha = a[:3], a[3]

    def ex(period, phase=0):
        return seam_excess(rgb, alpha, period, phase, origin=origin)

    return {
        "window": max(ex(window_period, p) for p in window_phases),
        "block": ex(BLOCK),
        "tile": ex(256),
    }


def _build(catalog, out, **kw):
    settings = BuildSettings(block_size=BLOCK, feather=32, tile_format="png", **kw)
    build(world_bbox("test"), ZoomRange(14, 14), str(out), settings, Query(str(catalog)), workers=0)


@pytest.mark.slow
def test_per_tile_stretch_shows_seams(synth_world, tmp_path):
    _build(synth_world, tmp_path, renderer="per-tile-stretch")
    ex = _excess(tmp_path, 512, (0,))  # its windows are the 512-px tiles of the global grid
    assert ex["window"] >= 1.5 and ex["block"] >= 1.5 and ex["tile"] >= 1.5, ex


@pytest.mark.slow
def test_unet_borders_are_invisible(synth_world, tmp_path):
    window, overlap = 128, 32
    _build(synth_world, tmp_path, renderer="unet", window=window, overlap=overlap)
    # window borders: both edges of the blend zones (phases 0 and overlap of the stride)
    ex = _excess(tmp_path, window - overlap, (0, overlap))
    assert all(np.isfinite(v) for v in ex.values()), ex
    assert max(ex.values()) <= 1.2, ex  # 1.2: small-mosaic noise, see the module docstring


@pytest.mark.slow
def test_unet_partition_invariance(synth_world, tmp_path):
    """Two neighbouring blocks built together or one by one give the same U-Net tiles (random
    weights: invariance is a property of the windowing, not of the training).

    Needs inference whose float results do not depend on the batch a window runs in: torch's
    CPU kernels for a smaller last batch differ in the last bit (1-level flips on ~1 px per
    tile); basemap.tools.colorize_geotiff's ONNX Runtime path (or fixed-size batches) is exact.
    """
    import filecmp

    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig
    from basemap.model.weights import save_weights

    from basemap.grid import lonlat_to_px, px_to_lonlat
    from basemap.types import BBox

    torch.manual_seed(0)
    net = ResUNet(UNetConfig(base=16, levels=4, tone_prior=False)).eval()
    weights = save_weights(tmp_path / "random.pt", net, Normalization())
    bb = world_bbox("test")
    x, y = lonlat_to_px(6.0, (bb.south + bb.north) / 2, 14)
    edge = (int(x) // BLOCK) * BLOCK  # a block border near 6 E
    west, north = px_to_lonlat(edge - 200, y - 100, 14)
    east, south = px_to_lonlat(edge + 200, y + 100, 14)
    mid, _ = px_to_lonlat(edge, y, 14)
    runs = {"both": BBox(west, south, east, north), "w": BBox(west, south, mid - 1e-6, north),
            "e": BBox(mid + 1e-6, south, east, north)}
    settings = BuildSettings(block_size=BLOCK, feather=32, tile_format="png", renderer="unet",
                             model=str(weights), window=128, overlap=32)
    for name, box in runs.items():
        summary = build(box, ZoomRange(14, 14), str(tmp_path / name), settings,
                        Query(str(synth_world)), workers=0)
        assert not summary.failed, summary.failed
    tiles = sorted(p.relative_to(tmp_path / "both") for p in (tmp_path / "both").rglob("*.png"))
    assert len(tiles) >= 8
    differ = [t for t in tiles
              if not filecmp.cmp(tmp_path / "both" / t,
                                 tmp_path / ("w" if (tmp_path / "w" / t).exists() else "e") / t,
                                 shallow=False)]
    assert not differ, f"{len(differ)} of {len(tiles)} tiles differ"
    # build.json names the precision asked for and the one the windows ran in, per block too
    from basemap.render.precision import resolve

    record = json.loads((tmp_path / "both" / "build.json").read_text())
    ran = resolve(settings.precision, "cpu")
    assert record["precision"] == {"asked": settings.precision, "used": [ran]}
    assert {b.get("precision") for b in record["blocks"] if b["cog"]} == {ran}
