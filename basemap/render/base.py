"""Renderers: reflectance (3, H, W) float32 -> 8-bit RGB, one class per method, in one registry.

Every renderer works on the global pixel grid: `input_region(region)` says which input pixels it
needs to render `region` exactly, and `render` returns only `region`. Pixel-wise renderers need no
context; window-based ones (the U-Net, the per-tile stretch) need their whole windows, which live
on the global grid, so a pixel's value never depends on how the work was split.

Methods: :mod:`basemap.render.classic` (``linear``, ``sh-l2a-optimized``, ``stretch-clahe``,
``per-tile-stretch``,
baselines) and :mod:`basemap.render.unet` (``unet``, the learned one, the default).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from basemap import config
from basemap.errors import InputError
from basemap.grid import Region
from basemap.render.classic import (
    LinearRenderer,
    PerTileStretch,
    SentinelHubL2AOptimized,
    StretchClahe,
)
from basemap.render.unet import UNetRenderer
from basemap.render.windows import Window, WindowGrid


class Renderer(Protocol):
    """What the build and `basemap colorize` need from a rendering method."""

    name: str
    #: The global window grid of a renderer that runs windows (a :class:`WindowedRenderer`),
    #: else None.
    grid: WindowGrid | None
    #: The weights file the renderer was given (None: it has none); its hash is part of every
    #: block's inputs fingerprint and of build.json. On a build's workers the weights are found
    #: by the hash the driver pinned (:func:`basemap.render.unet.find_weights`), not this path.
    weights: Path | None
    #: Whether its work belongs on a GPU when the cluster has one.
    wants_gpu: bool

    def input_region(self, region: Region) -> Region:
        """Global-pixel region of input needed to render `region` exactly."""

    def render(
        self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int], region: Region
    ) -> np.ndarray:
        """Render `region` to uint8 (3, h, w) from input covering `input_region(region)`."""


class WindowedRenderer(Renderer, Protocol):
    """A renderer that runs windows of a global grid (the U-Net): the build runs each window
    once, in the part of one block, and blends it into every block it touches."""

    def precision(self) -> str:
        """The number format this process runs the windows in (fp32, bf16 or fp16)."""

    grid: WindowGrid

    def run_windows(self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                    windows: list[Window]) -> dict[Window, np.ndarray]:
        """The outputs of the ``windows`` that have a valid pixel (arrays with top-left
        ``origin`` covering them)."""

    def blend(self, outputs: dict[Window, np.ndarray], valid: np.ndarray,
              origin: tuple[int, int], region: Region) -> np.ndarray:
        """``region`` as uint8 (3, h, w) blended from the outputs of the windows touching it."""


def windowed(renderer: Renderer) -> WindowedRenderer | None:
    """``renderer`` when it runs windows (:class:`WindowedRenderer`), else None."""
    return renderer if renderer.grid is not None else None  # type: ignore[return-value]


#: name -> factory(model, window, overlap, model_sha256, precision) for every renderer, the
#: default first; the CLI's choices come from here. Only the U-Net has weights and a window grid.
_REGISTRY: dict[str, Callable[[str | None, int, int, str | None, str | None], Renderer]] = {
    UNetRenderer.name: UNetRenderer,
    LinearRenderer.name: lambda *_: LinearRenderer(),
    SentinelHubL2AOptimized.name: lambda *_: SentinelHubL2AOptimized(),
    StretchClahe.name: lambda *_: StretchClahe(),
    PerTileStretch.name: lambda *_: PerTileStretch(),
}


#: Renderer names, the default first (the CLI's click.Choice).
RENDERER_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_renderer(name: str, model: str | None = None, window: int = config.WINDOW,
                 overlap: int = config.OVERLAP, model_sha256: str | None = None,
                 precision: str | None = None) -> Renderer:
    """Build the renderer called `name` (cheap: the U-Net's weights load lazily, once a process).

    Args:
        name: one of :data:`RENDERER_NAMES`.
        model: U-Net weights file (None: the shipped default); ignored by the classic renderers.
        window, overlap: the U-Net's window grid (global pixels); ignored by the others.
        model_sha256: the sha256 the U-Net's weights must have (pinned by a build's driver: a
            worker loads the file with that hash wherever it has it); None: ``model`` as it is.
        precision: the U-Net's number format (:mod:`basemap.render.precision`; None:
            ``BASEMAP_PRECISION``).

    Raises:
        InputError: for an unknown name, listing the known ones, or a bad window grid.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise InputError(
            f"unknown renderer {name!r}; choose one of: {', '.join(RENDERER_NAMES)}"
        ) from None
    return factory(model, window, overlap, model_sha256, precision)
