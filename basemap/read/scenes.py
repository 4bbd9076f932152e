"""Read scenes into the global grid: one windowed read per asset, one coordinate mapping per
(region, CRS), fixed samplers.

Partition invariance starts here (docs/design.md, invariant 5). A region's pixels are mapped into
each source CRS by :class:`basemap.read.warp.Lattice` (exact PROJ transforms at a fixed lattice of
the global grid, bilinear between its nodes), made once per (region, CRS) and shared by every band
of every scene in that CRS; each asset is read once, in the window its pixels fall in, and
sampled at those positions. A pixel's value depends only on (its global position, scene), never
on the region that asked for it, so neighbouring blocks resample the same pixels identically.

Resampling (documented and fixed, :mod:`basemap.read.warp`): GDAL's 4-sample **bilinear** for the
10 m reflectance bands (DN 0 is nodata and is left out of the kernel), **nearest** for the 20 m SCL
classes.

All reads of a block happen in one task, with :func:`basemap.config.gdal_env` in effect. Assets
are opened, and their errors sorted and named, by :mod:`basemap.read.assets` (docs/reliability.md,
rows 7-11): a missing asset is skipped (the block is degraded), one that can't be read fails the
block, one that can't be used as given (no CRS, ...) fails the run with exit 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader

from basemap import config
from basemap.errors import AssetError, AuthError, MissingAssetError
from basemap.grid import Region, expand, paste, region_lonlat_bounds, union
from basemap.mosaic.observation_quality import observation_quality
from basemap.read.access import forget_token
from basemap.read.assets import (
    asset_error,
    check_asset,
    forget,
    open_scene_asset,
    read_dn,
)
from basemap.read.warp import (
    LATTICE,
    Lattice,
    SourcePixels,
    padded,
    sample_bilinear,
    sample_nearest,
)
from basemap.stac.radiometry import to_reflectance
from basemap.stac.scene import Scene
from basemap.stac.sources import profile_named

log = logging.getLogger(__name__)

#: Reflectance bands read from every scene, in output order.
BANDS = ("red", "green", "blue")
#: Resampling of the reflectance bands and of SCL (fixed; recorded in build.json).
RESAMPLING = {"reflectance": "bilinear (GDAL's 4-sample kernel)", "scl": "nearest",
              "mapping": f"exact at a {LATTICE}-px global lattice, bilinear between"}


@dataclass(frozen=True)
class ReadSettings:
    """How scenes are warped into the global grid.

    Attributes:
        zoom: the max zoom whose pixel grid is the target.
        chunk: regions are aligned to it (global px, a multiple of the mapping's lattice).
    """

    zoom: int
    chunk: int = config.CHUNK

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.read.scenes.ReadSettings", self.zoom, self.chunk)


@dataclass
class SceneStack:
    """One scene warped onto the part of a region it can cover (``region``, see
    :func:`read_scene`): DN (3, H, W) uint16 (0 = nodata) and SCL (H, W) or None."""

    dn: np.ndarray
    scl: np.ndarray | None
    region: Region


def chunk_aligned(region: Region, chunk: int) -> Region:
    """The smallest chunk-aligned region containing ``region``."""
    return region.aligned_out(chunk)


def _bbox_overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    if a[0] > a[2] or b[0] > b[2]:  # antimeridian boxes: let the warp decide
        return True
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _lattice(lattices: dict, region: Region, zoom: int, crs: CRS) -> Lattice:
    """The region's coordinate mapping into ``crs``, made once per (region, CRS)."""
    key = (region, zoom, crs.to_wkt())
    if key not in lattices:
        lattices[key] = Lattice.of(region, zoom, key[2])
    return lattices[key]


def _pixels(ds: DatasetReader, region: Region, settings: ReadSettings,
            lattices: dict) -> tuple[Lattice, SourcePixels]:
    """(lattice, :class:`SourcePixels`) of a dataset's grid for ``region``."""
    lattice = _lattice(lattices, region, settings.zoom, ds.crs)
    return lattice, SourcePixels.of(lattice, ds.transform, (ds.height, ds.width))


def _crop(parts: list[Region | None], region: Region) -> Region | None:
    """The part of ``region`` a scene's arrays cover: where its pixels can fall, plus one
    lattice cell of nodata around them (so that the quality's distances see the scene's edge
    and come out as in the whole region), clipped to the region; aligned as the region is."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    grown = expand(union(parts), LATTICE)
    return Region(max(grown.x0, region.x0), max(grown.y0, region.y0),
                  min(grown.x1, region.x1), min(grown.y1, region.y1))


def _warp_asset(datasets: list[DatasetReader], lattice: Lattice, pixels: SourcePixels,
                crop: Region, bilinear: bool, dtype: str) -> tuple[np.ndarray, bool]:
    """Sample bands (one dataset per band, same grid) onto ``crop``: one read of the window
    the pixels fall in, one coordinate mapping and one set of taps for all bands."""
    from rasterio.windows import Window

    out = np.zeros((len(datasets), crop.height, crop.width), dtype=dtype)
    p = pixels.part
    part = p and Region(max(p.x0, crop.x0), max(p.y0, crop.y0), min(p.x1, crop.x1),
                        min(p.y1, crop.y1))
    if part is None or part.width <= 0 or part.height <= 0:
        return out, False
    r0, r1, c0, c1 = pixels.window
    srcs = [read_dn(ds, Window(c0, r0, c1 - c0, r1 - r0)) for ds in datasets]
    if not any(s.any() for s in srcs):
        return out, False
    rows, cols = part.slices((crop.x0, crop.y0))
    if bilinear:
        out[:, rows, cols] = sample_bilinear(padded(srcs), pixels, lattice, part)
    else:
        for band, src in enumerate(srcs):
            out[band, rows, cols] = sample_nearest(src, pixels, lattice, part)
    return out, bool(out.any())


def _warp_bands(datasets: list[DatasetReader], region: Region, settings: ReadSettings,
                lattices: dict) -> tuple[Region | None, np.ndarray | None, bool]:
    """(crop, DN on it, touched): the reflectance bands sampled onto the crop of ``region``, in
    one pass when they share a grid, else band by band (real catalogs mix them: one band
    georeferenced by a sidecar, another not)."""
    pixels = [_pixels(ds, region, settings, lattices) for ds in datasets]
    crop = _crop([px.part for _, px in pixels], region)
    if crop is None:
        return None, None, False
    if len({(ds.crs, ds.transform, ds.shape) for ds in datasets}) == 1:
        return crop, *_warp_asset(datasets, *pixels[0], crop, True, "uint16")
    parts = [_warp_asset([ds], *px, crop, True, "uint16")
             for ds, px in zip(datasets, pixels, strict=True)]
    return crop, np.concatenate([dn for dn, _ in parts]), any(t for _, t in parts)


def embed(array: np.ndarray, crop: Region, region: Region) -> np.ndarray:
    """An array over ``crop`` placed in a zero array over ``region`` (which contains it)."""
    return paste(array, crop.slices((region.x0, region.y0)), (region.height, region.width))


def read_scene(scene: Scene, region: Region, settings: ReadSettings,
               lattices: dict | None = None) -> SceneStack | None:  # fmt: skip
    """Warp a scene's red/green/blue DN and SCL onto a chunk-aligned region of the global grid.

    Args:
        scene: a :class:`basemap.stac.scene.Scene`.
        region: global pixels at ``settings.zoom``, aligned to ``settings.chunk``.
        settings: the warp settings.
        lattices: the region's coordinate mappings by CRS, filled as needed (pass the same dict
            for every scene of a region: one mapping per CRS).

    Returns:
        The warped scene, or None when it has no pixel in the region. Its arrays cover the part
        of ``region`` where the scene can have pixels, plus a lattice cell of nodata around it
        (``SceneStack.region``; :func:`embed` puts them in the whole region): per-pixel work
        after the read is done on that part only.

    Raises:
        MissingAssetError: an asset does not exist (the caller skips the scene).
        AuthError: the archive refused an asset, also after signing its hrefs again.
        AssetError: an asset cannot be read (corrupt, unexpected dtype, ...).
    """
    try:
        return _read_scene(scene, region, settings, lattices)
    except AssetError as exc:
        if profile_named(scene.source).signing is None or isinstance(exc, MissingAssetError):
            raise
        log.info("%s: %s; signing again and retrying once", scene.id, exc)
        return _read_scene(scene, region, settings, lattices)


def _read_scene(scene: Scene, region: Region, settings: ReadSettings,
                lattices: dict | None) -> SceneStack | None:  # fmt: skip
    """:func:`read_scene`, one attempt."""
    if region != chunk_aligned(region, settings.chunk):
        raise ValueError(f"{region} is not aligned to the {settings.chunk}-px warp chunks")
    if not _bbox_overlaps(region_lonlat_bounds(region, settings.zoom), scene.bbox):
        return None
    lattices = {} if lattices is None else lattices
    datasets, error = [], None
    try:
        for key in BANDS:  # inside the try: a failed open closes the ones already open
            datasets.append(open_scene_asset(scene, key))
        for key, ds in zip(BANDS, datasets, strict=True):
            check_asset(ds, scene.href(key), scene.id, key)
        crop, dn, touched = _warp_bands(datasets, region, settings, lattices)
    except RasterioIOError as exc:  # a read after the open: truncated data, server gone, ...
        hrefs = " / ".join(scene.href(k) for k in BANDS)
        error = asset_error(exc, hrefs, scene.id, "/".join(BANDS), "reading", scene.source)
    finally:
        for ds in datasets:
            ds.close()
    if error is not None:
        _forget(scene, error, BANDS)
        raise _diagnosed(scene, error, BANDS)
    if not touched:
        return None
    has_scl = any(k == "scl" for k, _ in scene.assets)
    scl = _read_scl(scene, crop, region, settings, lattices) if has_scl else None
    return SceneStack(dn=dn, scl=scl, region=crop)


def _read_scl(scene: Scene, crop: Region, region: Region, settings: ReadSettings,
              lattices: dict) -> np.ndarray:  # fmt: skip
    """The scene's SCL classes warped onto ``crop`` of ``region`` (nearest), (H, W) uint8."""
    error = None
    ds = open_scene_asset(scene, "scl")
    try:
        check_asset(ds, scene.href("scl"), scene.id, "scl")
        scl, _ = _warp_asset([ds], *_pixels(ds, region, settings, lattices), crop, False,
                             "uint8")
    except RasterioIOError as exc:
        error = asset_error(exc, scene.href("scl"), scene.id, "scl", "reading", scene.source)
    finally:
        ds.close()
    if error is not None:
        _forget(scene, error, ("scl",))
        raise _diagnosed(scene, error, ("scl",))
    return scl[0]


def _diagnosed(scene: Scene, error: AssetError, keys: tuple[str, ...]) -> AssetError:
    """The error of a failed read, made precise: GDAL says only "Read failed" when a server
    refuses a range request, so the assets are opened again, and a refusal (or a 404) there
    is the error to report."""
    if isinstance(error, (AuthError, MissingAssetError)):
        return error
    for key in keys:
        try:
            open_scene_asset(scene, key).close()
        except (AuthError, MissingAssetError) as reopened:
            _forget(scene, reopened, keys)
            return reopened
        except AssetError:
            pass
    return error


def _forget(scene: Scene, error: Exception, keys: tuple[str, ...]) -> None:
    """After a failed read: drop GDAL's cached state of the hrefs, and a refused token."""
    for key in keys:
        forget(scene.href(key))
    if isinstance(error, AuthError):
        forget_token(scene.collection)


class Observation(NamedTuple):
    """One scene seen in a region: reflectance (3, H, W), where it has data, where it is
    accepted (SCL and the cloud buffer) and its quality
    (:mod:`basemap.mosaic.observation_quality`), over the part ``region`` of the region read (see
    :func:`read_scene`)."""

    scene: object
    reflectance: np.ndarray
    valid: np.ndarray
    accepted: np.ndarray
    quality: np.ndarray
    region: Region


def observations(scenes: Iterable[Scene], region: Region, settings: ReadSettings, feather: int,
                 skipped: list[str] | None = None) -> Iterator[Observation]:  # fmt: skip
    """Yield an :class:`Observation` for each scene with data in `region`, in manifest order.

    The one recipe shared by the build and `basemap evaluate`: warp, DN to reflectance by the
    scene's offset, SCL masks and quality. Scenes whose pixels are all rejected are yielded too
    (the composite fills holes from them).

    Args:
        scenes: :class:`basemap.stac.scene.Scene` values, in manifest order.
        region: chunk-aligned global pixels (see :func:`read_scene`), padded by
            :func:`basemap.mosaic.observation_quality.required_padding` around the pixels used.
        settings: the warp settings.
        feather: footprint-edge ramp of the quality (px).
        skipped: when given, scenes with a missing asset are logged and their ids appended here
            instead of raising :class:`MissingAssetError`.
    """
    lattices: dict = {}
    for scene in scenes:
        try:
            stack = read_scene(scene, region, settings, lattices)
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
            yield Observation(scene, refl, valid, accepted, quality, stack.region)
