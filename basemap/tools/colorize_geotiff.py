"""`basemap colorize`: the R, G, B bands of an L2A GeoTIFF -> a renderer -> an 8-bit COG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window
from rio_cogeo.profiles import cog_profiles

from basemap.errors import ConfigError, InputError
from basemap.grid import Region
from basemap.output.cog import cog_blocksize, write_cog
from basemap.progress import SILENT, Progress
from basemap.render.base import RENDERER_NAMES, Renderer, get_renderer
from basemap.stac.radiometry import to_reflectance


def colorize_file(
    src: str | Path,
    dst: str | Path,
    model_path: str | Path | None = None,
    renderer: str = RENDERER_NAMES[0],
    dn_offset: float = 0.0,
    bands: tuple[int, int, int] = (1, 2, 3),
    chunk: int = 1792,
    progress: Progress = SILENT,
) -> Path:
    """Colorize the R, G, B bands of an integer L2A GeoTIFF into a validated 8-bit COG with a mask.

    The image is cut into `chunk`-px regions; each reads (boundless, 0 = nodata) exactly the input
    its renderer needs, so the result does not depend on `chunk` (the window grid starts at the
    image's top-left pixel). DN 0 in any band is nodata and becomes the mask.

    Args:
        src: input GeoTIFF of Sentinel-2 L2A DN.
        dst: output COG path.
        model_path: weights for the `unet` renderer (None: the shipped default).
        renderer: a name from basemap.render.base.RENDERER_NAMES.
        dn_offset: added to DN before /10000 (-1000 for processing baseline >= 04.00, else 0).
        bands: 1-based indexes of the red, green and blue bands in `src` (B04, B03, B02).
        chunk: region size in px processed at once (memory bound).
        progress: where the regions done are reported.

    Raises:
        InputError: not an integer raster with `bands`, or `dst` is `src` (under any path
            spelling, through a link); ConfigError: unreadable input or output path.
    """
    src, dst = Path(src), Path(dst)
    _check_paths(src, dst)
    rend = get_renderer(renderer, None if model_path is None else str(model_path))
    with _open_source(src, bands) as ds:
        h, w = ds.height, ds.width
        profile = {
            "driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": "uint8",
            "crs": ds.crs, "transform": ds.transform, "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "deflate", "photometric": "RGB",
        }  # fmt: skip
        tmp = dst.with_name(dst.name + ".tmp.tif")
        regions = [Region(x, y, min(x + chunk, w), min(y + chunk, h))
                   for y in range(0, h, chunk) for x in range(0, w, chunk)]  # fmt: skip
        with rasterio.open(tmp, "w", **profile) as out:
            bar = progress.stage(f"colorize ({renderer})", len(regions), "region")
            for region in regions:
                _render_region(ds, out, rend, region, dn_offset, bands)
                bar.advance()
            bar.close()
    part = dst.with_name(dst.name + ".part")
    try:
        profile = dict(cog_profiles.get("deflate"))  # tiled, whatever the input's shape
        profile["blockxsize"] = profile["blockysize"] = cog_blocksize(w, h)
        write_cog(str(tmp), part, profile, add_mask=True, in_memory=False, name=str(dst))
        part.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".msk").unlink(missing_ok=True)
    return dst


def _check_paths(src: Path, dst: Path) -> None:
    """Raise unless ``src`` exists and ``dst`` can be written without touching it."""
    if not src.is_file():
        raise ConfigError(f"{src}: no such file")
    if dst.exists() and os.path.samefile(src, dst):
        raise InputError(f"the output {dst} is the input {src}: colorize would overwrite it; "
                         "give another output path")
    if not dst.parent.is_dir():
        raise ConfigError(f"output folder {dst.parent} does not exist")


def _open_source(src: Path, bands: tuple[int, int, int]) -> DatasetReader:
    """``src`` opened, once checked to hold integer `bands` (InputError naming it and the fix)."""
    try:
        ds = rasterio.open(src)
    except RasterioIOError as exc:
        raise InputError(
            f"{src} is not a raster GDAL can read ({exc}); expected a GeoTIFF of Sentinel-2 L2A "
            "DN holding B04, B03, B02 (picked with --bands R,G,B)"
        ) from None
    if not all(1 <= b <= ds.count for b in bands):
        ds.close()
        raise InputError(
            f"{src} has {ds.count} band(s), so it has no bands {','.join(map(str, bands))}; "
            "pass --bands R,G,B (1-based: 3,2,1 for a B02,B03,B04,... stack), or stack B04, B03, "
            "B02 with gdal_merge.py -separate"
        )
    if not all(np.issubdtype(np.dtype(ds.dtypes[b - 1]), np.integer) for b in bands):
        ds.close()
        raise InputError(
            f"{src} has bands of {ds.dtypes[bands[0] - 1]}; expected integer Sentinel-2 L2A DN "
            "(reflectance x 10000, as ESA and the STAC catalogs publish it)"
        )
    return ds


def _render_region(ds: DatasetReader, out: DatasetWriter, rend: Renderer, region: Region,
                   dn_offset: float, bands: tuple[int, int, int]) -> None:
    """Read exactly the input ``rend`` needs for ``region`` (boundless, 0 = nodata), render it
    and write it with its mask."""
    need = rend.input_region(region)
    win = Window(need.x0, need.y0, need.x1 - need.x0, need.y1 - need.y0)
    dn = ds.read(list(bands), window=win, boundless=True, fill_value=0)
    refl, valid = to_reflectance(dn, dn_offset)
    rgb = rend.render(refl, valid, (need.x0, need.y0), region)
    rows, cols = region.slices((need.x0, need.y0))
    owin = Window(region.x0, region.y0, region.width, region.height)
    out.write(rgb, window=owin)
    out.write_mask((valid[rows, cols] * 255).astype(np.uint8), window=owin)
