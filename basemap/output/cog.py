"""COGs: the one writer (rio-cogeo, validated before anything is published), the block COGs
(8-bit RGBA, deflate, internal overviews), and the VRT index that opens the mosaic in a GIS."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np

from basemap.errors import InvalidCOGError
from basemap.grid import TILE_SIZE, Block, Region, region_transform
from basemap.output.storage import Storage

if TYPE_CHECKING:
    from rasterio.io import DatasetReader, MemoryFile

#: Creation options of the block COGs: lossless (the pyramid and the VRT read these pixels back),
#: 256-px internal tiles matching the XYZ grid, overviews down to one tile.
COG_PROFILE = {
    "driver": "GTiff",
    "interleave": "pixel",
    "tiled": True,
    "blockxsize": TILE_SIZE,
    "blockysize": TILE_SIZE,
    "compress": "DEFLATE",
    "predictor": 2,
}


def cog_blocksize(width: int, height: int) -> int:
    """The internal tile side of a COG of ``width`` x ``height`` px: 512, else 256 (1024, 128).

    Always tiled whatever the shape: rio-cogeo calls a level over 512 px whose tile is as wide as
    the level "not tiled" (e.g. 512 px tiles on a 512 x 856 raster), so the first size that is
    no level's width (the full size and each overview rio-cogeo adds for it) is taken.
    """
    from rio_cogeo.utils import get_maximum_overview_level

    for size in (512, 256, 1024, 128):
        levels = get_maximum_overview_level(width, height, minsize=size)
        shapes = [(-(-width // 2**k), -(-height // 2**k)) for k in range(levels + 1)]
        if not any(w == size and max(w, h) > 512 for w, h in shapes):
            return size
    return 512


def cog_key(block: Block) -> str:
    """Storage key of a block's COG: ``cogs/{z}/{x}/{y}.tif`` of the block's root tile."""
    return f"cogs/{block.name}.tif"


def write_cog(source: str | os.PathLike | DatasetReader, dst: str | os.PathLike, profile: dict,
              *, overview_level: int | None = None, overview_resampling: str = "average",
              add_mask: bool = False, in_memory: bool = True, name: str | None = None) -> None:
    """THE COG writer: translate ``source`` into a COG at ``dst`` with rio-cogeo, then validate it.

    Args:
        source: a raster path or an open rasterio dataset.
        dst: the COG to write (a temporary name: the caller publishes it once this returns).
        profile: GDAL creation options (e.g. :data:`COG_PROFILE`).
        overview_level: internal overviews (None: rio-cogeo's choice).
        overview_resampling: kernel of the overviews.
        add_mask: write the source's mask as an internal mask band.
        in_memory: build the intermediate in memory (small rasters).
        name: what the COG is, for the error message (default: the file name).

    Raises:
        InvalidCOGError: rio-cogeo says the file is not a valid COG (``dst`` is removed).
    """
    from rio_cogeo.cogeo import cog_translate, cog_validate

    cog_translate(source, str(dst), dict(profile), overview_level=overview_level,
                  overview_resampling=overview_resampling, in_memory=in_memory, quiet=True,
                  use_cog_driver=False, add_mask=add_mask)
    ok, errors, _ = cog_validate(str(dst), quiet=True)
    if not ok:
        Path(dst).unlink(missing_ok=True)
        raise InvalidCOGError(f"COG for {name or Path(dst).name} is not valid, not published: "
                              f"{errors}")


def array_dataset(mem: MemoryFile, array: np.ndarray, **profile: Any) -> DatasetReader:
    """``array`` (bands, H, W) written into a MemoryFile ``mem`` as a GTiff; returns it, open."""
    count = array.shape[0]
    with mem.open(driver="GTiff", count=count, height=array.shape[1], width=array.shape[2],
                  dtype=array.dtype, **profile) as ds:
        ds.write(array)
        if count == 4:
            from rasterio.enums import ColorInterp

            ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                              ColorInterp.alpha]
    return mem.open()


def write_block_cog(rgba: np.ndarray, region: Region, z: int, storage: Storage, key: str) -> None:
    """Write an RGBA block as a validated COG and publish it under ``key``.

    Args:
        rgba: (4, H, W) uint8; band 4 is alpha (0 = nodata).
        region: the block's global pixels at zoom ``z`` (gives the georeferencing).
        z: the max zoom.
        storage: where to publish (``put_file``/``scratch_dir``).
        key: storage key.

    Raises:
        InvalidCOGError: rio-cogeo says the file is not a valid COG (nothing is published).
        OSError: ENOSPC when the write failed with less free space left than the block's size.
    """
    from rasterio.io import MemoryFile

    _, h, w = rgba.shape
    levels = max(0, (min(h, w) // TILE_SIZE).bit_length() - 1)
    fd, tmp = tempfile.mkstemp(suffix=".tif", dir=storage.scratch_dir())
    os.close(fd)
    try:
        full = None
        with MemoryFile() as mem, array_dataset(
            mem, rgba, crs="EPSG:3857", transform=region_transform(region, z)
        ) as src:
            try:
                write_cog(src, tmp, COG_PROFILE, overview_level=levels, name=key)
            except InvalidCOGError:
                raise
            except Exception as exc:  # GDAL reports a full disk as a TIFF seek/write error
                if shutil.disk_usage(os.path.dirname(tmp)).free >= rgba.nbytes:
                    raise
                full = f"No space left on device writing {key}: {exc}"
        if full is not None:
            # raised out here, with no GDAL error as its context: that one does not unpickle, so
            # Dask would bring the OSError back as a plain Exception (a failed block, not a stop)
            raise OSError(errno.ENOSPC, full)
        storage.put_file(key, tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_vrt(cogs: list[tuple[str, Region]], z: int, storage: Storage,
              key: str = "mosaic.vrt") -> None:
    """Write a GDAL VRT (hand-written XML) mosaicking the block COGs, paths relative to it.

    Args:
        cogs: (storage key, block region) of every published COG.
        z: the max zoom (pixel grid of the regions).
        storage: where to publish.
        key: key of the VRT (at the top of the output).
    """
    if not cogs:
        return
    x0 = min(r.x0 for _, r in cogs)
    y0 = min(r.y0 for _, r in cogs)
    x1 = max(r.x1 for _, r in cogs)
    y1 = max(r.y1 for _, r in cogs)
    t = region_transform(Region(x0, y0, x1, y1), z)
    depth = key.count("/")
    prefix = "../" * depth
    colors = ("Red", "Green", "Blue", "Alpha")
    lines = [
        f'<VRTDataset rasterXSize="{x1 - x0}" rasterYSize="{y1 - y0}">',
        '  <SRS dataAxisToSRSAxisMapping="1,2">EPSG:3857</SRS>',
        f"  <GeoTransform>{t.c!r}, {t.a!r}, 0.0, {t.f!r}, 0.0, {t.e!r}</GeoTransform>",
    ]
    for band in range(1, 5):
        lines.append(f'  <VRTRasterBand dataType="Byte" band="{band}">')
        lines.append(f"    <ColorInterp>{colors[band - 1]}</ColorInterp>")
        for cog, r in cogs:
            lines += [
                "    <SimpleSource>",
                f'      <SourceFilename relativeToVRT="1">{escape(prefix + cog)}</SourceFilename>',
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SourceProperties RasterXSize="{r.width}" RasterYSize="{r.height}" '
                f'DataType="Byte" BlockXSize="{TILE_SIZE}" BlockYSize="{TILE_SIZE}" />',
                f'      <SrcRect xOff="0" yOff="0" xSize="{r.width}" ySize="{r.height}" />',
                f'      <DstRect xOff="{r.x0 - x0}" yOff="{r.y0 - y0}" xSize="{r.width}" '
                f'ySize="{r.height}" />',
                "    </SimpleSource>",
            ]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    storage.write_bytes(key, ("\n".join(lines) + "\n").encode())
