"""`basemap synth`: the synthetic Sentinel-2 L2A world written out: COGs, STAC items, catalog.

Real Sentinel-2 data cannot be downloaded everywhere the project is built and tested, so the
package makes its own. The ground is ONE continuous world: every field (elevation, land cover,
texture, clouds, haze) is a deterministic function of geographic position, evaluated at each
pixel's longitude/latitude. Each MGRS-like tile then samples that world on its own UTM 10 m grid,
so overlapping tiles, including tiles of EPSG:32631 and EPSG:32632 either side of 6 E, agree
wherever the sky is clear -- what a seamless mosaic needs. See docs/synthetic-world.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from basemap.errors import InputError
from basemap.output.cog import array_dataset, write_cog
from basemap.progress import SILENT, Progress
from basemap.synth.items import item_dict
from basemap.synth.layout import Preset, layout
from basemap.synth.tiles import Tile, render_tile, tiles

BANDS = ("red", "green", "blue", "nir")

BAND_FILES = {"red": "B04", "green": "B03", "blue": "B02", "nir": "B08"}

def _write_cog(path: Path, arr: np.ndarray, tile: Tile, res: float, blocksize: int,
               resampling: str) -> None:
    """One single-band COG (DEFLATE, internal tiles, overviews) by the package's one COG writer;
    same bytes for the same input."""
    profile = {"driver": "GTiff", "tiled": True, "blockxsize": blocksize,
               "blockysize": blocksize, "compress": "DEFLATE", "predictor": 2}
    with MemoryFile() as mem, array_dataset(
        mem, arr[None], crs=f"EPSG:{tile.epsg}",
        transform=from_origin(tile.x0, tile.y0, res, res), nodata=0,
    ) as src:
        write_cog(src, path, profile, overview_resampling=resampling.lower())


def make_world(out: Path, seed: int, preset: Preset = "test",
               progress: Progress = SILENT) -> Path:
    """Write the synthetic world: COGs, STAC items, collection and static catalog.

    Args:
        out: output folder (created; existing synthetic files in it are overwritten).
        seed: the world's seed; the same seed gives the same bytes.
        preset: "test" (4 tiles of 3 km, 2 dates, seconds), "demo" (4 tiles of 18 km, 3 dates)
            or "season" (4 tiles of 9 km, 6 dates).
        progress: where the items written are reported.

    Returns:
        The path of OUT/catalog.json.
    """
    lay = layout(preset)
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be a whole number >= 0 (got {seed!r})")
    out = Path(out).absolute()
    coll_dir = out / "sentinel-2-l2a"
    items, raw = [], []
    all_tiles = tiles(preset)
    bar = progress.stage("synth items", len(all_tiles) * len(lay.dates), "item")
    for tile in all_tiles:
        for k, scene in enumerate(render_tile(tile, preset, seed)):
            folder = coll_dir / item_dict(tile, lay, k, scene, coll_dir)["id"]
            folder.mkdir(parents=True, exist_ok=True)
            for b, key in enumerate(BANDS):
                _write_cog(folder / f"{BAND_FILES[key]}.tif", scene.dn[b], tile, 10.0,
                           lay.blocksize, "AVERAGE")
            _write_cog(folder / "SCL.tif", scene.scl, tile, 20.0, max(128, lay.blocksize // 2),
                       "NEAREST")
            _write_cog(folder / "landcover.tif", scene.landcover, tile, 10.0, lay.blocksize,
                       "NEAREST")
            raw.append(item_dict(tile, lay, k, scene, folder))
            items.append(pystac.Item.from_dict(raw[-1]))
            bar.advance()
    bar.close()
    _write_catalog(out, coll_dir, items, raw, preset, seed)
    return out / "catalog.json"


def _write_catalog(out: Path, coll_dir: Path, items: list, raw: list[dict], preset: Preset,
                   seed: int) -> None:
    """The collection and the self-contained static catalog of the items, items kept as made."""
    lons = [c for it in items for c in it.bbox[0::2]]
    lats = [c for it in items for c in it.bbox[1::2]]
    times = sorted(it.datetime for it in items)
    collection = pystac.Collection(
        id="sentinel-2-l2a",
        title="Sentinel-2 Level-2A (synthetic)",
        description="A synthetic world shaped like Earth Search v1 sentinel-2-l2a, made by "
        f"basemap.synth (preset {preset}, seed {seed}); not Copernicus data.",
        extent=pystac.Extent(pystac.SpatialExtent([[min(lons), min(lats), max(lons), max(lats)]]),
                             pystac.TemporalExtent([[times[0], times[-1]]])),
        license="CC-BY-4.0",
    )
    collection.add_items(items)
    catalog = pystac.Catalog(id="basemap-synth", description=collection.description,
                             title="basemap synthetic Sentinel-2 world")
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    for d in raw:  # keep the items exactly Earth Search v1 shaped (pystac would migrate them)
        path = coll_dir / d["id"] / f"{d['id']}.json"
        d["links"] = json.loads(path.read_text())["links"]
        for asset in d["assets"].values():
            asset["href"] = "./" + Path(asset["href"]).name
        path.write_text(json.dumps(d, indent=2) + "\n")
