"""Sentinel-2 L2A radiometry: THE DN offset rule, and DN -> reflectance.

reflectance = (DN + offset) / 10000, the offset decided per item by :func:`dn_offset_for`
(docs/design.md and the README's `basemap search` notes explain why each source needs its rule).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime as _dt
from datetime import timezone

import numpy as np

from basemap.errors import AssetError, StacError

log = logging.getLogger(__name__)

#: ESA's BOA_ADD_OFFSET from processing baseline 04.00 on (first products 2022-01-25).
BOA_ADD_OFFSET = -1000.0
BASELINE_04_START = _dt(2022, 1, 25, tzinfo=timezone.utc)
#: Reflectance above this is clipped (bright snow and specular glint reach ~1.2).
MAX_REFLECTANCE = 1.5
#: Integer dtypes accepted as Sentinel-2 DN.
DN_DTYPES = (np.dtype("uint16"), np.dtype("int16"), np.dtype("uint32"), np.dtype("int32"))


def parse_instant(text: str | None) -> _dt | None:
    if not text:
        return None
    try:
        value = _dt.fromisoformat(str(text).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _baseline_tuple(baseline: str | None) -> tuple[int, int] | None:
    if baseline is None:
        return None
    m = re.fullmatch(r"\s*0*(\d+)\.(\d+)\s*", str(baseline))
    return (int(m.group(1)), int(m.group(2))) if m else None


def processing_baseline(properties: dict) -> str | None:
    """``s2:processing_baseline`` (CDSE: ``processing:version``), else the ``_Nxxyy_`` part of
    ``s2:product_uri``, else None."""
    value = properties.get("s2:processing_baseline") or properties.get("processing:version")
    if value:
        return str(value)
    m = re.search(r"_N(\d{2})(\d{2})_", str(properties.get("s2:product_uri") or ""))
    return f"{m.group(1)}.{m.group(2)}" if m else None


def asset_offset(asset: dict) -> tuple[float, float] | None:
    """(offset, scale) of an asset's first band: STAC 1.0 ``raster:bands`` or STAC 1.1
    ``raster:offset``/``raster:scale`` (CDSE); None when it carries no offset."""
    band = ((asset.get("raster:bands") or [None])[0]) or {}
    if band.get("offset") is not None:
        return float(band["offset"]), float(band.get("scale") or 0.0001)
    if asset.get("raster:offset") is not None:
        return float(asset["raster:offset"]), float(asset.get("raster:scale") or 0.0001)
    return None


def offset_in_doubt(properties: dict) -> bool:
    """Whether an item's offset metadata is known to lie sometimes: Earth Search
    ``sentinel-2-l2a`` items of baseline >= 04.00 flagged ``earthsearch:boa_offset_applied``
    false, some of whose pixels are shifted all the same (Element84/earth-search issues 66, 71).
    Their offset is decided from the pixels (:mod:`basemap.read.offset_evidence`)."""
    flag = properties.get("earthsearch:boa_offset_applied")
    parsed = _baseline_tuple(processing_baseline(properties))
    return (flag is False or str(flag).strip().lower() == "false") and parsed is not None \
        and parsed >= (4, 0)


def dn_offset_for(properties: dict, red_asset: dict, collection: str) -> float:
    """THE rule deciding the DN offset of an item: reflectance = (DN + offset) / 10000.

    Decided in this order (first that applies wins):

    1. ``earthsearch:boa_offset_applied`` present (Earth Search v1): the flag is the truth, never
       ``raster:bands`` (Element84/earth-search issues 9, 66, 71). True: the -1000 is already in
       the pixels -> 0. False: the pixels are ESA's raw DN -> decided by the baseline (rule 3).
    2. the red asset carries an offset (``raster:bands``: Earth Search ``sentinel-2-c1-l2a``;
       ``raster:offset``: CDSE; unshifted pixels, correct metadata) -> ``offset / scale``
       (-0.1 / 0.0001 = -1000).
    3. A processing baseline (``s2:processing_baseline`` or from ``s2:product_uri``; Planetary
       Computer, which publishes no ``raster:bands``): >= 04.00 -> -1000, older -> 0.
    4. No baseline: a Collection-1 reprocessing (collection name with ``c1``) -> -1000;
       otherwise by acquisition date: on or after 2022-01-25 (first 04.00 products) -> -1000,
       before -> 0; logged as a guess.

    Args:
        properties: the item's properties (``datetime`` is used by rule 4).
        red_asset: the red asset's dict (its ``raster:*`` fields are read).
        collection: the item's collection id.

    Returns:
        -1000.0 or 0.0.

    Raises:
        StacError: ``raster:bands`` gives an offset that is neither -0.1 nor 0.
    """
    baseline = processing_baseline(properties)
    parsed = _baseline_tuple(baseline)
    flag = properties.get("earthsearch:boa_offset_applied")
    if flag is not None and not isinstance(flag, bool):
        flag = str(flag).strip().lower() == "true"
    if flag is True:
        return 0.0
    given = asset_offset(red_asset) if flag is None else None
    if given is not None:
        offset = round(given[0] / given[1])
        if offset not in (0, -1000):
            raise StacError(
                f"the red asset's offset {given[0]} (scale {given[1]}) of a {collection} item "
                "is neither -0.1 nor 0; cannot decide the DN offset"
            )
        return float(offset)
    if parsed is not None:
        return BOA_ADD_OFFSET if parsed >= (4, 0) else 0.0
    if "c1" in collection.lower():
        return BOA_ADD_OFFSET
    when = parse_instant(properties.get("datetime") or properties.get("start_datetime"))
    offset = BOA_ADD_OFFSET if when is not None and when >= BASELINE_04_START else 0.0
    log.info("no processing baseline on a %s item: DN offset %g guessed from its date", collection,
             offset)
    return offset


def to_reflectance(dn: np.ndarray, dn_offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Sentinel-2 DN -> float32 reflectance clipped to [0, 1.5], and the valid mask.

    Args:
        dn: (bands, H, W) or (H, W) integer DN; DN 0 is nodata in every band.
        dn_offset: from :func:`dn_offset_for` (-1000 or 0).

    Returns:
        (reflectance, valid): reflectance has dn's shape, 0 wherever invalid (never NaN); valid is
        (H, W) bool, True where every band has DN != 0.

    Raises:
        AssetError: dn is not an integer DN array (e.g. float, or uint8 from the 8-bit TCI).
    """
    dn = np.asarray(dn)
    if dn.dtype not in DN_DTYPES:
        raise AssetError(
            f"expected Sentinel-2 DN as uint16 (or int16/uint32/int32), got {dn.dtype}; "
            "read the L2A reflectance assets (red/green/blue), not the 8-bit 'visual' TCI"
        )
    if dn.ndim not in (2, 3):
        raise AssetError(f"expected a (bands, H, W) or (H, W) DN array, got shape {dn.shape}")
    valid = np.all(dn != 0, axis=0) if dn.ndim == 3 else dn != 0
    refl = (dn.astype(np.float32) + np.float32(dn_offset)) / np.float32(10000.0)
    np.clip(refl, 0.0, MAX_REFLECTANCE, out=refl)
    refl[..., ~valid] = 0.0
    return refl, valid
