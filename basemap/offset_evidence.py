"""The DN offset of an item whose metadata may lie, decided from its pixels.

Earth Search ``sentinel-2-l2a`` items of processing baseline >= 04.00 flagged
``earthsearch:boa_offset_applied: false`` are meant to hold ESA's raw DN (reflectance * 10000 +
1000), but some hold pixels already shifted by -1000 (Element84/earth-search issues 66 and 71);
the -1000 applied again turns water, forest and crops black. A raw product has almost no DN below
1000 (that would be a negative reflectance), while a shifted one has them wherever the ground
is dark: in the blue band, even a bright desert has ~1 % of its pixels there. So the blue band's
overview is read once per such item, before the manifest is frozen (every block then uses the
same offset), and an item with more than :data:`SHIFTED_FRACTION` of its DN below 1000 is read
with offset 0, with a log line saying the data contradict the metadata.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from rasterio.errors import RasterioIOError

from basemap.assets import open_scene_asset
from basemap.errors import AssetError, AuthError

log = logging.getLogger(__name__)

#: Share of the valid blue DN below 1000 above which the pixels are taken as already shifted.
SHIFTED_FRACTION = 0.005
#: Side (px) of the decimated read of the blue band.
SAMPLE_SIDE = 512


def shifted_fraction(dn: np.ndarray, nodata: float | None = None) -> float:
    """Share of the valid (positive) DN below 1000 (0 when nothing is valid)."""
    valid = dn[(dn > 0) & (dn != nodata)] if nodata is not None else dn[dn > 0]
    return float((valid < 1000).mean()) if valid.size else 0.0


def decide_offset(scene):
    """``scene`` with its DN offset decided from its pixels when its metadata is in doubt
    (unchanged otherwise, or when the blue band can't be read: the blocks will say why)."""
    if not scene.offset_in_doubt:
        return scene
    try:
        with open_scene_asset(scene, "blue") as ds:
            scale = max(ds.width, ds.height) / SAMPLE_SIDE
            shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
            dn, nodata = ds.read(1, out_shape=shape), ds.nodata
    except AuthError:
        raise
    except (AssetError, RasterioIOError) as exc:
        log.warning("%s: cannot check its DN offset from the pixels (%s); using the "
                    "metadata's", scene.id, exc)
        return scene
    fraction = shifted_fraction(dn, nodata)
    if fraction > SHIFTED_FRACTION and scene.dn_offset != 0.0:
        log.warning(
            "%s: earthsearch:boa_offset_applied says false, but %.1f %% of its blue DN are "
            "below 1000, which a raw baseline %s product never has: its pixels are already "
            "shifted, read with offset 0 (Element84/earth-search issues 66, 71)",
            scene.id, 100 * fraction, scene.processing_baseline)
        return replace(scene, dn_offset=0.0, offset_in_doubt=False)
    return replace(scene, offset_in_doubt=False)
