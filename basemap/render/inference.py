"""The U-Net's inference engine: weights loaded once per process, batches run on the best backend.

Batches run on a GPU with autocast and channels_last when there is one; on CPU, ONNX Runtime when
installed -- about 2x faster than torch here, see BENCHMARKS.md -- else torch in channels_last.
torch, onnx and onnxruntime are imported inside the functions that need them (heavy optional
dependencies: the classic renderers never load them). The model is loaded once per process
(:func:`load_model`, cached by path + sha256). Set ``BASEMAP_CPU_BACKEND=torch`` to use the torch
reference path on CPU. The ONNX export (1.5 s per process, most of it importing onnx) is kept in
``BASEMAP_CACHE`` (:func:`basemap.config.cache_dir`) under a key of the weights, the code that
builds the graph and torch's version, so a worker that starts finds it there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basemap import config


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

    # deferred on purpose: basemap.model.unet imports torch (a heavy optional dependency)
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


def onnx_session(net: Any, normalization: Any, threads: int, digest: str = "") -> Any | None:
    """An ONNX Runtime CPU session computing :meth:`LoadedModel.predict` (reflectance in, RGB in
    [0, 255] out) of a prepared network, or None when onnxruntime or onnx is not installed.
    With the weights' sha256 ``digest``, the export is read from (or written to) the cache.

    Its outputs match torch's to ~1e-4 of an 8-bit unit and do not depend on the batch a window
    is run in (tests/test_benchmarks.py)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    cached = _export_path(digest)
    if cached is not None and cached.is_file():
        try:
            return ort.InferenceSession(cached.read_bytes(), opts,
                                        providers=["CPUExecutionProvider"])
        except Exception:  # an unreadable cache file is exported again, and replaced
            pass
    graph = _export(net, normalization)
    if graph is None:
        return None
    if cached is not None:
        _publish(cached, graph)
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


def _export(net: Any, normalization: Any) -> bytes | None:
    """The network's ONNX graph (dynamic batch and size), or None without the onnx package."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
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
    return buf.getvalue()


def _export_path(digest: str) -> Path | None:
    """The cache file of the export of the weights with sha256 ``digest``: keyed by it, the
    source of the modules that build the graph, and torch's version (None: no cache)."""
    folder = config.cache_dir()
    if folder is None or not digest:
        return None
    import hashlib
    from importlib.util import find_spec

    import torch

    key = hashlib.sha256(digest.encode())
    for module in (find_spec("basemap.model.unet").origin, __file__):
        key.update(Path(module).read_bytes())
    key.update(torch.__version__.encode())
    return folder / "onnx" / f"{key.hexdigest()[:32]}.onnx"


def _publish(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass


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

    # deferred on purpose: basemap.model.weights imports torch (a heavy optional dependency)
    from basemap.model.weights import load_weights, sha256

    path = config.weights_path(path)
    device = device or default_device()
    digest = sha256(path) if path.is_file() else ""
    backend = config.cpu_backend() if device == "cpu" else "torch"
    key = (str(path.resolve()), digest, device, backend)
    if key not in _CACHE:
        net, norm, meta = load_weights(path)
        session = None
        if device == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            torch.set_num_threads(max(1, min(torch.get_num_threads(), cores)))
            if backend != "torch":
                session = onnx_session(prepare_net(net, "cpu"), norm, torch.get_num_threads(),
                                       digest)
        else:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        net = prepare_net(net, device)
        _CACHE[key] = LoadedModel(str(path), digest, device, net, norm, meta, session)
    return _CACHE[key]


