"""The number format the U-Net runs in, chosen per device, and the bf16 engine for CPUs.

The output is 8-bit, so fp32 is more precision than the product keeps. ``BASEMAP_PRECISION``
(:func:`basemap.config.precision`) asks for one of :data:`REQUESTS`:

- ``fp32``: the reference (ONNX Runtime on CPU, torch on a GPU), and the fallback.
- ``bf16``: convolutions in bfloat16 with fp32 accumulation. On CPU the ONNX export is compiled
  by OpenVINO with bf16 inference precision, which needs AVX-512 BF16 or AMX (recent Xeons,
  AMD Zen 4/5); on a GPU, torch autocast (Ampere or newer). Everything outside the
  convolutions (the normalisation, the tone prior, the sigmoid) stays fp32.
- ``fp16``: GPU only (torch autocast), for GPUs without bf16.
- ``auto`` (default): each worker takes the reduced precision its device has (bf16 on such a
  CPU, bf16 or else fp16 on a GPU), fp32 otherwise.

int8 (ONNX Runtime static quantization, per-channel weights, calibrated on real training crops)
was measured and is not offered: 12-14 DN off fp32 at worst on held-out scenes for 1.1-1.25x
(BENCHMARKS.md §11). A window's output does not depend on the batch it runs in nor on the
threads (tests/render/test_precision.py), so builds stay partition invariant.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from basemap.errors import ConfigError

#: What ``BASEMAP_PRECISION`` may ask for.
REQUESTS = ("auto", "fp32", "bf16", "fp16", "int8")


def resolve(requested: str, device: str) -> str:
    """The precision a model on ``device`` ("cpu", "cuda[:N]") runs in: fp32, bf16 or fp16.

    Raises:
        ConfigError: the request is unknown, or the device cannot run it (saying which can).
    """
    check_request(requested)
    if requested == "fp16" and device == "cpu":
        raise ConfigError("BASEMAP_PRECISION=fp16 runs on a GPU only; on CPU use bf16 (where "
                          "the CPU has it), auto or fp32")
    if requested not in ("auto", "bf16"):
        return requested  # fp32 anywhere, fp16 on a GPU: no need to ask the device
    has_bf16 = cpu_has_bf16() if device == "cpu" else _cuda_has_bf16(device)
    if requested == "auto":
        return "bf16" if has_bf16 else ("fp32" if device == "cpu" else "fp16")
    if not has_bf16:
        what = ("CPU has neither AVX-512 BF16 nor AMX (or OpenVINO is not installed)"
                if device == "cpu" else f"GPU ({device}) has no bf16 (before Ampere)")
        raise ConfigError(f"BASEMAP_PRECISION=bf16, but this {what}: use auto, fp32"
                          f"{'' if device == 'cpu' else ' or fp16'}")
    return requested


def check_request(requested: str) -> None:
    """ConfigError unless ``requested`` is one of :data:`REQUESTS` that is offered."""
    if requested not in REQUESTS:
        raise ConfigError(f"BASEMAP_PRECISION={requested!r}: choose one of "
                          f"{', '.join(r for r in REQUESTS if r != 'int8')}")
    if requested == "int8":
        raise ConfigError("BASEMAP_PRECISION=int8 is not offered: int8 U-Net outputs were up to "
                          "14 levels off fp32 (BENCHMARKS.md §11); use bf16, auto or fp32")


@functools.cache
def cpu_has_bf16() -> bool:
    """True when OpenVINO is installed and reports bf16 for this CPU (AVX-512 BF16 or AMX)."""
    try:
        import openvino
    except ImportError:
        return False
    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _cuda_has_bf16(device: str) -> bool:
    """True when the GPU ``device`` computes bf16 natively (Ampere, compute capability 8, or
    newer; torch's ``is_bf16_supported`` also counts slow emulation on older GPUs)."""
    import torch

    return torch.cuda.get_device_capability(device)[0] >= 8


def autocast_dtype(precision: str) -> Any:
    """The torch dtype autocast runs ``precision`` in (None: fp32, no autocast)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class OpenVinoSession:
    """An ONNX export compiled by OpenVINO for the CPU in bf16, run like an ONNX Runtime
    session (``run(["y"], {"x": x})``). Compiled once per window shape (static shapes run
    1.2x faster than one dynamic model) and run one window at a time, so a window's output is
    the same whatever batch it comes in."""

    def __init__(self, graph: bytes, threads: int) -> None:
        import openvino

        self._core = openvino.Core()
        self._model = self._core.read_model(graph, b"")  # an unreadable graph fails here
        self._threads = threads
        self._compiled: dict[tuple[int, ...], Any] = {}

    def _for(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for inputs of ``shape`` (once per shape)."""
        if shape not in self._compiled:
            model = self._model.clone()
            model.reshape({"x": list(shape)})
            self._compiled[shape] = self._core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": "bf16",
                "INFERENCE_NUM_THREADS": self._threads,
                "PERFORMANCE_HINT": "LATENCY",
                "ENABLE_CPU_PINNING": False,  # worker processes share the cores: never pin
            })
        return self._compiled[shape]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs ``names`` for the inputs ``feeds`` (fresh arrays, safe to keep)."""
        x = feeds["x"]
        compiled = self._for((1, *x.shape[1:]))
        request = compiled.create_infer_request()
        rows = [[np.array(r[compiled.output(n)]) for n in names]
                for r in (request.infer({"x": x[i : i + 1]}) for i in range(len(x)))]
        return [np.concatenate([row[k] for row in rows]) for k in range(len(names))]
