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

Reads hide the network (docs/design.md, "Reads"): a remote scene's assets are fetched at once,
and remote scenes are read ahead of the one being composited (:mod:`basemap.read.fetch`); local
files are read one after another. Assets are opened, and their errors sorted and named, by
:mod:`basemap.read.assets` (docs/reliability.md, rows 7-11): a missing asset is skipped (the
block is degraded), one that can't be read fails the block, one that can't be used as given (no
CRS, ...) fails the run with exit 2.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from basemap import config
from basemap.errors import AssetError, MissingAssetError
from basemap.grid import Region, expand, paste, region_lonlat_bounds, union
from basemap.mosaic.observation_quality import observation_quality
from basemap.read.fetch import Fetched, Lattices, fetch_assets, prefetched
from basemap.read.traffic import Traffic
from basemap.read.warp import LATTICE, padded, sample_bilinear, sample_nearest
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


def _sample(fetched: list[Fetched], crop: Region, bilinear: bool,
            dtype: str) -> tuple[np.ndarray, bool]:  # fmt: skip
    """Sample assets read on one grid onto ``crop``: one coordinate mapping and one set of taps
    for all of them. Returns (array (bands, H, W), whether any pixel has data)."""
    lattice, pixels = fetched[0].lattice, fetched[0].pixels
    out = np.zeros((len(fetched), crop.height, crop.width), dtype=dtype)
    p = pixels.part
    part = p and Region(max(p.x0, crop.x0), max(p.y0, crop.y0), min(p.x1, crop.x1),
                        min(p.y1, crop.y1))
    if part is None or part.width <= 0 or part.height <= 0 or not any(f.dn.any()
                                                                       for f in fetched):
        return out, False
    rows, cols = part.slices((crop.x0, crop.y0))
    if bilinear:
        out[:, rows, cols] = sample_bilinear(padded([f.dn for f in fetched]), pixels, lattice,
                                             part)  # fmt: skip
    else:
        for band, f in enumerate(fetched):
            out[band, rows, cols] = sample_nearest(f.dn, pixels, lattice, part)
    return out, bool(out.any())


def _warp_bands(bands: list[Fetched], region: Region) -> tuple[Region | None, np.ndarray | None,
                                                                 bool]:  # fmt: skip
    """(crop, DN on it, touched): the reflectance bands sampled onto the crop of ``region``, in
    one pass when they share a grid, else band by band (real catalogs mix them: one band
    georeferenced by a sidecar, another not)."""
    crop = _crop([f.pixels.part for f in bands], region)
    if crop is None:
        return None, None, False
    if len({f.grid for f in bands}) == 1:
        return crop, *_sample(bands, crop, True, "uint16")
    parts = [_sample([f], crop, True, "uint16") for f in bands]
    return crop, np.concatenate([dn for dn, _ in parts]), any(t for _, t in parts)


def embed(array: np.ndarray, crop: Region, region: Region) -> np.ndarray:
    """An array over ``crop`` placed in a zero array over ``region`` (which contains it)."""
    return paste(array, crop.slices((region.x0, region.y0)), (region.height, region.width))


def read_scene(scene: Scene, region: Region, settings: ReadSettings,
               lattices: Lattices | None = None,
               traffic: Traffic | None = None) -> SceneStack | None:  # fmt: skip
    """Warp a scene's red/green/blue DN and SCL onto a chunk-aligned region of the global grid,
    its assets read at once by the read pool.

    Args:
        scene: a :class:`basemap.stac.scene.Scene`.
        region: global pixels at ``settings.zoom``, aligned to ``settings.chunk``.
        settings: the warp settings.
        lattices: the region's coordinate mappings (pass the same for every scene of a region:
            one mapping per CRS).
        traffic: where the reads' cost is added (by the calling thread only).

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
    lattices = Lattices() if lattices is None else lattices
    traffic = Traffic() if traffic is None else traffic
    try:
        return _read_scene(scene, region, settings, lattices, traffic)
    except AssetError as exc:
        if profile_named(scene.source).signing is None or isinstance(exc, MissingAssetError):
            raise
        log.info("%s: %s; signing again and retrying once", scene.id, exc)
        return _read_scene(scene, region, settings, lattices, traffic)


def _read_scene(scene: Scene, region: Region, settings: ReadSettings, lattices: Lattices,
                traffic: Traffic) -> SceneStack | None:  # fmt: skip
    """:func:`read_scene`, one attempt: the bands and SCL fetched at once, then warped."""
    if region != chunk_aligned(region, settings.chunk):
        raise ValueError(f"{region} is not aligned to the {settings.chunk}-px warp chunks")
    if not _bbox_overlaps(region_lonlat_bounds(region, settings.zoom), scene.bbox):
        return None
    has_scl = any(k == "scl" for k, _ in scene.assets)
    keys = BANDS + (("scl",) if has_scl else ())
    costs = {key: Traffic() for key in keys}
    outcomes = fetch_assets(scene, keys, region, settings.zoom, lattices, costs)
    for cost in costs.values():
        traffic.add(cost)
    fetched = {k: v for k, v in outcomes.items() if isinstance(v, Fetched)}
    errors = {k: v for k, v in outcomes.items() if not isinstance(v, Fetched)}
    error = next((errors[key] for key in BANDS if key in errors), None)
    if error is not None:
        raise error
    crop, dn, touched = _warp_bands([fetched[key] for key in BANDS], region)
    if not touched:
        return None
    if "scl" in errors:
        raise errors["scl"]
    scl = _sample([fetched["scl"]], crop, False, "uint8")[0][0] if has_scl else None
    return SceneStack(dn=dn, scl=scl, region=crop)


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
                 skipped: list[str] | None = None,
                 traffic: Traffic | None = None) -> Iterator[Observation]:  # fmt: skip
    """Yield an :class:`Observation` for each scene with data in `region`, in manifest order.

    The one recipe shared by the build and `basemap evaluate`: warp, DN to reflectance by the
    scene's offset, SCL masks and quality. Scenes whose pixels are all rejected are yielded too
    (the composite fills holes from them). Remote scenes are read ahead of their use
    (:func:`basemap.read.fetch.prefetched`): the network's latency is hidden behind the
    compositing, and memory holds a bounded number of warped scenes whatever the dates.

    Args:
        scenes: :class:`basemap.stac.scene.Scene` values, in manifest order.
        region: chunk-aligned global pixels (see :func:`read_scene`), padded by
            :func:`basemap.mosaic.observation_quality.required_padding` around the pixels used.
        settings: the warp settings.
        feather: footprint-edge ramp of the quality (px).
        skipped: when given, scenes with a missing asset are logged and their ids appended here
            instead of raising :class:`MissingAssetError`.
        traffic: when given, the reads' cost and the seconds waited for them are added to it.
    """
    lattices = Lattices()
    traffic = Traffic() if traffic is None else traffic

    def read(scene: Scene, cost: Traffic) -> SceneStack | None:
        return read_scene(scene, region, settings, lattices, cost)

    for scene, cost, future in prefetched(list(scenes), read):
        start = time.perf_counter()
        try:
            stack = future.result()
        except MissingAssetError as exc:
            if skipped is None:
                raise
            log.warning("%s: skipping scene: %s", region, exc)
            skipped.append(scene.id)
            continue
        finally:
            traffic.wait_s += time.perf_counter() - start
            traffic.add(cost)
        if stack is None:
            continue
        refl, valid = to_reflectance(stack.dn, scene.dn_offset)
        if valid.any():
            accepted, quality = observation_quality(refl, valid, stack.scl, feather)
            yield Observation(scene, refl, valid, accepted, quality, stack.region)
