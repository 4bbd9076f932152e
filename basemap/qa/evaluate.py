"""`basemap evaluate`: numbers for a build, and for the other renderers on the same pixels.

What is measured, on a sample region of the max-zoom grid (default 1024 x 1024 px centred on a
block corner, so block, window and tile borders all cross it):

- the **tiles as delivered** (decoded from OUT/tiles at max zoom);
- each **renderer** (the build's and every ``--against`` one) rendering the same composite: the
  region's scenes are re-read and composited exactly as a block does it (basemap.read.scenes +
  basemap.mosaic.composite, settings from OUT/build.json), then rendered with
  ``get_renderer(name)`` on the build's window grid.

Figures per rendering: seam excess at window, block and tile borders (basemap.qa.seams), clipped
pixels (% of valid pixels with a channel at 0 or 255), colourfulness (Hasler & Suesstrunk 2003,
M3) and mean CIELAB L*. Per renderer also the **cross-scene consistency**: for every two
acquisitions that overlap in the region, each is rendered alone and the mean CIEDE2000 between the
two renderings is taken over the pixels both observe (lower = a pixel's colour depends less on
which scene it came from). Colour maths: :mod:`basemap.qa.colour`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image

from basemap.colour import clipped_pct
from basemap.errors import ConfigError, InputError, WeightsError
from basemap.grid import ORIGIN_SHIFT, Region, lonlat_to_px, resolution
from basemap.mosaic.observation_quality import HOT_HAZE, hot, required_padding
from basemap.mosaic.region import composite_region
from basemap.output.layers import read_tileset
from basemap.output.storage import LocalStorage
from basemap.pipeline.plan import BuildSettings
from basemap.pipeline.record import RECORD_KEY, read_record, record_settings
from basemap.qa.colour import (
    MIN_OVERLAP_PX,
    colourfulness,
    cross_scene_delta_e,
    mean_lightness,
)
from basemap.qa.report import write_report
from basemap.qa.seams import seam_excess
from basemap.read.scenes import Observation, embed
from basemap.render.base import RENDERER_NAMES, Renderer, get_renderer
from basemap.render.inference import check_weights
from basemap.stac.manifest import read_manifest

log = logging.getLogger(__name__)

TILE = 256


@dataclass(frozen=True)
class BuildInfo:
    """What evaluate needs to know about a build (OUT/build.json's settings and the TileJSON)."""

    out: Path
    settings: BuildSettings
    bounds: tuple[float, float, float, float]
    filled_fraction: float | None = None  # build.json's share of pixels filled from rejected obs
    reads: dict | None = None  # what the blocks' reads cost (:func:`reads_figures`)

    @property
    def zoom(self) -> int:
        """The max zoom, whose pixel grid everything is measured on."""
        return self.settings.zmax

    @property
    def stride(self) -> int:
        """Distance between the starts of neighbouring windows (global px)."""
        return self.settings.window - self.settings.overlap

    @property
    def manifest(self) -> Path:
        """The build's frozen scene list."""
        return self.out / "manifest.json"


def read_build(out: Path) -> BuildInfo:
    """Read OUT/build.json (its ``settings``) and OUT/tilejson.json.

    OUT may also be a `basemap demo` folder, whose build is OUT/build.

    Raises:
        ConfigError: when either is missing or unreadable.
    """
    out = Path(out)
    if not (out / RECORD_KEY).exists() and (out / "build" / RECORD_KEY).exists():
        out = out / "build"
    record = read_record(LocalStorage(str(out)))
    if record is None:
        raise ConfigError(f"{out / RECORD_KEY} not found: evaluate needs the output folder of "
                          "`basemap build`")
    settings = record_settings(record)
    return BuildInfo(out=out, settings=settings, bounds=read_tileset(out / "tilejson.json").bounds,
                     filled_fraction=record.get("filled_fraction"),
                     reads=reads_figures(record))


def reads_figures(record: dict) -> dict | None:
    """What the reads of a build's computed blocks cost, from build.json: totals, the median
    block, and the bytes downloaded over the bytes of the COG tiles the reads touched (None when
    no block was computed in the run that wrote it)."""
    reads = [b["reads"] for b in record.get("blocks", []) if isinstance(b.get("reads"), dict)]
    if not reads:
        return None
    keys = ("requests", "bytes", "tile_bytes", "read_s", "wait_s")
    totals = {k: sum(r.get(k, 0) for r in reads) for k in keys}
    return {"blocks": len(reads), **{k: round(v, 3) for k, v in totals.items()},
            "median_block": {k: float(np.median([r.get(k, 0) for r in reads])) for k in keys},
            "bytes_over_tile_bytes": round(totals["bytes"] / totals["tile_bytes"], 3)
            if totals["tile_bytes"] and totals["bytes"] else None}


# ---- measures ----------------------------------------------------------------------------------


def rendering_figures(rgb: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                      build: BuildInfo) -> dict[str, float]:
    """Seam excess at window/block/tile borders, clipped %, colourfulness and mean L*.

    Window borders: both edges of the windows' blend zones (global phases 0 and ``overlap``
    modulo the stride); the worse is reported.
    """
    def excess(period: int, phase: int = 0) -> float:
        return float(seam_excess(rgb, valid, period, phase, origin=origin))

    windows = [excess(build.stride, p) for p in sorted({0, build.settings.overlap % build.stride})]
    return {
        "seam_excess_window": max((w for w in windows if not np.isnan(w)), default=float("nan")),
        "seam_excess_block": excess(build.settings.block_size),
        "seam_excess_tile": excess(TILE),
        "clipped_pct": clipped_pct(rgb, valid),
        "colourfulness": colourfulness(rgb, valid),
        "mean_lightness": mean_lightness(rgb, valid),
    }


# ---- the sample region -------------------------------------------------------------------------


def sample_region(build: BuildInfo, size: int,
                  at: tuple[float, float] | None = None) -> Region:
    """A size x size region centred on the block corner nearest a point.

    Args:
        build: the build.
        size: side in max-zoom pixels.
        at: (lon, lat) of the point; default the centre of the build's bounds.

    Raises:
        InputError: when size is not a positive multiple of 256.
    """
    if size <= 0 or size % TILE:
        raise InputError(f"--size must be a positive multiple of 256, got {size}")
    w, s, e, n = build.bounds
    lon, lat = at if at is not None else ((w + e) / 2, (s + n) / 2)
    cx, cy = lonlat_to_px(lon, lat, build.zoom)
    block = build.settings.block_size
    bx, by = round(cx / block) * block, round(cy / block) * block
    return Region(bx - size // 2, by - size // 2, bx + size // 2, by + size // 2)


@dataclass
class SampleInputs:
    """Reflectance of a region: the composite and each scene alone, on one read region."""

    origin: tuple[int, int]
    composite: np.ndarray  # float32 (3, H, W)
    valid: np.ndarray  # bool (H, W)
    scenes: list[tuple[str, np.ndarray, np.ndarray]]  # (scene id, reflectance, observed)
    filled: np.ndarray  # bool (H, W): filled from rejected observations
    covered: np.ndarray  # bool (H, W): some scene has data (what must not be a hole)


def read_sample(build: BuildInfo, read_region: Region) -> SampleInputs:
    """Read and composite every scene of the manifest over read_region, the way a block does.

    Raises:
        ConfigError: when the manifest is missing or no scene has pixels in the region.
    """
    settings = build.settings
    singles = []
    covered = np.zeros((read_region.height, read_region.width), bool)

    def seen(obs: Observation) -> None:
        covered[obs.region.slices((read_region.x0, read_region.y0))] |= obs.valid
        if obs.accepted.any():
            singles.append((obs.scene.id, embed(obs.reflectance, obs.region, read_region),
                            embed(obs.accepted, obs.region, read_region)))

    scenes = read_manifest(build.manifest)  # manifest order: (datetime, id)
    made, _ = composite_region(scenes, read_region, settings.read_settings(), settings.composite,
                               settings.feather, seen=seen)
    if not singles:
        raise ConfigError(f"no scene of {build.manifest} has pixels in {read_region}")
    return SampleInputs((read_region.x0, read_region.y0), made.reflectance, made.valid, singles,
                        made.filled, covered)


def read_tiles(build: BuildInfo, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """The delivered max-zoom tiles over a tile-aligned region: (rgb uint8, alpha > 0)."""
    ts = read_tileset(build.out / "tilejson.json")
    rgba = np.zeros((4, region.height, region.width), dtype=np.uint8)
    for ty in range(region.y0 // TILE, region.y1 // TILE):
        for tx in range(region.x0 // TILE, region.x1 // TILE):
            path = ts.tile_path(build.zoom, tx, ty)
            if not path.exists():
                continue
            with Image.open(path) as im:
                tile = np.asarray(im.convert("RGBA")).transpose(2, 0, 1)
            r, c = ty * TILE - region.y0, tx * TILE - region.x0
            rgba[:, r : r + TILE, c : c + TILE] = tile
    return rgba[:3], rgba[3] > 0


def read_mosaic(build: BuildInfo) -> tuple[np.ndarray, Region]:
    """The build's lossless COG mosaic (OUT/mosaic.vrt): (RGBA uint8, its max-zoom region)."""
    with rasterio.open(build.out / "mosaic.vrt") as src:
        rgba = src.read()
        res = resolution(build.zoom)
        x0 = round((src.transform.c + ORIGIN_SHIFT) / res)
        y0 = round((ORIGIN_SHIFT - src.transform.f) / res)
    return rgba, Region(x0, y0, x0 + rgba.shape[2], y0 + rgba.shape[1])


# ---- the whole evaluation ----------------------------------------------------------------------


def _usable(renderer: Renderer) -> bool:
    """Whether a renderer's weights (if it has any) exist and load."""
    if renderer.weights is None:
        return True
    try:
        check_weights(renderer.weights)
    except WeightsError:
        return False
    return True


def evaluate(out: Path, against: tuple[str, ...] | None = None, report: Path | None = None,
             size: int = 1024, at: tuple[float, float] | None = None) -> dict:
    """Measure a build and the other renderers on the same pixels; write the report.

    Args:
        out: the build's output folder (build.json, tilejson.json, tiles/, manifest).
        against: renderers to compare with (default: every other registered renderer).
        report: report folder (default OUT/report): report.json, index.html, PNGs.
        size: side of the sample region in max-zoom pixels (a multiple of 256).
        at: (lon, lat) near which to sample (default: the centre of the build's bounds).

    Returns:
        The report's figures (also written to report/report.json).
    """
    build = read_build(out)
    settings = build.settings
    names = [settings.renderer] + [n for n in (against or RENDERER_NAMES) if n != settings.renderer]
    renderers = {name: get_renderer(name, model=settings.model, window=settings.window,
                                    overlap=settings.overlap) for name in names}
    for name in names[1:] if against is None else ():
        if not _usable(renderers[name]):
            log.warning("evaluate: no usable weights for %s (%s); comparing without it", name,
                        renderers[name].weights)
            del renderers[name]
    region = sample_region(build, size, at)
    need = [r.input_region(region) for r in renderers.values()]
    pad = required_padding(settings.feather)
    read_region = Region(
        min(r.x0 for r in need) - pad, min(r.y0 for r in need) - pad,
        max(r.x1 for r in need) + pad, max(r.y1 for r in need) + pad,
    ).aligned_out(settings.chunk)
    log.info("evaluate: sample %s, reading %s", region, read_region)
    inputs = read_sample(build, read_region)
    images, figures = _measure(build, renderers, inputs, region)
    result = {
        "build": str(build.out),
        "renderer": settings.renderer,
        "zoom": build.zoom,
        "region": [region.x0, region.y0, region.x1, region.y1],
        "borders": {"window": build.stride, "window_overlap": settings.overlap,
                    "block": settings.block_size, "tile": TILE},
        "scenes": [sid for sid, _, _ in inputs.scenes],
        "composite": composite_figures(build, inputs, region),
        "reads": build.reads,
        "figures": figures,
    }
    folder = Path(report) if report else build.out / "report"
    result["report"] = str(folder / "index.html")
    write_report(folder, result, images)
    return result


def composite_figures(build: BuildInfo, inputs: SampleInputs, region: Region) -> dict:
    """Holes, filled pixels and a haze/cloud leak proxy of the sample, and the build's filled
    fraction: ``holes_pct`` (% of the pixels some scene covers that the delivered tiles leave
    transparent), ``filled_pct``, ``leak_proxy_pct`` (% of accepted-composite pixels whose
    HOT = B02 - 0.5 B04 says haze or cloud, > HOT_HAZE)."""
    rows, cols = region.slices(inputs.origin)
    covered = inputs.covered[rows, cols]
    filled = inputs.filled[rows, cols]
    _, delivered = read_tiles(build, region)
    haze = hot(inputs.composite[:, rows, cols]) > HOT_HAZE
    made = covered & ~filled
    n = max(int(covered.sum()), 1)
    return {
        "holes_pct": 100.0 * float((covered & ~delivered).sum()) / n,
        "filled_pct": 100.0 * float(filled.sum()) / n,
        "leak_proxy_pct": 100.0 * float((made & haze).sum()) / max(int(made.sum()), 1),
        "build_filled_fraction": build.filled_fraction,
    }


def _measure(build: BuildInfo, renderers: dict, inputs: SampleInputs, region: Region
             ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict]]:
    """The tiles as built and every renderer on the sample: (images, figures) by rendering."""
    rows, cols = region.slices(inputs.origin)
    valid = inputs.valid[rows, cols]
    origin = (region.x0, region.y0)
    images: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    figures: dict[str, dict] = {}
    tiles_rgb, tiles_valid = read_tiles(build, region)
    images["tiles (as built)"] = (tiles_rgb, tiles_valid)
    figures["tiles (as built)"] = rendering_figures(tiles_rgb, tiles_valid, origin, build)
    for name, renderer in renderers.items():
        rgb = renderer.render(inputs.composite, inputs.valid, inputs.origin, region)
        images[name] = (rgb, valid)
        figures[name] = rendering_figures(rgb, valid, origin, build)
        singles = [
            (renderer.render(refl, obs, inputs.origin, region), obs[rows, cols])
            for _, refl, obs in inputs.scenes
            if obs[rows, cols].sum() >= MIN_OVERLAP_PX
        ]
        de, pairs = cross_scene_delta_e(singles)
        figures[name]["cross_scene_ciede2000"] = de
        figures[name]["cross_scene_pairs"] = pairs
    return images, figures
