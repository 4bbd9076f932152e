"""The `unet` renderer: batched U-Net inference over the global window grid, tapered blending.

The same code renders a build block and a single GeoTIFF (`basemap colorize`): the region is cut
into windows on the global grid (:mod:`basemap.render.windows`), windows without a valid pixel
are skipped, the rest run through the model in batches (:mod:`basemap.render.inference`), and
their outputs are blended with taper weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from basemap import config
from basemap.errors import InputError
from basemap.render.gapfill import fill_gaps
from basemap.render.inference import LoadedModel, load_model
from basemap.render.windows import WindowGrid, blend

#: Default window size and overlap (px); the shipped model is trained for them.
WINDOW = config.WINDOW
OVERLAP = config.OVERLAP


def _bounds(region: Any) -> tuple[int, int, int, int]:
    if isinstance(region, tuple):
        return tuple(int(v) for v in region)  # type: ignore[return-value]
    return int(region.x0), int(region.y0), int(region.x1), int(region.y1)


def colorize_array(
    reflectance: np.ndarray,
    valid: np.ndarray,
    origin: tuple[int, int],
    region: Any,
    model: LoadedModel | str | Path | None = None,
    window: int = WINDOW,
    overlap: int = OVERLAP,
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Colorize a region with overlapped windows on the global grid and tapered blending.

    Args:
        reflectance: float32 (3, H, W) R, G, B reflectance; must cover the windows touching
            ``region`` (``WindowGrid(window, overlap).input_bounds(...)``); outside the data,
            pass 0 with ``valid`` False.
        valid: bool (H, W).
        origin: global (x, y) pixel of ``reflectance[:, 0, 0]``.
        region: (x0, y0, x1, y1) global pixels, half-open (a tuple or an object with those
            attributes, e.g. basemap.grid.Region).
        model: a :class:`LoadedModel`, a weights path, or None for the shipped default.
        window: window side in px (a multiple of the model's downsampling factor).
        overlap: overlap between neighbouring windows in px (<= window / 2).
        batch_size: windows per forward pass (default :meth:`LoadedModel.batch_size`: 1 on
            CPU, sized to the free device memory on a GPU).
        progress: show a tqdm bar over windows.

    Returns:
        uint8 (3, h, w); pixels that are not valid are 0.
    """
    if not isinstance(model, LoadedModel):
        model = load_model(model)
    grid = WindowGrid(window, overlap)
    bounds = _bounds(region)
    _check_inputs(reflectance, valid, origin, bounds, grid)
    outputs = window_outputs(reflectance, valid, origin, list(grid.windows(*bounds)), model, grid,
                          batch_size, progress)  # fmt: skip
    return blend_windows(outputs, valid, origin, grid, bounds)


def window_outputs(reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                   windows: list[tuple[int, int]], model: LoadedModel, grid: WindowGrid,
                   batch_size: int | None = None, progress: bool = False,
                   prefetch: bool | None = None) -> dict[tuple[int, int], np.ndarray]:  # fmt: skip
    """The model's float32 (3, window, window) output of each window (global top-left (wx,
    wy)) with a valid pixel; windows without one are left out. The arrays (top-left
    ``origin``) must cover the windows; a window's output does not depend on the batch it ran in
    (:mod:`basemap.render.inference`), so it is the same whichever task runs it. ``prefetch``
    (default: on a GPU) gap-fills the next batch on a thread while the current one runs."""
    if grid.window % model.factor:
        raise InputError(f"window {grid.window} is not a multiple of the model's downsampling "
                         f"factor {model.factor}")  # fmt: skip
    ox, oy, w = *origin, grid.window
    todo = [(wx, wy) for wx, wy in windows
            if valid[wy - oy : wy - oy + w, wx - ox : wx - ox + w].any()]  # fmt: skip
    batch_size = batch_size or model.batch_size(w)
    prefetch = model.device != "cpu" if prefetch is None else prefetch
    return {(wx, wy): out for wx, wy, out in
            _batches(reflectance, valid, origin, todo, model, w, batch_size, progress, prefetch)}


def blend_windows(outputs: dict[tuple[int, int], np.ndarray], valid: np.ndarray,
                  origin: tuple[int, int], grid: WindowGrid,
                  bounds: tuple[int, int, int, int]) -> np.ndarray:  # fmt: skip
    """Blend the window outputs touching ``bounds`` (in the grid's fixed order) into uint8
    (3, h, w); pixels not in ``valid`` (an array with top-left ``origin`` covering ``bounds``)
    or covered by no output are 0."""
    x0, y0, x1, y1 = bounds
    ox, oy = origin
    tiles = ((wx, wy, outputs[wx, wy]) for wx, wy in grid.windows(*bounds)
             if (wx, wy) in outputs)  # fmt: skip
    acc, wsum = blend(tiles, grid, bounds)
    out = np.zeros_like(acc, dtype=np.uint8)
    covered = wsum > 0
    np.divide(acc, wsum, out=acc, where=covered)
    out[:] = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
    keep = valid[y0 - oy : y1 - oy, x0 - ox : x1 - ox] & covered
    out[:, ~keep] = 0
    return out


def _check_inputs(reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                  bounds: tuple[int, int, int, int], grid: WindowGrid) -> None:
    """InputError unless the arrays cover every window touching ``bounds`` and match."""
    ox, oy = origin
    need = grid.input_bounds(*bounds)
    have = (ox, oy, ox + reflectance.shape[2], oy + reflectance.shape[1])
    if need[0] < have[0] or need[1] < have[1] or need[2] > have[2] or need[3] > have[3]:
        raise InputError(
            f"reflectance covers global px {have}, but the windows for region {bounds} need "
            f"{need}: read WindowGrid({grid.window}, {grid.overlap}).input_bounds(region)"
        )
    if valid.shape != reflectance.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match reflectance {reflectance.shape}")


def _batches(
    reflectance: np.ndarray,
    valid: np.ndarray,
    origin: tuple[int, int],
    todo: list[tuple[int, int]],
    model: LoadedModel,
    window: int,
    batch_size: int,
    progress: bool,
    prefetch: bool,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (wx, wy, float32 output) for each window in order, computed in batches.

    Batches are gap-filled into a host buffer (:meth:`LoadedModel.host_batch`); with
    ``prefetch``, into two in turn, the next batch on a thread while the model runs the current
    one (a buffer is refilled only after the batch it held has run). On CPU a batch holds just its
    windows; on a GPU every batch of a call has the same rows (one shape), the unused ones zero.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

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

    bar = tqdm(total=len(todo), desc="colorize", unit="win", disable=not progress)
    pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if prefetch else None
    try:
        ahead = pool.submit(fill, 0) if pool and chunks else None
        for k, chunk in enumerate(chunks):
            batch = ahead.result() if ahead else fill(k)
            ahead = pool.submit(fill, k + 1) if pool and k + 1 < len(chunks) else None
            out = model.predict(batch)
            for j, (wx, wy) in enumerate(chunk):
                yield wx, wy, out[j]
            bar.update(len(chunk))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()


class UNetRenderer:
    """The `unet` renderer: the shipped (or a given) model over the global window grid."""

    name = "unet"

    def __init__(
        self, model_path: str | Path | None = None, window: int = WINDOW, overlap: int = OVERLAP
    ) -> None:
        self.model_path = model_path
        self.grid = WindowGrid(window, overlap)

    def input_region(self, region: Any) -> Any:
        """The global-px region the windows touching ``region`` read (same type as given)."""
        bounds = self.grid.input_bounds(*_bounds(region))
        return bounds if isinstance(region, tuple) else type(region)(*bounds)

    def run_windows(self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                    windows: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The outputs of ``windows`` (global top-lefts) that have a valid pixel
        (:func:`window_outputs`); the arrays, top-left ``origin``, cover them."""
        return window_outputs(reflectance, valid, origin, windows, load_model(self.model_path),
                              self.grid)  # fmt: skip

    def blend(self, outputs: dict[tuple[int, int], np.ndarray], valid: np.ndarray,
              origin: tuple[int, int], region: Any) -> np.ndarray:
        """``region`` blended from window outputs (:func:`blend_windows`)."""
        return blend_windows(outputs, valid, origin, self.grid, _bounds(region))

    def render(
        self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int], region: Any
    ) -> np.ndarray:
        """Colorize ``region``; inputs cover :meth:`input_region` with top-left ``origin``."""
        return colorize_array(
            reflectance,
            valid,
            origin,
            region,
            load_model(self.model_path),
            window=self.grid.window,
            overlap=self.grid.overlap,
        )
