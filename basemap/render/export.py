"""The U-Net's ONNX export: the network with its normalisation and x255 as one graph, kept in
``BASEMAP_CACHE`` (:func:`basemap.config.cache_dir`) under a key of the weights, the code that
builds the graph and torch's version, with the network's downsampling factor beside it.

The export is the same for every precision: fp32 runs it in ONNX Runtime, bf16 compiles it with
OpenVINO (:mod:`basemap.render.precision`, 0.1 s) when the model loads, so no cached file is
specific to a precision and none can be taken for another.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from basemap import config


def graph_module(net: Any, normalization: Any) -> Any:
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


def export(net: Any, normalization: Any) -> bytes | None:
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
        torch.onnx.export(graph_module(net.cpu(), normalization), torch.zeros(1, 3, 8 * f, 8 * f),
                          buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": axes, "y": axes}, dynamo=False)
    return buf.getvalue()


def export_path(digest: str) -> Path | None:
    """The cache file of the export of the weights with sha256 ``digest``: keyed by it, the
    source of the modules that build the graph (the network, its tone prior's constants and the
    luminance weights), and torch's version (None: no cache)."""
    folder = config.cache_dir()
    if folder is None or not digest:
        return None
    from importlib.metadata import version
    from importlib.util import find_spec

    key = hashlib.sha256(digest.encode())
    modules = [find_spec(m).origin
               for m in ("basemap.model.unet", "basemap.model.tone", "basemap.colour")]
    for module in (*modules, __file__):
        key.update(Path(module).read_bytes())
    key.update(version("torch").encode())
    return folder / "onnx" / f"{key.hexdigest()[:32]}.onnx"


def publish(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass
