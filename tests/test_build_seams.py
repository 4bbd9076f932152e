"""Seam excess of builds of the synthetic world: invisible borders with the U-Net, visible with
the per-tile stretch (so the measure can see seams when there are some).

The test world's mosaic is small (about 1500 x 1000 px, a quarter of it valid after cloud
masking), so the excess of a border family with only a few members is noisy: a seam-free
rendering stays below 1.2 here (on the demo build the same figures are <= 1.0, README).
"""

import numpy as np
import pytest
import rasterio

from basemap.build import BuildSettings, build
from basemap.grid import ORIGIN_SHIFT
from basemap.seams import seam_excess
from basemap.synth import world_bbox
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
    build(world_bbox("test"), ZoomRange(14, 14), str(out), settings, str(catalog), workers=0,
          progress=False)


@pytest.mark.slow
def test_per_tile_stretch_shows_seams(synth_world, tmp_path):
    _build(synth_world, tmp_path, renderer="per-tile-stretch")
    ex = _excess(tmp_path, 512, (0,))  # its windows are the 512-px tiles of the global grid
    assert ex["window"] >= 1.5 and ex["block"] >= 1.5 and ex["tile"] >= 1.5, ex


@pytest.mark.slow
def test_unet_borders_are_invisible(synth_world, tmp_path):
    from basemap.model.weights import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"no shipped U-Net weights yet ({DEFAULT_WEIGHTS})")
    window, overlap = 128, 32
    _build(synth_world, tmp_path, renderer="unet", window=window, overlap=overlap)
    # window borders: both edges of the blend zones (phases 0 and overlap of the stride)
    ex = _excess(tmp_path, window - overlap, (0, overlap))
    assert all(np.isfinite(v) for v in ex.values()), ex
    assert max(ex.values()) <= 1.2, ex  # 1.2: small-mosaic noise, see the module docstring
