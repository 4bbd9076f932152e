"""Batched U-Net inference over the global window grid, with tapered blending.

The same code renders a build block and a single GeoTIFF (`basemap colorize`): the region is cut
into windows on the global grid (:mod:`basemap.windows`), windows without a valid pixel are
skipped, the rest run through the model in batches (GPU with autocast and channels_last when there
is one; on CPU, ONNX Runtime when installed -- about 2x faster than torch here, see
BENCHMARKS.md -- else torch in channels_last), and their outputs are blended with taper weights.
The model is loaded once per process (:func:`load_model`, cached by path + sha256). Set
``BASEMAP_CPU_BACKEND=torch`` to use the torch reference path on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basemap.errors import InputError
from basemap.windows import WindowGrid, blend

#: Default window size and overlap (px); the shipped model is trained for them.
WINDOW = 512
OVERLAP = 64


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference, with its normalisation and identity."""

    path: str
    sha256: str
    device: str
    net: Any = field(compare=False, repr=False)
    normalization: Any = field(compare=False, repr=False)
    meta: dict = field(compare=False, repr=False, default_factory=dict)
    session: Any = field(compare=False, repr=False, default=None)  # ONNX Runtime (CPU) or None

    @property
    def factor(self) -> int:
        """Window sides must be a multiple of this (the network's downsampling factor)."""
        return self.net.config.factor

    def predict(self, reflectance: np.ndarray) -> np.ndarray:
        """Run a batch: float32 reflectance (N, 3, H, W) -> float32 RGB in [0, 255] (N, 3, H, W)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))
        with torch.inference_mode():
            if self.session is not None:  # normalisation and x255 are inside the graph
                return self.session.run(["y"], {"x": x.numpy()})[0]
            if self.device == "cpu":
                y = self.net(self.normalization.apply(x).contiguous(
                    memory_format=torch.channels_last))
            else:
                x = x.to(self.device, non_blocking=True).contiguous(
                    memory_format=torch.channels_last
                )
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    y = self.net(self.normalization.apply(x))
            return (y.float() * 255.0).cpu().numpy()


_CACHE: dict[tuple[str, str, str, str], LoadedModel] = {}


def prepare_net(net: Any, device: str) -> Any:
    """The inference form of a network on ``device``: batch norm folded into the convolutions,
    weights in channels_last (NHWC), the layout of oneDNN's and cuDNN's fastest convolutions.

    On CPU this is ~4x faster than NCHW for this U-Net (benchmarks/model_throughput.py).
    """
    import torch

    from basemap.model.unet import fold_batchnorm

    return fold_batchnorm(net).to(device, memory_format=torch.channels_last)


def _graph(net: Any, normalization: Any) -> Any:
    """reflectance (N, 3, H, W) -> normalisation -> network -> x255, as one exportable module
    (asinh written as log(r + sqrt(r^2 + 1)), exact for the clipped r >= 0; ONNX export has no
    asinh)."""
    import math

    import torch

    n = normalization
    if n.clip_low < 0:
        raise ValueError("the exported normalisation assumes clip_low >= 0")
    scale = 1.0 / math.asinh(n.clip_high / n.softening)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            r = x.clamp(n.clip_low, n.clip_high) / n.softening
            return self.net(torch.log(r + torch.sqrt(r * r + 1.0)) * scale) * 255.0

    return Graph()


def onnx_session(net: Any, normalization: Any, threads: int) -> Any | None:
    """An ONNX Runtime CPU session computing :meth:`LoadedModel.predict` (reflectance in, RGB in
    [0, 255] out) of a prepared network, or None when onnxruntime or onnx is not installed.

    Its outputs match torch's to ~1e-4 of an 8-bit unit and do not depend on the batch a window
    is run in (tests/test_benchmarks.py)."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime as ort
    except ImportError:
        return None
    import io
    import warnings

    import torch

    buf = io.BytesIO()
    f = net.config.factor
    axes = {0: "n", 2: "h", 3: "w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_graph(net.cpu(), normalization), torch.zeros(1, 3, 8 * f, 8 * f), buf,
                          input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": axes, "y": axes}, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def default_device() -> str:
    """"cuda" when a CUDA GPU is visible, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | Path | None = None, device: str | None = None) -> LoadedModel:
    """Load weights once per process (cache keyed by resolved path + sha256 + device).

    Args:
        path: a weights file written by `basemap train`; None for the shipped default.
        device: "cpu", "cuda" or "cuda:N"; None picks CUDA when present.

    Raises:
        basemap.errors.WeightsError: missing, corrupt or mismatched weights.
    """
    import torch

    from basemap.model.weights import DEFAULT_WEIGHTS, load_weights, sha256

    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    device = device or default_device()
    digest = sha256(path) if path.is_file() else ""
    backend = os.environ.get("BASEMAP_CPU_BACKEND", "onnx") if device == "cpu" else "torch"
    key = (str(path.resolve()), digest, device, backend)
    if key not in _CACHE:
        net, norm, meta = load_weights(path)
        session = None
        if device == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            torch.set_num_threads(max(1, min(torch.get_num_threads(), cores)))
            if backend != "torch":
                session = onnx_session(prepare_net(net, "cpu"), norm, torch.get_num_threads())
        else:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        net = prepare_net(net, device)
        _CACHE[key] = LoadedModel(str(path), digest, device, net, norm, meta, session)
    return _CACHE[key]


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
            attributes, e.g. renderers.Region).
        model: a :class:`LoadedModel`, a weights path, or None for the shipped default.
        window: window side in px (a multiple of the model's downsampling factor).
        overlap: overlap between neighbouring windows in px (<= window / 2).
        batch_size: windows per forward pass (default 16 on GPU, 4 on CPU: best measured).
        progress: show a tqdm bar over windows.

    Returns:
        uint8 (3, h, w); pixels that are not valid are 0.
    """
    if not isinstance(model, LoadedModel):
        model = load_model(model)
    grid = WindowGrid(window, overlap)
    if window % model.factor:
        raise InputError(
            f"window {window} is not a multiple of the model's downsampling factor {model.factor}"
        )
    x0, y0, x1, y1 = bounds = _bounds(region)
    ox, oy = origin
    need = grid.input_bounds(*bounds)
    have = (ox, oy, ox + reflectance.shape[2], oy + reflectance.shape[1])
    if need[0] < have[0] or need[1] < have[1] or need[2] > have[2] or need[3] > have[3]:
        raise InputError(
            f"reflectance covers global px {have}, but the windows for region {bounds} need "
            f"{need}: read WindowGrid({window}, {overlap}).input_bounds(region)"
        )
    if valid.shape != reflectance.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match reflectance {reflectance.shape}")
    batch_size = batch_size or (16 if model.device != "cpu" else 4)
    todo = [
        (wx, wy)
        for wx, wy in grid.windows(*bounds)
        if valid[wy - oy : wy - oy + window, wx - ox : wx - ox + window].any()
    ]
    acc, wsum = blend(
        _run_windows(reflectance, valid, origin, todo, model, window, batch_size, progress),
        grid,
        bounds,
    )
    out = np.zeros_like(acc, dtype=np.uint8)
    covered = wsum > 0
    np.divide(acc, wsum, out=acc, where=covered)
    out[:] = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
    keep = valid[y0 - oy : y1 - oy, x0 - ox : x1 - ox] & covered
    out[:, ~keep] = 0
    return out


def _run_windows(
    reflectance: np.ndarray,
    valid: np.ndarray,
    origin: tuple[int, int],
    todo: list[tuple[int, int]],
    model: LoadedModel,
    window: int,
    batch_size: int,
    progress: bool,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (wx, wy, float32 output) for each window in order, computed in batches."""
    from tqdm import tqdm

    ox, oy = origin
    bar = tqdm(total=len(todo), desc="colorize", unit="win", disable=not progress)
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        batch = np.zeros((batch_size if model.device != "cpu" else len(chunk), 3, window, window),
                         dtype=np.float32)
        for j, (wx, wy) in enumerate(chunk):
            sl = np.s_[wy - oy : wy - oy + window, wx - ox : wx - ox + window]
            batch[j] = np.where(valid[sl], reflectance[(slice(None), *sl)], 0.0)
        out = model.predict(batch)
        for j, (wx, wy) in enumerate(chunk):
            yield wx, wy, out[j]
        bar.update(len(chunk))
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


def colorize_file(
    src: str | Path,
    dst: str | Path,
    model_path: str | Path | None = None,
    renderer: str = "unet",
    dn_offset: float = 0.0,
    chunk: int = 1792,
    progress: bool = True,
) -> Path:
    """Colorize a 3-band (R, G, B) uint16 L2A GeoTIFF into a validated 8-bit COG with a mask.

    The image is cut into `chunk`-px regions; each reads (boundless, 0 = nodata) exactly the input
    its renderer needs, so the result does not depend on `chunk` (the window grid starts at the
    image's top-left pixel). DN 0 in any band is nodata and becomes the mask.

    Args:
        src: input GeoTIFF, bands R, G, B of Sentinel-2 L2A DN.
        dst: output COG path.
        model_path: weights for the `unet` renderer (None: the shipped default).
        renderer: a name from basemap.renderers.RENDERER_NAMES.
        dn_offset: added to DN before /10000 (-1000 for processing baseline >= 04.00, else 0).
        chunk: region size in px processed at once (memory bound).
        progress: tqdm bar over regions.

    Raises:
        InputError: not a 3-band integer GeoTIFF; ConfigError: unreadable input or output path.
    """
    import rasterio
    from rasterio.windows import Window
    from tqdm import tqdm

    from basemap.errors import ConfigError
    from basemap.renderers import Region, get_renderer
    from basemap.stac import to_reflectance

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ConfigError(f"{src}: no such file")
    if not dst.parent.is_dir():
        raise ConfigError(f"output folder {dst.parent} does not exist")
    rend = get_renderer(renderer, None if model_path is None else str(model_path))
    with rasterio.open(src) as ds:
        if ds.count != 3 or not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
            raise InputError(
                f"{src} has {ds.count} band(s) of {ds.dtypes[0]}; expected 3 integer bands R, G, B "
                "of Sentinel-2 L2A DN (stack B04, B03, B02, e.g. with gdal_merge.py -separate)"
            )
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
            for region in tqdm(regions, desc=f"colorize ({renderer})", disable=not progress):
                need = rend.input_region(region)
                win = Window(need.x0, need.y0, need.x1 - need.x0, need.y1 - need.y0)
                dn = ds.read(window=win, boundless=True, fill_value=0)
                refl, valid = to_reflectance(dn, dn_offset)
                rgb = rend.render(refl, valid, (need.x0, need.y0), region)
                rows, cols = region.slices((need.x0, need.y0))
                owin = Window(region.x0, region.y0, region.width, region.height)
                out.write(rgb, window=owin)
                out.write_mask((valid[rows, cols] * 255).astype(np.uint8), window=owin)
    try:
        write_cog(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".msk").unlink(missing_ok=True)
    return dst


def write_cog(src: str | Path, dst: str | Path) -> None:
    """Translate a GeoTIFF with a mask to a deflate COG (internal overviews + mask), validated.

    Raises:
        BasemapError: rio-cogeo says the result is not a valid COG.
    """
    from rio_cogeo.cogeo import cog_translate, cog_validate
    from rio_cogeo.profiles import cog_profiles

    from basemap.errors import BasemapError

    dst = Path(dst)
    part = dst.with_name(dst.name + ".part")
    cog_translate(str(src), str(part), cog_profiles.get("deflate"), add_mask=True,
                  overview_resampling="average", quiet=True, in_memory=False)  # fmt: skip
    ok, errors, _ = cog_validate(str(part))
    if not ok:
        part.unlink(missing_ok=True)
        raise BasemapError(f"rio-cogeo says {dst} is not a valid COG: {errors}")
    part.replace(dst)
