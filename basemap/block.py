"""The block task: one block of the global grid -> its COG, its tiles and its ledger entry.

:func:`run_block` is the Dask task, exactly once per block: skipped when the ledger
(:mod:`basemap.ledger`) has the block with the same inputs and intact files, else
:func:`build_block` computes it, a pure function of the frozen :class:`BlockJob`: warp every
touching scene (:mod:`basemap.read`), composite (:mod:`basemap.composite`), render on the global
window grid (:mod:`basemap.render`), write a validated COG (:mod:`basemap.output.cog`) and the
block's tiles from the max zoom down to its root tile (:mod:`basemap.output.pyramid`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np
import rasterio

from basemap import config
from basemap.composite import METHOD_NAMES, compositor
from basemap.errors import InputError
from basemap.grid import TILE_SIZE, Block, Region, check_block_size, expand, union
from basemap.ledger import RESUMED, BlockRecord, Ledger, RecordingStorage, block_fingerprint
from basemap.output.cog import cog_key, write_block_cog
from basemap.output.media import TILE_FORMATS
from basemap.output.pyramid import write_levels
from basemap.output.storage import Storage
from basemap.output.tiles import TileOutput
from basemap.quality import required_padding
from basemap.read import ReadSettings, observations
from basemap.render.base import RENDERER_NAMES, Renderer, get_renderer
from basemap.render.windows import WindowGrid
from basemap.types import ZoomRange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the output pixels (recorded in build.json).

    Attributes:
        zmin, zmax: zoom range; the global pixel grid is the one of ``zmax``.
        renderer: renderer name (:data:`basemap.render.base.RENDERER_NAMES`).
        model: U-Net weights file (None: the shipped default).
        window, overlap: the U-Net's window grid (global pixels).
        block_size: processing block side in pixels (256 times a power of two).
        composite: compositing method (:data:`basemap.composite.METHODS`).
        feather: footprint-edge ramp (px) of the observations' quality.
        tile_format: webp, png or jpeg.
        chunk: read regions are aligned to it (global px, a multiple of 64).
    """

    zmin: int = 0
    zmax: int = 14
    renderer: str = "unet"
    model: str | None = None
    window: int = config.WINDOW
    overlap: int = config.OVERLAP
    block_size: int = config.BLOCK_SIZE
    composite: str = "best"
    feather: int = 64
    tile_format: str = "webp"
    chunk: int = 128

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.build.BuildSettings", *(getattr(self, f.name) for f in fields(self)))

    def validated(self) -> BuildSettings:
        """Check every option; raise InputError naming it and the fix."""
        ZoomRange(self.zmin, self.zmax).validated()
        check_block_size(self.block_size)
        WindowGrid(self.window, self.overlap)
        if self.renderer not in RENDERER_NAMES:
            raise InputError(f"--renderer {self.renderer!r}: choose one of {RENDERER_NAMES}")
        if self.composite not in METHOD_NAMES:
            raise InputError(f"--composite {self.composite!r}: choose one of {METHOD_NAMES}")
        if self.tile_format not in TILE_FORMATS:
            raise InputError(f"--tile-format {self.tile_format!r}: one of {tuple(TILE_FORMATS)}")
        if self.feather < 0:
            raise InputError(f"--feather must be >= 0 pixels, got {self.feather}")
        if self.chunk <= 0 or self.chunk % 64 or self.block_size % self.chunk:
            raise InputError(f"warp chunk {self.chunk} must be a multiple of 64 dividing the block")
        return self

    def make_renderer(self) -> Renderer:
        """The renderer (cheap: the U-Net's weights load lazily, once per process)."""
        return get_renderer(self.renderer, model=self.model, window=self.window,
                            overlap=self.overlap)

    def read_settings(self) -> ReadSettings:
        """The warp settings."""
        return ReadSettings(zoom=self.zmax, chunk=self.chunk)


def input_region(block: Block, renderer) -> Region:
    """The pixels the renderer needs to render ``block`` exactly."""
    need = renderer.input_region(block.region)
    return union([Region(*need) if isinstance(need, tuple) else need, block.region])


def read_region(block: Block, settings: BuildSettings, renderer) -> Region:
    """The chunk-aligned region a block warps and composites: input region + quality padding."""
    pad = required_padding(settings.feather)
    return expand(input_region(block, renderer), pad).aligned_out(settings.chunk)


@dataclass(frozen=True)
class BlockJob:
    """The frozen argument of one block task: (block, scenes touching it, settings, output)."""

    block: Block
    scenes: tuple  # tuple[basemap.stac.scene.Scene, ...] in manifest order
    settings: BuildSettings
    storage: Storage

    def __dask_tokenize__(self) -> tuple:
        from dask.base import tokenize

        return ("basemap.build.BlockJob", tokenize(self.block, self.scenes, self.settings,
                                                    self.storage))


@dataclass(frozen=True)
class BlockResult:
    """The record of one block: status ok / empty / degraded / failed, and what it wrote.

    ``empty`` means the block was computed and no scene has data in it (all-cloud pixels are
    filled, not empty; nothing written, the model not run), which is not the same as ``failed``
    (not computed).
    """

    block: Block
    status: str
    scenes: int = 0
    tiles: tuple[tuple[int, int], ...] = ()
    cog: str | None = None
    message: str = ""
    seconds: float = 0.0
    rgba: np.ndarray | None = field(default=None, compare=False, repr=False)
    filled: float = 0.0  # fraction of the block's valid pixels filled from rejected observations
    pixels: int = 0  # the block's valid (delivered) pixels


def build_block(job: BlockJob) -> BlockResult:
    """Dask task: build one block's COG and tiles; a pure function of the job.

    Returns:
        The block's record, carrying its root tile's RGBA for the pyramid above it (None when
        the block is empty or the pyramid starts below it).
    """
    start = time.perf_counter()
    s = job.settings
    block = job.block
    renderer = s.make_renderer()
    need = input_region(block, renderer)
    region = read_region(block, s, renderer)
    rsettings = s.read_settings()
    comp = compositor(s.composite, (region.height, region.width))
    used, skipped = 0, []
    with rasterio.Env(**config.gdal_env()):
        for obs in observations(job.scenes, region, rsettings, s.feather, skipped):
            comp.add(obs.reflectance, obs.valid, obs.accepted, obs.quality,
                     obs.region.slices((region.x0, region.y0)))
            used += 1
    made = comp.result()
    refl, valid = made.reflectance, made.valid
    status = "degraded" if skipped else "ok"
    message = f"missing assets of {', '.join(skipped)}" if skipped else ""
    rows, cols = block.region.slices((region.x0, region.y0))
    alpha = valid[rows, cols]
    if not alpha.any():  # no scene has data here: the renderer is not run, nothing is written
        return BlockResult(block, "degraded" if skipped else "empty", used, message=message,
                           seconds=time.perf_counter() - start)
    filled = made.filled[rows, cols]
    nr, nc = need.slices((region.x0, region.y0))
    rgb = renderer.render(refl[:, nr, nc], valid[nr, nc], (need.x0, need.y0), block.region)
    rgba = np.concatenate([rgb, (alpha * np.uint8(255))[None]]).astype(np.uint8)
    rgba[:3, ~alpha] = 0
    key = cog_key(block)
    write_block_cog(rgba, block.region, s.zmax, job.storage, key)
    provenance = np.stack([made.count[rows, cols], filled * np.uint8(255)]).astype(np.uint8)
    write_block_cog(provenance, block.region, s.zmax, job.storage, provenance_key(block))
    out = TileOutput(job.storage, s.tile_format)
    tx, ty = block.region.x0 // TILE_SIZE, block.region.y0 // TILE_SIZE
    counts, root = write_levels(rgba, tx, ty, s.zmax, s.zmin, out)
    rz = block.root[0]
    return BlockResult(
        block, status, used, tuple(sorted(counts.items(), reverse=True)), key, message,
        time.perf_counter() - start, rgba=root if min(counts) == rz and rz > s.zmin else None,
        filled=round(float(filled.sum() / alpha.sum()), 6), pixels=int(alpha.sum()),
    )


def provenance_key(block: Block) -> str:
    """Storage key of a block's provenance COG: band 1 the number of accepted observations
    used per pixel, band 2 255 where the pixel was filled from rejected ones."""
    return f"provenance/{block.name}.tif"


def _tile_counts(outputs: tuple[tuple[str, int, str], ...]) -> tuple[tuple[int, int], ...]:
    counts: dict[int, int] = {}
    for key, _, _ in outputs:
        if key.startswith("tiles/"):
            z = int(key.split("/")[1])
            counts[z] = counts.get(z, 0) + 1
    return tuple(sorted(counts.items(), reverse=True))


def run_block(job: BlockJob) -> BlockResult:
    """Dask task: one block, exactly once.

    Skipped (its files and the lossless root tile come from the ledger) when the ledger has it
    with the same inputs fingerprint and intact files; otherwise its entry is dropped, the block
    is built (:func:`build_block`) and, once every file is published, recorded.
    A failure raises before anything is recorded, so the block is retried by the next run.
    """
    ledger = Ledger(job.storage)
    name = job.block.name
    fp = block_fingerprint(job)
    rec = ledger.done(name, fp)
    if rec is not None:
        log.info("block %s: finished in an earlier run (ledger): not recomputed", name)
        cog = next((k for k, _, _ in rec.outputs if k.startswith("cogs/")), None)
        return BlockResult(job.block, rec.status, len(rec.items), _tile_counts(rec.outputs), cog,
                           RESUMED, 0.0, rgba=ledger.root(name) if rec.root else None,
                           filled=rec.filled, pixels=rec.pixels)
    ledger.forget(name)
    recording = RecordingStorage(job.storage)
    result = build_block(replace(job, storage=recording))
    notes = (result.message,) if result.message else ()
    ledger.record(BlockRecord(name, fp, result.status, recording.outputs(),
                              tuple(s.id for s in job.scenes), notes, result.rgba is not None,
                              result.filled, result.pixels),
                  result.rgba)
    return result


