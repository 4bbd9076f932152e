"""The U-Net's inference engine: weights loaded once per process, batches run on the best backend.

Batches run on a GPU with autocast and channels_last when there is one; on CPU, ONNX Runtime when
installed -- about 2x faster than torch here, see BENCHMARKS.md -- else torch in channels_last;
in bf16 where the CPU has it, through OpenVINO (the precision: :mod:`basemap.render.precision`).
torch, onnx and onnxruntime are imported inside the functions that need them (heavy optional
dependencies: the classic renderers never load them). The model is loaded once per process
(:func:`load_model`, cached by path + sha256). Set ``BASEMAP_CPU_BACKEND=torch`` to use the torch
reference path on CPU. The ONNX export (1.5 s per process, most of it importing onnx) is kept in
``BASEMAP_CACHE`` (:mod:`basemap.render.export`), so a worker that starts loads the model from
there without importing torch (another 2-3 s).

On a GPU, batches are sized to the device (:meth:`LoadedModel.batch_size`: as many windows as fit
in a share of its free memory, measured once per window size) and staged in pinned host memory
(:meth:`LoadedModel.host_batch`), so the copy to the device is asynchronous.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basemap import config
from basemap.errors import WeightsError
from basemap.render.export import export, export_path, publish
from basemap.render.precision import OpenVinoSession, autocast_dtype, resolve


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference, with its normalisation and identity."""

    path: str
    sha256: str
    device: str
    net: Any = field(compare=False, repr=False)  # None when loaded from the ONNX cache
    normalization: Any = field(compare=False, repr=False)
    meta: dict = field(compare=False, repr=False, default_factory=dict)
    session: Any = field(compare=False, repr=False, default=None)  # ONNX Runtime (CPU) or None
    downsampling: int = 0  # the network's factor when there is no ``net``
    precision: str = "fp32"  # what it runs in: fp32, bf16 or fp16 (basemap.render.precision)

    @property
    def factor(self) -> int:
        """Window sides must be a multiple of this (the network's downsampling factor)."""
        return self.downsampling or self.net.config.factor

    def batch_size(self, window: int) -> int:
        """Windows per forward pass: :data:`CPU_BATCH` on CPU; on a GPU as many as fit in
        :data:`GPU_MEMORY_SHARE` of its free memory (:func:`device_batch`)."""
        if self.device == "cpu":
            return CPU_BATCH
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        return device_batch(free, _window_bytes(self, window))

    def host_batch(self, n: int, window: int) -> np.ndarray:
        """A float32 (n, 3, window, window) input buffer: page-locked (pinned) memory on a GPU,
        which the device copies from asynchronously; ordinary memory on CPU."""
        if self.device == "cpu":
            return np.zeros((n, 3, window, window), dtype=np.float32)
        import torch

        return torch.zeros((n, 3, window, window), dtype=torch.float32, pin_memory=True).numpy()

    def predict(self, reflectance: np.ndarray) -> np.ndarray:
        """Run a batch: float32 reflectance (N, 3, H, W) -> float32 RGB in [0, 255] (N, 3, H, W)."""
        x = np.ascontiguousarray(reflectance, dtype=np.float32)
        if self.session is not None:  # normalisation and x255 are inside the graph
            return self.session.run(["y"], {"x": x})[0]
        import torch

        x = torch.from_numpy(x).to(self.device, non_blocking=True)
        dtype = autocast_dtype(self.precision)
        with torch.inference_mode(), torch.autocast(x.device.type, dtype, dtype is not None):
            y = self.net(self.normalization.apply(x).contiguous(memory_format=torch.channels_last))
            return (y.float() * 255.0).cpu().numpy()


_CACHE: dict[tuple[str, str, str, str, str], LoadedModel] = {}

#: Windows per forward pass on CPU: one window's activations stay in cache (BENCHMARKS.md §2).
CPU_BATCH = 1
#: A GPU batch uses at most this share of the device memory free when it is sized (the rest is
#: for other workers on the same device and the allocator's slack), and at most GPU_BATCH_MAX
#: windows (beyond which a batch is no faster per window).
GPU_MEMORY_SHARE = 0.5
GPU_BATCH_MAX = 64
_WINDOW_BYTES: dict[tuple[str, str, int], int] = {}


def device_batch(free_bytes: int, window_bytes: int) -> int:
    """Windows per batch on a device with ``free_bytes`` free, each window needing
    ``window_bytes`` of device memory: 1 to :data:`GPU_BATCH_MAX`."""
    fit = int(GPU_MEMORY_SHARE * free_bytes) // max(int(window_bytes), 1)
    return max(1, min(GPU_BATCH_MAX, fit))


def _window_bytes(model: LoadedModel, window: int) -> int:
    """Peak device memory one window of side ``window`` takes in :meth:`LoadedModel.predict`
    (measured on two windows, once per model, device and window size)."""
    key = (model.sha256, model.device, window)
    if key not in _WINDOW_BYTES:
        import torch

        torch.cuda.synchronize(model.device)
        base = torch.cuda.memory_allocated(model.device)
        torch.cuda.reset_peak_memory_stats(model.device)
        model.predict(model.host_batch(2, window))
        peak = torch.cuda.max_memory_allocated(model.device)
        _WINDOW_BYTES[key] = max(1, (peak - base) // 2)
    return _WINDOW_BYTES[key]


def prepare_net(net: Any, device: str) -> Any:
    """The inference form of a network on ``device``: batch norm folded into the convolutions,
    weights in channels_last (NHWC), the layout of oneDNN's and cuDNN's fastest convolutions.

    On CPU this is ~4x faster than NCHW for this U-Net (benchmarks/model_throughput.py).
    """
    import torch

    # deferred on purpose: basemap.model.unet imports torch (a heavy optional dependency)
    from basemap.model.unet import fold_batchnorm

    return fold_batchnorm(net).to(device, memory_format=torch.channels_last)


def onnx_session(net: Any, normalization: Any, threads: int, digest: str = "",
                 precision: str = "fp32") -> Any | None:
    """A CPU session computing :meth:`LoadedModel.predict` (reflectance in, RGB in [0, 255] out)
    of a prepared network from its ONNX export: ONNX Runtime in fp32, OpenVINO in bf16
    (:class:`basemap.render.precision.OpenVinoSession`); None when onnxruntime or onnx is not
    installed. With the weights' sha256 ``digest``, the export is read from (or written to) the
    cache.

    fp32 outputs match torch's to ~1e-4 of an 8-bit unit; in either precision they do not
    depend on the batch a window is run in (tests/integration/test_benchmarks.py,
    tests/render/test_precision.py)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    cached = export_path(digest)
    session = None
    if cached is not None and cached.is_file():
        try:
            session = _session(cached.read_bytes(), threads, precision)
        except Exception:  # an unreadable cache file is exported again, and replaced
            session = None
    if session is None:
        graph = export(net, normalization)
        if graph is None:
            return None
        if cached is not None:
            publish(cached, graph)
        session = _session(graph, threads, precision)
    if cached is not None and not cached.with_suffix(".json").is_file():
        publish(cached.with_suffix(".json"), json.dumps({"factor": net.config.factor}).encode())
    return session


def _session(graph: bytes, threads: int, precision: str) -> Any:
    """A CPU session of an exported graph on ``threads`` threads, in ``precision``."""
    if precision == "bf16":
        return OpenVinoSession(graph, threads)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


def _cached_model(path: Path, digest: str, precision: str) -> LoadedModel | None:
    """The CPU model of weights ``digest`` from the ONNX cache alone, without importing torch
    (the export and its ``.json``, written by :func:`onnx_session` once the weights were
    validated), or None when the cache lacks it or cannot be read."""
    cached = export_path(digest)
    if cached is None or not cached.is_file() or not cached.with_suffix(".json").is_file():
        return None
    try:
        factor = int(json.loads(cached.with_suffix(".json").read_text())["factor"])
        session = _session(cached.read_bytes(), cpu_threads(), precision)
    except Exception:  # a damaged or partial entry: load the weights (and export again)
        return None
    return LoadedModel(str(path), digest, "cpu", None, None, session=session,
                       downsampling=factor, precision=precision)


#: Device files of the NVIDIA (and ROCm) drivers: without any, a Linux machine has no GPU that
#: torch could use, and the 2-3 s import of torch is saved.
GPU_DEVICES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd")


def default_device() -> str:
    """"cuda" when a CUDA GPU is visible, else "cpu" (without importing torch on a Linux
    machine that has none of :data:`GPU_DEVICES`)."""
    if sys.platform.startswith("linux") and not any(map(os.path.exists, GPU_DEVICES)):
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_threads() -> int:
    """Threads of CPU inference, torch's and ONNX Runtime's alike: ``OMP_NUM_THREADS`` (a Dask
    worker: 1), else the physical cores (torch's default), at most the cores this process may
    use."""
    import psutil

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    wanted = config.inference_threads() or psutil.cpu_count(logical=False) or usable
    return max(1, min(wanted, usable))


def weights_sha256(path: Path) -> str | None:
    """THE hash of a weights file (None when there is none): what identifies a model in the
    ledger, build.json and the caches; computed once per file version and process."""
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_weights(path: Path) -> None:
    """Preflight of a weights file: it exists and loads into the architecture it declares (read
    once, on the CPU: names and shapes of its tensors checked), before any search or compute.

    Raises:
        WeightsError: naming the file, what is wrong and what was expected (exit 2).
    """
    if not path.is_file():
        raise WeightsError(
            f"U-Net weights {path} not found: pass --model PATH (from `basemap train`), or use "
            "a classic renderer, e.g. --renderer linear"
        )
    # deferred on purpose: basemap.model.weights imports torch (heavy; the U-Net's only)
    from basemap.model.weights import load_weights

    load_weights(path)


def load_model(path: str | Path | None = None, device: str | None = None,
               precision: str | None = None) -> LoadedModel:
    """Load weights once per process (cache keyed by resolved path, sha256, device, backend and
    precision).

    On CPU with ONNX Runtime, weights whose export is in the ONNX cache load from it without
    importing torch (2-3 s saved in each worker that starts).

    Args:
        path: a weights file written by `basemap train`; None for the shipped default.
        device: "cpu", "cuda" or "cuda:N"; None picks CUDA when present.
        precision: what to run in (:data:`basemap.render.precision.REQUESTS`; None:
            ``BASEMAP_PRECISION``, default auto).

    Raises:
        basemap.errors.WeightsError: missing, corrupt or mismatched weights.
        basemap.errors.ConfigError: a precision the device cannot run.
    """
    path = config.weights_path(path)
    device = device or default_device()
    digest = weights_sha256(path) or ""
    backend = config.cpu_backend() if device == "cpu" else "torch"
    requested = precision or config.precision()
    if backend == "torch" and device == "cpu" and requested == "auto":
        requested = "fp32"  # the torch reference path on CPU stays fp32 unless asked
    precision = resolve(requested, device)
    key = (str(path.resolve()), digest, device, backend, precision)
    if key not in _CACHE:
        cached = (_cached_model(path, digest, precision)
                  if device == "cpu" and backend != "torch" else None)
        _CACHE[key] = cached or _load(path, digest, device, backend, precision)
    return _CACHE[key]


def _load(path: Path, digest: str, device: str, backend: str, precision: str) -> LoadedModel:
    """Read and validate the weights with torch, and prepare them for ``device``."""
    import torch

    # deferred on purpose: basemap.model.weights imports torch (a heavy optional dependency)
    from basemap.model.weights import load_weights

    net, norm, meta = load_weights(path)
    session = None
    if device == "cpu":
        threads = cpu_threads()
        torch.set_num_threads(threads)
        if backend != "torch":
            session = onnx_session(prepare_net(net, "cpu"), norm, threads, digest, precision)
    else:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return LoadedModel(str(path), digest, device, prepare_net(net, device), norm, meta, session,
                       precision=precision)
