"""The `unet` renderer: batched U-Net inference over the global window grid, tapered blending.

The same code renders a build block and a single GeoTIFF (`basemap colorize`): the region is cut
into windows on the global grid (:mod:`basemap.render.windows`), windows without a valid pixel
are skipped, the rest run through the model in batches (:mod:`basemap.render.inference`), and
their outputs are blended with taper weights.

In a build the driver pins the weights by their sha256 (``BuildSettings.model_sha256``) and hands
their bytes to every worker (:class:`basemap.pipeline.graph.WeightsPlugin`, kept by
:func:`keep_weights`), so a worker on another machine needs no path of the driver's: it finds the
file with that hash (:func:`find_weights`) or fails saying what it lacks.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from basemap import config
from basemap.errors import InputError, WeightsError
from basemap.grid import Region
from basemap.progress import SILENT, Progress
from basemap.render.gapfill import fill_gaps
from basemap.render.inference import LoadedModel, load_model, weights_sha256
from basemap.render.windows import Window, WindowGrid, blend, to_uint8


def colorize_array(
    reflectance: np.ndarray,
    valid: np.ndarray,
    origin: tuple[int, int],
    region: Region,
    model: LoadedModel | str | Path | None = None,
    window: int = config.WINDOW,
    overlap: int = config.OVERLAP,
    batch_size: int | None = None,
    progress: Progress = SILENT,
) -> np.ndarray:
    """Colorize a region with overlapped windows on the global grid and tapered blending.

    Args:
        reflectance: float32 (3, H, W) R, G, B reflectance; must cover the windows touching
            ``region`` (``WindowGrid(window, overlap).input_region(region)``); outside the data,
            pass 0 with ``valid`` False.
        valid: bool (H, W).
        origin: global (x, y) pixel of ``reflectance[:, 0, 0]``.
        region: global pixels.
        model: a :class:`LoadedModel`, a weights path, or None for the shipped default.
        window: window side in px (a multiple of the model's downsampling factor).
        overlap: overlap between neighbouring windows in px (<= window / 2).
        batch_size: windows per forward pass (default :meth:`LoadedModel.batch_size`: 1 on
            CPU, sized to the free device memory on a GPU).
        progress: where the windows run are reported.

    Returns:
        uint8 (3, h, w); pixels that are not valid are 0.
    """
    if not isinstance(model, LoadedModel):
        model = load_model(model)
    grid = WindowGrid(window, overlap)
    _check_inputs(reflectance, valid, origin, region, grid)
    outputs = window_outputs(reflectance, valid, origin, list(grid.windows(region)), model, grid,
                             batch_size, progress)  # fmt: skip
    return blend_windows(outputs, valid, origin, grid, region)


def window_outputs(reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                   windows: list[Window], model: LoadedModel, grid: WindowGrid,
                   batch_size: int | None = None, progress: Progress = SILENT,
                   prefetch: bool | None = None) -> dict[Window, np.ndarray]:  # fmt: skip
    """The model's float32 (3, window, window) output of each window with a valid pixel;
    windows without one are left out. The arrays (top-left
    ``origin``) must cover the windows; a window's output does not depend on the batch it ran in
    (:mod:`basemap.render.inference`), so it is the same whichever task runs it. ``prefetch``
    (default: on a GPU) gap-fills the next batch on a thread while the current one runs."""
    if grid.window % model.factor:
        raise InputError(f"window {grid.window} is not a multiple of the model's downsampling "
                         f"factor {model.factor}")  # fmt: skip
    ox, oy, w = *origin, grid.window
    todo = [Window(*win) for win in windows
            if valid[win[1] - oy : win[1] - oy + w, win[0] - ox : win[0] - ox + w].any()]
    batch_size = batch_size or model.batch_size(w)
    prefetch = model.device != "cpu" if prefetch is None else prefetch
    return dict(_batches(reflectance, valid, origin, todo, model, w, batch_size, progress,
                         prefetch))


def blend_windows(outputs: dict[Window, np.ndarray], valid: np.ndarray,
                  origin: tuple[int, int], grid: WindowGrid, region: Region) -> np.ndarray:
    """Blend the window outputs touching ``region`` (in the grid's fixed order) into uint8
    (3, h, w); pixels not in ``valid`` (an array with top-left ``origin`` covering ``region``)
    or covered by no output are 0."""
    x0, y0, x1, y1 = region.x0, region.y0, region.x1, region.y1
    ox, oy = origin
    tiles = ((w, outputs[w]) for w in grid.windows(region) if w in outputs)
    acc, wsum = blend(tiles, grid, region)
    return to_uint8(acc, wsum, np.ascontiguousarray(valid[y0 - oy : y1 - oy, x0 - ox : x1 - ox]))


def _check_inputs(reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                  region: Region, grid: WindowGrid) -> None:
    """InputError unless the arrays cover every window touching ``region`` and match."""
    ox, oy = origin
    need = grid.input_region(region)
    have = Region(ox, oy, ox + reflectance.shape[2], oy + reflectance.shape[1])
    if need.x0 < have.x0 or need.y0 < have.y0 or need.x1 > have.x1 or need.y1 > have.y1:
        raise InputError(
            f"reflectance covers global px {have}, but the windows for region {region} need "
            f"{need}: read WindowGrid({grid.window}, {grid.overlap}).input_region(region)"
        )
    if valid.shape != reflectance.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match reflectance {reflectance.shape}")


def _batches(
    reflectance: np.ndarray,
    valid: np.ndarray,
    origin: tuple[int, int],
    todo: list[Window],
    model: LoadedModel,
    window: int,
    batch_size: int,
    progress: Progress,
    prefetch: bool,
) -> Iterator[tuple[Window, np.ndarray]]:
    """Yield (window, float32 output) for each window in order, computed in batches.

    Batches are gap-filled into a host buffer (:meth:`LoadedModel.host_batch`); with
    ``prefetch``, into two in turn, the next batch on a thread while the model runs the current
    one (a buffer is refilled only after the batch it held has run). On CPU a batch holds just its
    windows; on a GPU every batch of a call has the same rows (one shape), the unused ones zero.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not todo:
        return
    ox, oy = origin
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    buffers = [model.host_batch(min(batch_size, len(todo)), window)
               for _ in range(2 if prefetch else 1)]  # fmt: skip
    fixed = model.device != "cpu"

    def fill(k: int) -> np.ndarray:
        chunk, buf = chunks[k], buffers[k % len(buffers)]
        for j, (wx, wy) in enumerate(chunk):
            sl = np.s_[wy - oy : wy - oy + window, wx - ox : wx - ox + window]
            buf[j] = fill_gaps(reflectance[(slice(None), *sl)], valid[sl])
        buf[len(chunk) :] = 0
        return buf if fixed else buf[: len(chunk)]

    bar = progress.stage("colorize", len(todo), "win")
    pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if prefetch else None
    try:
        ahead = pool.submit(fill, 0) if pool and chunks else None
        for k, chunk in enumerate(chunks):
            batch = ahead.result() if ahead else fill(k)
            ahead = pool.submit(fill, k + 1) if pool and k + 1 < len(chunks) else None
            out = model.predict(batch)
            for j, win in enumerate(chunk):
                yield win, out[j]
            bar.advance(len(chunk))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()


def kept_weights(sha256: str) -> Path:
    """Where this machine keeps the U-Net weights a build's driver handed over:
    ``BASEMAP_CACHE/weights/<sha256>.pt`` (without a cache, under the temporary folder)."""
    folder = config.cache_dir() or Path(tempfile.gettempdir()) / "basemap"
    return folder / "weights" / f"{sha256}.pt"


def keep_weights(data: bytes, sha256: str) -> Path:
    """Keep the weights a build's driver handed over (on a worker: the graph's plugin), checked
    against their sha256, written once (atomically) where :func:`find_weights` looks.

    Raises:
        WeightsError: the bytes have another hash (damaged on the way), or cannot be written.
    """
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise WeightsError(f"the U-Net weights handed over have sha256 {got}, not {sha256}: "
                           "damaged on the way")
    path = kept_weights(sha256)
    if weights_sha256(path) == sha256:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise WeightsError(f"{socket.gethostname()} cannot keep the U-Net weights {sha256[:12]} "
                           f"in {path.parent} ({exc.strerror or exc}): set {config.CACHE_ENV} to "
                           "a writable folder") from None
    return path


def find_weights(model: str | Path | None, sha256: str) -> Path:
    """The file on this machine of the U-Net weights with this sha256 (pinned by the build's
    driver): the ``--model`` path (None: the shipped default) when it has that hash, else the
    copy the driver handed over (:func:`keep_weights`), else the shipped default when it has it.
    A file with another hash at the same path is never used.

    Raises:
        WeightsError: none has that hash; the message names the hash and each file looked at.
    """
    looked = []
    for path in dict.fromkeys((config.weights_path(model), kept_weights(sha256),
                               config.DEFAULT_WEIGHTS)):  # fmt: skip
        found = weights_sha256(path)
        if found == sha256:
            return path
        looked.append(f"{path} {'missing' if found is None else 'has sha256 ' + found[:12]}")
    raise WeightsError(
        f"this worker ({socket.gethostname()}) lacks the U-Net weights with sha256 {sha256[:12]} "
        f"(--model {model or 'default'} on the driver): {'; '.join(looked)}. The build's driver "
        "hands its weights to every worker of the cluster: see this worker's log for why they "
        f"were not kept (a writable {config.CACHE_ENV}, the same basemap version)")


class UNetRenderer:
    """The `unet` renderer: the shipped (or a given) model over the global window grid."""

    name = "unet"
    wants_gpu = True

    def __init__(
        self, model_path: str | Path | None = None, window: int = config.WINDOW,
        overlap: int = config.OVERLAP, sha256: str | None = None,
        precision: str | None = None
    ) -> None:
        self.model_path = model_path
        #: The weights file named (on the driver); a worker loads the file with :attr:`sha256`.
        self.weights = config.weights_path(model_path)
        #: The weights' sha256 pinned by a build's driver (None: whatever :attr:`weights` holds).
        self.sha256 = sha256
        self.grid = WindowGrid(window, overlap)
        #: The number format asked for (None: ``BASEMAP_PRECISION``; a worker resolves ``auto``
        #: for its device).
        self.asked_precision = precision

    def model(self) -> LoadedModel:
        """The network, loaded once per process: from the weights with the pinned sha256
        wherever this machine has them (:func:`find_weights`), else from :attr:`weights`."""
        return load_model(find_weights(self.model_path, self.sha256) if self.sha256
                          else self.model_path, precision=self.asked_precision)

    def precision(self) -> str:
        """The number format this process runs the windows in (fp32, bf16 or fp16)."""
        return self.model().precision

    def input_region(self, region: Region) -> Region:
        """The global-px region the windows touching ``region`` read."""
        return self.grid.input_region(region)

    def run_windows(self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                    windows: list[Window]) -> dict[Window, np.ndarray]:
        """The outputs of ``windows`` (global top-lefts) that have a valid pixel
        (:func:`window_outputs`); the arrays, top-left ``origin``, cover them."""
        return window_outputs(reflectance, valid, origin, windows, self.model(), self.grid)

    def blend(self, outputs: dict[Window, np.ndarray], valid: np.ndarray,
              origin: tuple[int, int], region: Region) -> np.ndarray:
        """``region`` blended from window outputs (:func:`blend_windows`)."""
        return blend_windows(outputs, valid, origin, self.grid, region)

    def render(
        self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int], region: Region
    ) -> np.ndarray:
        """Colorize ``region``; inputs cover :meth:`input_region` with top-left ``origin``."""
        return colorize_array(
            reflectance,
            valid,
            origin,
            region,
            self.model(),
            window=self.grid.window,
            overlap=self.grid.overlap,
        )
