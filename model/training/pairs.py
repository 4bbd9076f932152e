"""Training pairs: a 16-bit L2A image and its 8-bit grading, on the same grid.

Layout (drop hand-graded pairs in the same layout)::

    OUT/<name>/input.tif    3-band (R, G, B) uint16 Sentinel-2 L2A DN, nodata 0; the tag
                            BASEMAP_DN_OFFSET holds the offset added to DN before /10000
                            (-1000 for processing baseline >= 04.00, else 0; missing tag = 0)
    OUT/<name>/target.tif   3-band uint8 RGB, same size, CRS and transform
    OUT/<name>/grade.json   (auto grader only) the grading parameters chosen for this image

Pixels with DN 0 in any band are nodata and ignored by training. The SCL (if any) only steers the
grader's statistics (cloud-free pixels); the pair keeps the clouds, so the model learns them too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from basemap.model.training.grader import SCL_EXCLUDE, grade

from basemap.errors import ConfigError, InputError
from basemap.stac.radiometry import to_reflectance
from basemap.stac.search import search
from basemap.types import BBox

DN_OFFSET_TAG = "BASEMAP_DN_OFFSET"
GRADERS = ("auto",)
_BAND_PATTERNS = {"red": r"B0?4", "green": r"B0?3", "blue": r"B0?2", "scl": r"SCL"}


@dataclass(frozen=True)
class SourceImage:
    """One image to grade: band files (or one 3-band file), its DN offset and optional SCL."""

    name: str
    bands: tuple[str, ...]  # 3 single-band files R, G, B, or one 3-band file
    dn_offset: float
    scl: str | None = None


def _sources_from_stac(catalog: str) -> Iterator[SourceImage]:
    for s in search(catalog, BBox(-180.0, -85.0, 180.0, 85.0)):
        keys = dict(s.assets)
        scl = s.href("scl") if "scl" in keys else None
        yield SourceImage(s.id, (s.href("red"), s.href("green"), s.href("blue")), s.dn_offset, scl)


def _sources_from_folder(folder: Path, dn_offset: float) -> Iterator[SourceImage]:
    """3-band uint16 GeoTIFFs, and folders holding B04/B03/B02 (+ SCL) band files."""
    import rasterio

    seen: set[Path] = set()
    for d in sorted([folder, *[p for p in folder.rglob("*") if p.is_dir()]]):
        tifs = sorted(p for p in d.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        found = {}
        for key, pat in _BAND_PATTERNS.items():
            hits = [p for p in tifs if re.search(rf"(^|[_\-.]){pat}([_\-.]|$)", p.stem)]
            if len(hits) == 1:
                found[key] = hits[0]
        if all(k in found for k in ("red", "green", "blue")):
            seen.update(found.values())
            bands = tuple(str(found[k]) for k in ("red", "green", "blue"))
            scl = str(found["scl"]) if "scl" in found else None
            yield SourceImage(d.name, bands, dn_offset, scl)
        for p in tifs:
            if p in seen:
                continue
            with rasterio.open(p) as ds:
                if ds.count == 3 and ds.dtypes[0] == "uint16":
                    yield SourceImage(p.stem, (str(p),), dn_offset)


def read_source(src: SourceImage) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """Read an image: (uint16 DN (3, H, W), profile, clear mask or None)."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(src.bands[0]) as ds:
        profile = ds.profile
        shape = (ds.height, ds.width)
        first = ds.read()
    if len(src.bands) == 1:
        dn = first
    else:
        rest = []
        for href in src.bands[1:]:
            with rasterio.open(href) as ds:
                if (ds.height, ds.width) != shape:
                    raise InputError(f"{href}: size {ds.shape} differs from {src.bands[0]} {shape}")
                rest.append(ds.read(1))
        dn = np.stack([first[0], *rest])
    if dn.shape[0] != 3 or not np.issubdtype(dn.dtype, np.integer):
        raise InputError(
            f"{src.name}: expected 3 integer DN bands (R, G, B), got {dn.shape} {dn.dtype}"
        )
    clear = None
    if src.scl:
        with rasterio.open(src.scl) as ds:
            scl = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
        clear = ~np.isin(scl, SCL_EXCLUDE)
    return dn.astype(np.uint16), profile, clear


def write_pair(out_dir: Path, dn: np.ndarray, target: np.ndarray, profile: dict, dn_offset: float,
               extra: dict | None = None) -> Path:
    """Write OUT/<name>/input.tif, target.tif (and grade.json when `extra` is given)."""
    import rasterio

    out_dir.mkdir(parents=True, exist_ok=True)
    base = {
        "driver": "GTiff", "height": dn.shape[1], "width": dn.shape[2], "count": 3,
        "crs": profile.get("crs"), "transform": profile.get("transform"),
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(out_dir / "input.tif", "w", dtype="uint16", nodata=0, **base) as ds:
        ds.write(dn)
        ds.update_tags(**{DN_OFFSET_TAG: str(int(dn_offset))})
        ds.descriptions = ("red (B04)", "green (B03)", "blue (B02)")
    with rasterio.open(out_dir / "target.tif", "w", dtype="uint8", photometric="RGB", **base) as ds:
        ds.write(target)
    if extra is not None:
        (out_dir / "grade.json").write_text(json.dumps(extra, indent=1))
    return out_dir


def find_sources(source: str, dn_offset: float = 0.0) -> list[SourceImage]:
    """The images of SOURCE: every item of a STAC catalog/API, or the GeoTIFFs of a folder.

    Raises:
        ConfigError: nothing found.
    """
    folder = Path(source)
    if folder.is_dir():
        sources = list(_sources_from_folder(folder, dn_offset))
    else:
        sources = list(_sources_from_stac(source))
    if not sources:
        raise ConfigError(
            f"no images found in {source}: give a STAC catalog, or a folder of 3-band uint16 "
            "GeoTIFFs / folders of B04, B03, B02 band files"
        )
    return sources


def make_pair(src: SourceImage, out: Path, grader: str = "auto") -> Path | None:
    """Grade one image into OUT/<name>/ (None when it has no valid pixel)."""
    if grader not in GRADERS:
        raise InputError(f"unknown grader {grader!r}; choose one of {', '.join(GRADERS)}")
    dn, profile, clear = read_source(src)
    refl, valid = to_reflectance(dn, src.dn_offset)
    if not valid.any():
        return None
    target, params = grade(refl, valid, clear)
    extra = {"grader": grader, "source": list(src.bands), "dn_offset": src.dn_offset,
             "params": params.to_dict()}  # fmt: skip
    return write_pair(Path(out) / src.name, dn, target, profile, src.dn_offset, extra)


def make_pairs(source: str, out: str | Path, grader: str = "auto", dn_offset: float = 0.0,
               progress: bool = True) -> list[Path]:
    """Grade every image of SOURCE (a STAC catalog/API, or a folder of GeoTIFFs) into pairs.

    Args:
        source: STAC catalog JSON / API URL (all items), or a folder (3-band uint16 GeoTIFFs, or
            sub-folders of B04/B03/B02 band files, optionally SCL).
        out: output folder; one sub-folder per image.
        grader: "auto" (the only built-in grader; hand-graded pairs are dropped in directly).
        dn_offset: DN offset of folder images (STAC items carry their own).
        progress: tqdm bar over images.

    Returns:
        The pair folders written.
    """
    from tqdm import tqdm

    if grader not in GRADERS:
        raise InputError(f"unknown grader {grader!r}; choose one of {', '.join(GRADERS)}")
    written = []
    for src in tqdm(find_sources(source, dn_offset), desc="pairs", unit="img",
                    disable=not progress):  # fmt: skip
        folder = make_pair(src, Path(out), grader)
        if folder is not None:
            written.append(folder)
    return written


@dataclass(frozen=True)
class Pair:
    """A loaded pair: reflectance (3, H, W) float32, valid (H, W), target uint8 (3, H, W)."""

    name: str
    reflectance: np.ndarray
    valid: np.ndarray
    target: np.ndarray


def load_pair(folder: Path) -> Pair:
    """Read OUT/<name>/input.tif + target.tif into reflectance, valid mask and target."""
    import rasterio

    with rasterio.open(folder / "input.tif") as ds:
        dn = ds.read()
        offset = float(ds.tags().get(DN_OFFSET_TAG, 0))
    with rasterio.open(folder / "target.tif") as ds:
        target = ds.read()
    if dn.shape[0] != 3 or target.shape != dn.shape or target.dtype != np.uint8:
        raise InputError(
            f"{folder}: input.tif must be 3-band uint16 and target.tif 3-band uint8 of the same "
            f"size (got {dn.shape} {dn.dtype} and {target.shape} {target.dtype})"
        )
    refl, valid = to_reflectance(dn, offset)
    return Pair(folder.name, refl, valid, target)


def find_pairs(root: str | Path) -> list[Path]:
    """Pair folders under root (those holding input.tif and target.tif), sorted."""
    root = Path(root)
    found = sorted(p.parent for p in root.rglob("input.tif") if (p.parent / "target.tif").is_file())
    if not found:
        raise ConfigError(
            f"no training pairs under {root}: expected <name>/input.tif + <name>/target.tif "
            "(make them with `basemap pairs SOURCE OUT`)"
        )
    return found
