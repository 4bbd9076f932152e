"""The DN offset of an item whose metadata may lie, decided from its pixels.

Earth Search ``sentinel-2-l2a`` items of processing baseline >= 04.00 flagged
``earthsearch:boa_offset_applied: false`` are meant to hold ESA's raw DN (reflectance * 10000 +
1000), but some hold pixels already shifted by -1000 (Element84/earth-search issues 66 and 71);
the -1000 applied again turns water, forest and crops black. A raw product has almost no DN below
1000 over vegetation (a negative blue reflectance; 0.4 % of the pixels SCL calls vegetation in a
real raw Irish tile, but 8 % of its "not vegetated" peat and 17 % of its shadows), while in a
shifted one most vegetation is there (blue reflectance 0.01-0.06). So the blue band's and SCL's
overviews are read once per such item, before the manifest is frozen (every block then uses the
same offset), and an item with more than :data:`SHIFTED_FRACTION` of its vegetation's blue DN
below 1000 is read with offset 0, with a log line saying the data contradict the metadata. An
item without SCL, or with little vegetation, keeps its metadata's offset.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from rasterio.errors import RasterioIOError

from basemap.errors import AssetError, AuthError
from basemap.read.assets import open_scene_asset
from basemap.stac.scene import Scene

log = logging.getLogger(__name__)

#: Share of the vegetation's blue DN below 1000 above which the pixels are already shifted.
SHIFTED_FRACTION = 0.25
#: SCL class of vegetation; the fewest of its pixels that make evidence.
VEGETATION_SCL = 4
MIN_VEGETATION_PX = 100
#: Side (px) of the decimated read of the blue band.
SAMPLE_SIDE = 512


def shifted_fraction(dn: np.ndarray, vegetation: np.ndarray) -> float | None:
    """Share of the vegetation's valid (positive) DN below 1000 (None: too little of it)."""
    valid = dn[vegetation & (dn > 0)]
    return float((valid < 1000).mean()) if valid.size >= MIN_VEGETATION_PX else None


def decide_offset(scene: Scene) -> Scene:
    """``scene`` with its DN offset decided from its pixels when its metadata is in doubt
    (unchanged otherwise, or when the blue band can't be read: the blocks will say why)."""
    if not scene.offset_in_doubt or not any(k == "scl" for k, _ in scene.assets):
        return scene
    try:
        blue, scl = _overview(scene, "blue"), _overview(scene, "scl")
    except AuthError:
        raise
    except (AssetError, RasterioIOError) as exc:
        log.warning("%s: cannot check its DN offset from the pixels (%s); using the "
                    "metadata's", scene.id, exc)
        return scene
    if blue.shape != scl.shape:  # not one tile's grid: no pixel-to-pixel evidence
        return replace(scene, offset_in_doubt=False)
    fraction = shifted_fraction(blue, scl == VEGETATION_SCL)
    if fraction is not None and fraction > SHIFTED_FRACTION and scene.dn_offset != 0.0:
        log.warning(
            "%s: earthsearch:boa_offset_applied says false, but %.0f %% of its vegetation's blue "
            "DN are below 1000, which a raw baseline %s product never has: its pixels are already "
            "shifted, read with offset 0 (Element84/earth-search issues 66, 71)",
            scene.id, 100 * fraction, scene.processing_baseline)
        return replace(scene, dn_offset=0.0, offset_in_doubt=False)
    return replace(scene, offset_in_doubt=False)


def _overview(scene: Scene, key: str) -> np.ndarray:
    """A scene's asset read whole at about :data:`SAMPLE_SIDE` px (from its overviews; nearest,
    so SCL classes stay classes), the nodata value as 0."""
    with open_scene_asset(scene, key) as ds:
        scale = max(ds.width, ds.height) / SAMPLE_SIDE
        shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        data = ds.read(1, out_shape=shape)
        if ds.nodata is not None:
            data[data == ds.nodata] = 0
    return data
