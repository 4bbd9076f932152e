"""Read and reproject scenes into the global grid: windowed reads, exact warps, fixed chunks.

Partition invariance starts here (docs/design.md, invariant 5). A scene is warped into the global
Web Mercator grid one fixed **chunk** at a time: chunk (i, j) is the ``chunk x chunk`` square of
global pixels starting at ``(i * chunk, j * chunk)``. For each chunk the source window is computed
from the chunk alone (its bounds in the scene's CRS, plus ``margin`` source pixels for the
resampling kernel) and the warp uses GDAL's exact transformer (``tolerance=0``: no approximation
whose error depends on the size of the request). So a chunk's pixels depend only on (chunk,
scene), never on the block that asked for them, and neighbouring blocks resample the same pixels
identically.

Resampling (documented and fixed): **bilinear** for the 10 m reflectance bands (DN 0 is nodata and
is left out of the kernel by GDAL), **nearest** for the 20 m SCL classes.

All reads of a block happen in one task, with :func:`basemap.config.gdal_env` in effect. Assets
are opened, and their errors sorted and named, by :mod:`basemap.assets` (docs/reliability.md,
rows 7-11): a missing asset is skipped (the block is degraded), one that can't be read fails the
block, one that can't be used as given (no CRS, ...) fails the run with exit 2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from rasterio.errors import RasterioIOError

from basemap.assets import asset_error, check_asset, check_assets, forget, open_asset, read_dn
from basemap.config import gdal_env
from basemap.errors import MissingAssetError
from basemap.grid import (
    Region,
    region_lonlat_bounds,
    region_mercator_bounds,
    region_transform,
    world_size,
)
from basemap.quality import observation_quality
from basemap.stac.radiometry import to_reflectance

__all__ = ["gdal_env", "Observation", "observations", "read_scene", "ReadSettings", "SceneStack",
           "RESAMPLING", "check_assets"]

log = logging.getLogger(__name__)

#: Reflectance bands read from every scene, in output order.
BANDS = ("red", "green", "blue")
#: Resampling of the reflectance bands and of SCL (fixed; recorded in build.json).
RESAMPLING = {"reflectance": "bilinear", "scl": "nearest"}


@dataclass(frozen=True)
class ReadSettings:
    """How scenes are warped into the global grid.

    Attributes:
        zoom: the max zoom whose pixel grid is the target.
        chunk: side of the fixed warp chunks in global pixels (regions must be aligned to it).
        margin: extra source pixels around each chunk's footprint (covers the bilinear kernel).
    """

    zoom: int
    chunk: int = 128
    margin: int = 4

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.read.ReadSettings", self.zoom, self.chunk, self.margin)


@dataclass
class SceneStack:
    """One scene warped onto a region: DN (3, H, W) uint16 (0 = nodata) and SCL (H, W) or None."""

    dn: np.ndarray
    scl: np.ndarray | None


def chunk_aligned(region: Region, chunk: int) -> Region:
    """The smallest chunk-aligned region containing ``region``."""
    return region.aligned_out(chunk)


def _chunks(region: Region, settings: ReadSettings) -> list[Region]:
    c = settings.chunk
    w = world_size(settings.zoom)
    out = []
    for y in range(region.y0, region.y1, c):
        for x in range(region.x0, region.x1, c):
            if 0 <= x < w and 0 <= y < w:  # chunks beyond the world's edge stay nodata
                out.append(Region(x, y, x + c, y + c))
    return out


def _bbox_overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    if a[0] > a[2] or b[0] > b[2]:  # antimeridian boxes: let the warp decide
        return True
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _source_window(dataset, chunk: Region, settings: ReadSettings):
    """The window of ``dataset`` that chunk's warp reads, clipped to the dataset (or None)."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(
        "EPSG:3857", dataset.crs, *region_mercator_bounds(chunk, settings.zoom), densify_pts=21
    )
    inv = ~dataset.transform
    cols, rows = zip(*(inv * (x, y) for x in (left, right) for y in (bottom, top)), strict=True)
    m = settings.margin
    c0 = max(int(np.floor(min(cols))) - m, 0)
    r0 = max(int(np.floor(min(rows))) - m, 0)
    c1 = min(int(np.ceil(max(cols))) + m, dataset.width)
    r1 = min(int(np.ceil(max(rows))) + m, dataset.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def _warp_asset(datasets, chunks, region, settings, resampling, dtype):
    """Warp bands (one dataset per band, same grid) into ``region``, chunk by chunk."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject
    from rasterio.windows import Window

    first = datasets[0]
    out = np.zeros((len(datasets), region.height, region.width), dtype=dtype)
    windows = {c: _source_window(first, c, settings) for c in chunks}
    used = [w for w in windows.values() if w is not None]
    if not used:
        return out, False
    # One read of the union of the chunks' windows; each chunk warps its own slice of it, whose
    # origin and size depend on the chunk only.
    r0, r1 = min(w[0] for w in used), max(w[1] for w in used)
    c0, c1 = min(w[2] for w in used), max(w[3] for w in used)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    src = np.stack([read_dn(ds, window) for ds in datasets])
    touched = False
    for chunk, w in windows.items():
        if w is None:
            continue
        sub = src[:, w[0] - r0 : w[1] - r0, w[2] - c0 : w[3] - c0]
        if not sub.any():
            continue
        dst = np.zeros((len(datasets), chunk.height, chunk.width), dtype=dtype)
        reproject(
            np.ascontiguousarray(sub),
            dst,
            src_transform=first.window_transform(Window(w[2], w[0], w[3] - w[2], w[1] - w[0])),
            src_crs=first.crs,
            src_nodata=0,
            dst_transform=region_transform(chunk, settings.zoom),
            dst_crs="EPSG:3857",
            dst_nodata=0,
            resampling=getattr(Resampling, resampling),
            tolerance=0,  # exact transformer: no chunk-size dependent approximation
            num_threads=1,
            init_dest_nodata=True,
        )
        rows, cols = chunk.slices((region.x0, region.y0))
        out[:, rows, cols] = dst
        touched = touched or bool(dst.any())
    return out, touched


def _warp_bands(datasets, chunks, region, settings):
    """The reflectance bands warped onto ``region``: in one pass when they share a grid, else
    band by band (real catalogs mix them: one band georeferenced by a sidecar, another not)."""
    grids = {(ds.crs, ds.transform, ds.shape) for ds in datasets}
    if len(grids) == 1:
        return _warp_asset(datasets, chunks, region, settings, RESAMPLING["reflectance"],
                           "uint16")
    parts = [_warp_asset([ds], chunks, region, settings, RESAMPLING["reflectance"], "uint16")
             for ds in datasets]
    return np.concatenate([dn for dn, _ in parts]), any(t for _, t in parts)


def read_scene(scene, region: Region, settings: ReadSettings) -> SceneStack | None:
    """Warp a scene's red/green/blue DN and SCL onto a chunk-aligned region of the global grid.

    Args:
        scene: a :class:`basemap.stac.scene.Scene`.
        region: global pixels at ``settings.zoom``, aligned to ``settings.chunk``.
        settings: the warp settings.

    Returns:
        The warped scene, or None when it has no pixel in the region.

    Raises:
        MissingAssetError: an asset does not exist (the caller skips the scene).
        AssetError: an asset cannot be read (corrupt, unexpected dtype, ...).
    """
    if region != chunk_aligned(region, settings.chunk):
        raise ValueError(f"{region} is not aligned to the {settings.chunk}-px warp chunks")
    chunks = [
        c for c in _chunks(region, settings)
        if _bbox_overlaps(region_lonlat_bounds(c, settings.zoom), scene.bbox)
    ]
    if not chunks:
        return None
    datasets, error = [], None
    try:
        for key in BANDS:  # inside the try: a failed open closes the ones already open
            datasets.append(open_asset(scene.href(key), scene.id, key))
        for key, ds in zip(BANDS, datasets, strict=True):
            check_asset(ds, scene.href(key), scene.id, key)
        dn, touched = _warp_bands(datasets, chunks, region, settings)
    except RasterioIOError as exc:  # a read after the open: truncated data, server gone, ...
        hrefs = " / ".join(scene.href(k) for k in BANDS)
        error = asset_error(exc, hrefs, scene.id, "/".join(BANDS), "reading")
    finally:
        for ds in datasets:
            ds.close()
    if error is not None:
        for key in BANDS:
            forget(scene.href(key))
        raise error
    if not touched:
        return None
    has_scl = any(k == "scl" for k, _ in scene.assets)
    return SceneStack(dn=dn, scl=_read_scl(scene, chunks, region, settings) if has_scl else None)


def _read_scl(scene, chunks: list[Region], region: Region, settings: ReadSettings) -> np.ndarray:
    """The scene's SCL classes warped onto ``region`` (nearest), (H, W) uint8."""
    error = None
    ds = open_asset(scene.href("scl"), scene.id, "scl")
    try:
        check_asset(ds, scene.href("scl"), scene.id, "scl")
        scl, _ = _warp_asset([ds], chunks, region, settings, RESAMPLING["scl"], "uint8")
    except RasterioIOError as exc:
        error = asset_error(exc, scene.href("scl"), scene.id, "scl", "reading")
    finally:
        ds.close()
    if error is not None:
        forget(scene.href("scl"))
        raise error
    return scl[0]


class Observation(NamedTuple):
    """One scene seen in a region: reflectance (3, H, W), where it has data, where it is
    accepted (SCL and the cloud buffer) and its quality (:mod:`basemap.quality`)."""

    scene: object
    reflectance: np.ndarray
    valid: np.ndarray
    accepted: np.ndarray
    quality: np.ndarray


def observations(scenes, region: Region, settings: ReadSettings, feather: int,
                 skipped: list[str] | None = None):  # fmt: skip
    """Yield an :class:`Observation` for each scene with data in `region`, in manifest order.

    The one recipe shared by the build and `basemap evaluate`: warp, DN to reflectance by the
    scene's offset, SCL masks and quality. Scenes whose pixels are all rejected are yielded too
    (the composite fills holes from them).

    Args:
        scenes: :class:`basemap.stac.scene.Scene` values, in manifest order.
        region: chunk-aligned global pixels (see :func:`read_scene`), padded by
            :func:`basemap.quality.required_padding` around the pixels used.
        settings: the warp settings.
        feather: footprint-edge ramp of the quality (px).
        skipped: when given, scenes with a missing asset are logged and their ids appended here
            instead of raising :class:`MissingAssetError`.
    """
    for scene in scenes:
        try:
            stack = read_scene(scene, region, settings)
        except MissingAssetError as exc:
            if skipped is None:
                raise
            log.warning("%s: skipping scene: %s", region, exc)
            skipped.append(scene.id)
            continue
        if stack is None:
            continue
        refl, valid = to_reflectance(stack.dn, scene.dn_offset)
        if valid.any():
            accepted, quality = observation_quality(refl, valid, stack.scl, feather)
            yield Observation(scene, refl, valid, accepted, quality)
