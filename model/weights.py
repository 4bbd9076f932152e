"""Weights as data with metadata: architecture, normalisation, band order, provenance.

A weights file is a ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {"format": "basemap-resunet", "version": 1, "bands": ["red", "green", "blue"],
     "arch": UNetConfig fields, "normalization": Normalization fields,
     "state_dict": {...}, "meta": {free-form provenance: data, recipe, metrics}}

:func:`load_weights` checks all of it and raises :class:`basemap.errors.WeightsError` naming the
file and what was expected, so a corrupt file or another architecture never loads half-way.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import torch
from basemap.model.unet import Normalization, ResUNet, UNetConfig

from basemap.errors import WeightsError

T = TypeVar("T")

FORMAT = "basemap-resunet"
VERSION = 1
BANDS = ("red", "green", "blue")
#: The weights shipped with the package (trained by
#: ``python -m basemap.model.training.recipe``).
DEFAULT_WEIGHTS = Path(__file__).with_name("default.pt")


def save_weights(
    path: str | Path,
    model: ResUNet,
    normalization: Normalization,
    meta: dict | None = None,
) -> Path:
    """Write a model's weights with its architecture, normalisation and metadata (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "bands": list(BANDS),
        "arch": model.config.to_dict(),
        "normalization": normalization.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _dataclass_from(cls: type[T], data: object, path: Path, what: str) -> T:
    names = {f.name for f in fields(cls)}
    if not isinstance(data, dict) or set(data) - names:
        raise WeightsError(
            f"{path}: unexpected {what} {data!r}; expected the fields {sorted(names)} "
            f"(format {FORMAT} v{VERSION})"
        )
    return cls(**data)


def load_weights(path: str | Path) -> tuple[ResUNet, Normalization, dict]:
    """Load a weights file into an eval-mode :class:`ResUNet` on the CPU.

    Returns:
        (model, normalization, meta).

    Raises:
        WeightsError: the file is missing, unreadable, not a basemap weights file, of another
            format version, band order or architecture, or its tensors do not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"model weights not found: {path}. Pass --model PATH to a file written by "
            f"`basemap train`, or omit it to use the shipped {DEFAULT_WEIGHTS.name}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise WeightsError(
            f"cannot read model weights {path}: {type(exc).__name__}: {str(exc)[:200]}. Expected "
            f"a {FORMAT} v{VERSION} file written by `basemap train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise WeightsError(
            f"{path} is not a basemap U-Net weights file (format {got!r}); expected format "
            f"{FORMAT!r} written by `basemap train` (a bare state_dict or another model's "
            "checkpoint cannot be used)"
        )
    if payload.get("version") != VERSION:
        raise WeightsError(
            f"{path}: weights format version {payload.get('version')!r}, this basemap reads "
            f"version {VERSION}; retrain with `basemap train` or upgrade basemap"
        )
    if tuple(payload.get("bands", ())) != BANDS:
        raise WeightsError(f"{path}: band order {payload.get('bands')!r}, expected {list(BANDS)}")
    config = _dataclass_from(UNetConfig, payload.get("arch"), path, "architecture")
    norm = _dataclass_from(Normalization, payload.get("normalization"), path, "normalization")
    model = ResUNet(config, norm)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: no state_dict in the weights file")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or bad_shapes:
        raise WeightsError(
            f"{path}: the tensors do not match the architecture {config} it declares: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {bad_shapes[:5]}"
        )
    model.load_state_dict(state)
    model.eval()
    return model, norm, dict(payload.get("meta") or {})
