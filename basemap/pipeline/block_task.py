"""The block task: one block of the global grid -> its COG, its tiles and its ledger entry.

:func:`run_block` is the Dask task, exactly once per block: skipped when the ledger
(:mod:`basemap.pipeline.ledger`) has the block with the same inputs and intact files, else
:func:`build_block` computes it, a pure function of the frozen :class:`BlockJob`: warp every
touching scene (:mod:`basemap.read.scenes`), composite (:mod:`basemap.mosaic.composite`), render on
the global window grid (:mod:`basemap.render`), write a validated COG (:mod:`basemap.output.cog`)
and the block's tiles from the max zoom down to its root tile (:mod:`basemap.output.pyramid`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np

from basemap.grid import TILE_SIZE, Block, Region, union
from basemap.mosaic.composite import Composite
from basemap.mosaic.region import composite_region
from basemap.output.cog import cog_key, write_block_cog
from basemap.output.pyramid import write_levels
from basemap.output.tiles import TileOutput
from basemap.pipeline.ledger import RESUMED, BlockRecord, Ledger, RecordingStorage
from basemap.pipeline.plan import BlockJob, input_region, padded_region
from basemap.read.traffic import Traffic
from basemap.render.base import windowed
from basemap.render.windows import Window

log = logging.getLogger(__name__)


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
    reads: Traffic | None = None  # what its own part's reads cost (None: resumed)
    precision: str = ""  # what its windows ran in, e.g. "bf16" ("": none ran here, or resumed)


@dataclass(frozen=True)
class Part:
    """What a block's render task (:func:`render_part`) hands on: the block's composite
    products (valid, count, filled over the block; scenes used and skipped) and either the
    outputs of the windows it was given (by global top-left; a window without a valid pixel has
    none) or, for a renderer without windows, the block's RGB."""

    block: Block
    asked: frozenset[Window]
    outputs: dict[Window, np.ndarray] = field(repr=False)
    rgb: np.ndarray | None = field(repr=False)
    valid: np.ndarray = field(repr=False)
    count: np.ndarray = field(repr=False)
    filled: np.ndarray = field(repr=False)
    used: int = 0
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0
    reads: Traffic = field(default_factory=Traffic)
    precision: str = ""  # the number format its windows ran in ("": none ran)


@dataclass(frozen=True)
class PartComposite:
    """What :func:`composite_part` hands to :func:`infer_part`: the composite of the region a
    part reads (padded, chunk-aligned) and the scenes used and skipped."""

    region: Region
    composite: Composite = field(repr=False)
    used: int = 0
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0
    reads: Traffic = field(default_factory=Traffic)


def composite_part(job: BlockJob, windows: tuple[Window, ...] = ()) -> PartComposite:
    """Dask task (CPU): warp and composite what a part needs (:mod:`basemap.read.scenes`,
    :mod:`basemap.mosaic.composite`): the block and the given windows' extents, padded."""
    start = time.perf_counter()
    s, block = job.settings, job.block
    renderer = windowed(s.make_renderer())
    if renderer is None:
        need = input_region(block, s.make_renderer())
    else:
        need = union([block.region, *(renderer.grid.extent(w) for w in windows)])
    region = padded_region(need, s)
    skipped: list[str] = []
    reads = Traffic()
    made, used = composite_region(job.scenes, region, s.read_settings(), s.composite, s.feather,
                                  skipped, traffic=reads)
    return PartComposite(region, made, used, tuple(skipped), time.perf_counter() - start, reads)


def infer_part(job: BlockJob, windows: tuple[Window, ...], pc: PartComposite) -> Part:
    """Dask task (the GPU's, when the cluster has one): run the given windows on a part's
    composite; a renderer without windows renders the block."""
    start = time.perf_counter()
    block, region, made = job.block, pc.region, pc.composite
    renderer = job.settings.make_renderer()
    runner = windowed(renderer)
    windows = tuple(windows) if runner is not None else ()
    rows, cols = block.region.slices((region.x0, region.y0))
    valid = made.valid[rows, cols]
    outputs, rgb, precision = {}, None, ""
    if runner is not None:
        outputs = runner.run_windows(made.reflectance, made.valid, (region.x0, region.y0),
                                     list(windows))  # fmt: skip
        precision = runner.precision() if outputs else ""
    elif valid.any():  # no scene has data here: the renderer is not run
        need = input_region(block, renderer)
        nr, nc = need.slices((region.x0, region.y0))
        rgb = renderer.render(made.reflectance[:, nr, nc], made.valid[nr, nc],
                              (need.x0, need.y0), block.region)  # fmt: skip
    return Part(block, frozenset(windows), outputs, rgb, valid, made.count[rows, cols],
                made.filled[rows, cols], pc.used, pc.skipped,
                pc.seconds + time.perf_counter() - start, pc.reads, precision)  # fmt: skip


def render_part(job: BlockJob, windows: tuple[Window, ...] = ()) -> Part:
    """Dask task: :func:`composite_part`, then :func:`infer_part`, in one task (no GPU: the
    composite stays in the worker). A pure function of the job and the windows."""
    return infer_part(job, windows, composite_part(job, windows))


def build_block(job: BlockJob, parts: tuple[Part, ...] = ()) -> BlockResult:
    """Dask task: build one block's COG and tiles from its own part and the parts holding the
    windows that touch it (those missing are computed here); a pure function of the job.

    Returns:
        The block's record, carrying its root tile's RGBA for the pyramid above it (None when
        the block is empty or the pyramid starts below it).
    """
    start = time.perf_counter()
    s, block = job.settings, job.block
    runner = windowed(s.make_renderer())
    touching = list(runner.grid.windows(block.region)) if runner is not None else []
    parts = list(parts)
    asked = set().union(*(p.asked for p in parts))
    own = next((p for p in parts if p.block == block), None)
    if own is not None:  # the block's time includes its part's
        start -= own.seconds
    if own is None or not asked.issuperset(touching):
        parts.append(render_part(job, [w for w in touching if w not in asked]))
        own = own or parts[-1]
    skipped = sorted(set().union(*(p.skipped for p in parts)))
    reads = Traffic()  # the block's own part(s): a neighbour's part is its block's
    for p in parts:
        if p.block == block:
            reads.add(p.reads)
    status = "degraded" if skipped else "ok"
    message = f"missing assets of {', '.join(skipped)}" if skipped else ""
    alpha = own.valid
    if not alpha.any():  # no scene has data here: nothing is written
        return BlockResult(block, "degraded" if skipped else "empty", own.used, message=message,
                           seconds=time.perf_counter() - start, reads=reads)
    if runner is not None:
        outputs = {w: p.outputs[w] for p in parts for w in p.asked if w in p.outputs}
        rgb = runner.blend(outputs, alpha, (block.region.x0, block.region.y0), block.region)
    else:
        rgb = own.rgb
    rgba = np.concatenate([rgb, (alpha * np.uint8(255))[None]]).astype(np.uint8)
    rgba[:3, ~alpha] = 0
    key = cog_key(block)
    write_block_cog(rgba, block.region, s.zmax, job.storage, key)
    # the provenance band saturates at 255 observations (a uint8 band)
    provenance = np.stack([np.minimum(own.count, 255),
                           own.filled * np.uint8(255)]).astype(np.uint8)
    write_block_cog(provenance, block.region, s.zmax, job.storage, provenance_key(block))
    out = TileOutput(job.storage, s.tile_format)
    tx, ty = block.region.x0 // TILE_SIZE, block.region.y0 // TILE_SIZE
    counts, root = write_levels(rgba, tx, ty, s.zmax, s.zmin, out)
    rz = block.root[0]
    return BlockResult(
        block, status, own.used, tuple(sorted(counts.items(), reverse=True)), key, message,
        time.perf_counter() - start, rgba=root if min(counts) == rz else None,
        filled=round(float(own.filled.sum() / alpha.sum()), 6), pixels=int(alpha.sum()),
        reads=reads, precision="+".join(sorted({p.precision for p in parts} - {""})),
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


def run_block(job: BlockJob, *parts: Part) -> BlockResult:
    """Dask task: one block, exactly once, from the parts holding its windows (see
    :func:`build_block`).

    Skipped (its files and the lossless root tile come from the ledger) when the ledger has it
    with the same inputs fingerprint and intact files; otherwise its entry is dropped, the block
    is built (:func:`build_block`) and, once every file is published, recorded.
    A failure raises before anything is recorded, so the block is retried by the next run.
    """
    ledger = Ledger(job.storage)
    name = job.block.name
    fp = job.fingerprint()
    rec = ledger.done(name, fp)
    if rec is not None:
        log.info("block %s: finished in an earlier run (ledger): not recomputed", name)
        cog = next((k for k, _, _ in rec.outputs if k.startswith("cogs/")), None)
        return BlockResult(job.block, rec.status, len(rec.items), _tile_counts(rec.outputs), cog,
                           RESUMED, 0.0, rgba=ledger.root(name) if rec.root else None,
                           filled=rec.filled, pixels=rec.pixels)
    ledger.forget(name)
    recording = RecordingStorage(job.storage)
    result = build_block(replace(job, storage=recording), parts)
    notes = (result.message,) if result.message else ()
    ledger.record(BlockRecord(name, fp, result.status, recording.outputs(),
                              tuple(s.id for s in job.scenes), notes, result.rgba is not None,
                              result.filled, result.pixels),
                  result.rgba)
    return result


