"""Planning a build, before anything is read: the settings that decide the pixels, the blocks'
jobs and regions, which block runs each U-Net window, the box to search and the scenes of each
block. Pure functions of their arguments (no I/O); the block task is
:mod:`basemap.pipeline.block_task`, the run :mod:`basemap.pipeline.build`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields

from basemap import __version__, config
from basemap.errors import InputError
from basemap.grid import (
    Block,
    Region,
    check_block_size,
    expand,
    footprint_px_rings,
    region_lonlat_bounds,
    ring_intersects,
    union,
)
from basemap.mosaic.composite import METHOD_NAMES
from basemap.mosaic.observation_quality import required_padding
from basemap.output.media import TILE_FORMATS
from basemap.output.storage import Storage
from basemap.pipeline.ledger import fingerprint
from basemap.read.scenes import ReadSettings
from basemap.render.base import RENDERER_NAMES, Renderer, get_renderer
from basemap.render.inference import weights_sha256
from basemap.render.precision import check_request
from basemap.render.windows import Window, WindowGrid
from basemap.stac.scene import Scene
from basemap.stac.select import MAX_SCENES_PER_BLOCK, clearest
from basemap.types import BBox, ZoomRange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the output pixels (recorded in build.json).

    Attributes:
        zmin, zmax: zoom range; the global pixel grid is the one of ``zmax``.
        renderer: renderer name (:data:`basemap.render.base.RENDERER_NAMES`).
        model: U-Net weights file (None: the shipped default).
        model_sha256: the sha256 of those weights, pinned by the driver in the jobs it sends
            (:func:`basemap.pipeline.graph.pin_weights`), so that a worker loads the same weights
            whatever its paths (None: not pinned). Not part of the fingerprint (which holds the
            weights' hash either way).
        window, overlap: the U-Net's window grid (global pixels).
        precision: the U-Net's number format asked for (default ``BASEMAP_PRECISION``; ``auto``:
            each worker takes what its device has, :mod:`basemap.render.precision`).
        block_size: processing block side in pixels (256 times a power of two).
        composite: compositing method (:data:`basemap.mosaic.composite.METHODS`).
        feather: footprint-edge ramp (px) of the observations' quality.
        tile_format: webp, png or jpeg.
        chunk: read regions are aligned to it (global px, a multiple of 64).
    """

    zmin: int = 0
    zmax: int = 14
    renderer: str = RENDERER_NAMES[0]
    model: str | None = None
    model_sha256: str | None = None
    window: int = config.WINDOW
    overlap: int = config.OVERLAP
    precision: str = field(default_factory=config.precision)
    block_size: int = config.BLOCK_SIZE
    composite: str = "best"
    feather: int = config.FEATHER
    tile_format: str = "webp"
    chunk: int = config.CHUNK

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.pipeline.plan.BuildSettings",
                *(getattr(self, f.name) for f in fields(self)))

    def validated(self) -> BuildSettings:
        """Check every option; raise InputError naming it and the fix."""
        ZoomRange(self.zmin, self.zmax).validated()
        check_block_size(self.block_size)
        WindowGrid(self.window, self.overlap)
        if self.renderer not in RENDERER_NAMES:
            raise InputError(f"--renderer {self.renderer!r}: choose one of {RENDERER_NAMES}")
        check_request(self.precision)
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
                            overlap=self.overlap, model_sha256=self.model_sha256,
                            precision=self.precision)

    def read_settings(self) -> ReadSettings:
        """The warp settings."""
        return ReadSettings(zoom=self.zmax, chunk=self.chunk)


def input_region(block: Block, renderer: Renderer) -> Region:
    """The pixels the renderer needs to render ``block`` exactly."""
    return union([renderer.input_region(block.region), block.region])


def read_region(block: Block, settings: BuildSettings, renderer: Renderer) -> Region:
    """The chunk-aligned region a block warps and composites to render every window touching
    it (an upper bound of what its part reads): input region + quality padding."""
    return padded_region(input_region(block, renderer), settings)


def padded_region(need: Region, settings: BuildSettings) -> Region:
    """``need`` grown by the quality's padding and aligned to the warp chunks."""
    return expand(need, required_padding(settings.feather)).aligned_out(settings.chunk)


@dataclass(frozen=True)
class BlockJob:
    """The frozen argument of one block task: (block, scenes touching it, settings, output)."""

    block: Block
    scenes: tuple[Scene, ...]  # in manifest order
    settings: BuildSettings
    storage: Storage

    def __dask_tokenize__(self) -> tuple:
        from dask.base import tokenize

        return ("basemap.pipeline.plan.BlockJob", tokenize(self.block, self.scenes, self.settings,
                                                    self.storage))

    def fingerprint(self) -> str:
        """The block's inputs fingerprint (what the ledger keys a finished block by): items and
        update times, settings (the model path replaced by the weights' hash: the pinned one, on
        a worker that may not have the path), block, version. The precision only when one is
        asked for: ``auto`` blocks may be any (each within 2 levels of fp32), so outputs begun
        before there was a choice resume without recomputing."""
        settings = asdict(self.settings)
        pinned = settings.pop("model_sha256")
        if settings["precision"] == "auto":
            del settings["precision"]
        weights = self.settings.make_renderer().weights
        settings["model"] = None if weights is None else pinned or weights_sha256(weights)
        settings["block"] = [self.block.bx, self.block.by, self.block.size, self.block.z]
        settings["version"] = __version__
        return fingerprint(((s.id, s.updated) for s in self.scenes), settings)


def window_owners(jobs: list[BlockJob]) -> tuple[list[tuple[Window, ...]],
                                                 list[tuple[int, ...]]]:
    """Which block task runs each window, so that every window runs once.

    A window belongs to the block holding its top-left pixel when that block is among the
    jobs, else to the first job whose block it touches. Returns, per job, the windows it runs
    (row-major) and the jobs whose parts its block needs (itself first, then the others in job
    order). A renderer without windows: no windows, each block needs its own part only.
    """
    grid = jobs[0].settings.make_renderer().grid if jobs else None
    if grid is None:
        return [() for _ in jobs], [(i,) for i in range(len(jobs))]
    home = {(j.block.bx, j.block.by): i for i, j in enumerate(jobs)}
    owner: dict[Window, int] = {}
    needs = []
    for i, job in enumerate(jobs):
        touching = list(grid.windows(job.block.region))
        size = job.block.size
        for w in touching:
            if w not in owner:
                owner[w] = home.get((w[0] // size, w[1] // size), i)
        needs.append(touching)
    owned: list[list[Window]] = [[] for _ in jobs]
    for w, i in owner.items():
        owned[i].append(w)
    deps = [(i, *sorted({owner[w] for w in ws} - {i})) for i, ws in enumerate(needs)]
    return [tuple(sorted(ws, key=lambda w: (w[1], w[0]))) for ws in owned], deps


def search_bbox(blocks: list[Block], settings: BuildSettings, renderer: Renderer) -> BBox:
    """The WGS84 box to search: the union of the blocks' read regions.

    Blocks in one run of columns give one box, however wide (over 180 degrees too). Blocks in
    two runs (a gap of columns between them) lie either side of the antimeridian: one box with
    west > east, or the whole width when their read regions close the gap.
    """
    columns = sorted({b.bx for b in blocks})
    gap = next((c for prev, c in zip(columns, columns[1:], strict=False) if c > prev + 1), None)
    runs = [blocks] if gap is None else [[b for b in blocks if b.bx < gap],
                                         [b for b in blocks if b.bx >= gap]]
    parts = [region_lonlat_bounds(union([read_region(b, settings, renderer) for b in run]),
                                  settings.zmax) for run in runs]
    south, north = min(p[1] for p in parts), max(p[3] for p in parts)
    if gap is None:
        return BBox(parts[0][0], south, parts[0][2], north)
    west, east = parts[1][0], parts[0][2]  # the eastern run starts the box, the western ends it
    return BBox(west, south, east, north) if west > east else BBox(-180.0, south, 180.0, north)


def assign_scenes(blocks: list[Block], scenes: list[Scene], settings: BuildSettings,
                  renderer: Renderer) -> list[tuple[Block, tuple[Scene, ...]]]:
    """(block, scenes whose footprint touches its read region) for every block with data in it.

    A block is kept when some footprint intersects the block itself; its scenes are those whose
    footprint intersects its read region, in manifest order, at most
    :data:`~basemap.stac.select.MAX_SCENES_PER_BLOCK` (the least cloudy, with a log line: the
    memory of a block is bounded whatever the catalog holds).
    """
    rings = [(s, footprint_px_rings(s.footprint, settings.zmax)) for s in scenes]
    out = []
    for block in blocks:
        if not any(ring_intersects(r, block.region) for _, rs in rings for r in rs):
            continue
        rr = read_region(block, settings, renderer)
        touching = [s for s, rs in rings if any(ring_intersects(r, rr) for r in rs)]
        if len(touching) > MAX_SCENES_PER_BLOCK:
            log.warning("block %s: %d items touch it; compositing the %d least cloudy (narrow "
                        "--datetime or lower --max-items to choose)", block.name, len(touching),
                        MAX_SCENES_PER_BLOCK)
            touching = clearest(touching, MAX_SCENES_PER_BLOCK)
        out.append((block, tuple(touching)))
    return out
