"""The ledger: what is finished in an output, so a rerun does only what is left (exactly once).

One entry per block, ``ledger/blocks/{z}/{x}/{y}.json`` (the block's root tile), written only
after every file of the block is published. It records:

- the inputs fingerprint: the ids and update times of the items that touch the block, and a hash
  of the model and the settings that change pixels (renderer, composite, zoom, block size, ...);
- the outputs: each key with its size and SHA-256;
- the block's status: ``ok``, ``empty`` (no valid pixel: nothing to write, and not missing) or
  ``degraded`` (built, but some input was skipped, e.g. an asset 404);
- beside it, ``{z}/{x}/{y}.png``: the root tile's RGBA, lossless, so the pyramid above a skipped
  block is rebuilt bit-identically without recomputing it.

A rerun skips a block when its entry exists, the fingerprint matches and every output is intact
(size, and SHA-256 where reading it back is cheap). A failed block has no entry, so it is retried;
its parents are never built from it as if it were transparent.

The lease that keeps two runs off one output is :mod:`basemap.pipeline.lease`; the block task that
reads and writes the ledger is :func:`basemap.pipeline.block_task.run_block`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from basemap.output.ownership import owned
from basemap.output.storage import SCRATCH, TEMP_NAME, LocalStorage, Storage
from basemap.stac.scene import Scene

log = logging.getLogger(__name__)

LEDGER_PREFIX = "ledger/blocks"
#: BlockResult.message of a block taken from the ledger instead of being recomputed.
RESUMED = "resumed from the ledger"


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def fingerprint(items: Iterable[tuple[str, str | None]], settings: dict) -> str:
    """The inputs fingerprint of a block.

    Args:
        items: (item id, update time or None) of every item that touches the block.
        settings: everything else that changes the block's pixels or files (JSON-serialisable):
            renderer and model hash, composite method, zoom, block size, tile format, version.
    """
    doc = {"items": sorted([i, u] for i, u in items), "settings": settings}
    return sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


@dataclass(frozen=True)
class BlockRecord:
    """A ledger entry: one finished block."""

    block: str  # "z/x/y" of the block's root tile
    fingerprint: str
    status: str  # "ok" | "empty" | "degraded"
    outputs: tuple[tuple[str, int, str], ...]  # (key, size, sha256)
    items: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    root: bool = False  # a lossless root tile is kept beside the entry
    filled: float = 0.0  # fraction of the block's valid pixels filled from rejected observations
    pixels: int = 0  # the block's valid (delivered) pixels

    def to_json(self) -> bytes:
        """The entry's bytes."""
        doc = {
            "block": self.block, "fingerprint": self.fingerprint, "status": self.status,
            "outputs": [list(o) for o in self.outputs], "items": list(self.items),
            "notes": list(self.notes), "root": self.root, "filled": self.filled,
            "pixels": self.pixels,
        }  # no timestamp: a resumed output is byte-identical to a clean one, ledger included
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> BlockRecord:
        """Parse an entry (ValueError/KeyError when it is not one)."""
        doc = json.loads(data)
        return cls(doc["block"], doc["fingerprint"], doc["status"],
                   tuple((k, int(s), h) for k, s, h in doc["outputs"]),
                   tuple(doc.get("items", ())), tuple(doc.get("notes", ())),
                   bool(doc.get("root", False)), float(doc.get("filled", 0.0)),
                   int(doc.get("pixels", 0)))


def encode_rgba(rgba: np.ndarray) -> bytes:
    """Lossless PNG of a (4, h, w) uint8 RGBA array."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.moveaxis(rgba, 0, -1)), "RGBA").save(
        buf, "PNG", compress_level=6)
    return buf.getvalue()


def decode_rgba(data: bytes) -> np.ndarray:
    """Inverse of encode_rgba."""
    with Image.open(io.BytesIO(data)) as im:
        return np.moveaxis(np.asarray(im.convert("RGBA")), -1, 0).copy()


@dataclass(frozen=True)
class Ledger:
    """The ledger of one output (frozen, picklable: workers write their own entries)."""

    storage: Storage

    @staticmethod
    def entry_key(block_name: str) -> str:
        """Key of a block's entry."""
        return f"{LEDGER_PREFIX}/{block_name}.json"

    @staticmethod
    def root_key(block_name: str) -> str:
        """Key of a block's lossless root tile."""
        return f"{LEDGER_PREFIX}/{block_name}.png"

    def read(self, block_name: str) -> BlockRecord | None:
        """The block's entry, or None (absent or unreadable: then the block is redone)."""
        try:
            return BlockRecord.from_json(self.storage.read_bytes(self.entry_key(block_name)))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ledger entry of block %s is unreadable (%s): redoing it", block_name, exc)
            return None

    def done(self, block_name: str, fp: str, verify: bool = True) -> BlockRecord | None:
        """The entry when the block is finished with these inputs and its files are intact.

        Args:
            block_name: "z/x/y" of the block's root tile.
            fp: the block's current inputs fingerprint.
            verify: also compare SHA-256 of the outputs (else sizes only).
        """
        rec = self.read(block_name)
        if rec is None:
            return None
        if rec.fingerprint != fp:
            log.info("block %s: inputs or settings changed since it was built: redoing it",
                     block_name)
            return None
        keys = [(k, s, h) for k, s, h in rec.outputs]
        if rec.root:
            keys.append((self.root_key(block_name), None, None))
        for key, size, digest in keys:
            if not self._intact(key, size, digest if verify else None):
                log.warning("block %s: output %s is missing or damaged: redoing the block",
                            block_name, key)
                return None
        return rec

    def _intact(self, key: str, size: int | None, digest: str | None) -> bool:
        if digest is None:
            got = self.storage.size(key)
            return got is not None and (size is None or got == size)
        try:
            data = self.storage.read_bytes(key)
        except FileNotFoundError:
            return False
        return (size is None or len(data) == size) and (digest is None or sha256(data) == digest)

    def root(self, block_name: str) -> np.ndarray | None:
        """The lossless root tile of a finished block (None when none was kept)."""
        try:
            return decode_rgba(self.storage.read_bytes(self.root_key(block_name)))
        except FileNotFoundError:
            return None

    def record(self, rec: BlockRecord, root: np.ndarray | None) -> None:
        """Publish a block's entry: call only after every output in ``rec`` is published."""
        if rec.root:
            self.storage.write_bytes(self.root_key(rec.block), encode_rgba(root))
        self.storage.write_bytes(self.entry_key(rec.block), rec.to_json())

    def forget(self, block_name: str) -> None:
        """Drop a block's entry (before rebuilding it, so a crash midway is never 'finished')."""
        self.storage.delete(self.entry_key(block_name))


# ---- resumable block tasks -------------------------------------------------------------------


class RecordingStorage:
    """A storage wrapper that remembers (key, size, sha256) of everything a block publishes.

    Lives inside one task (never pickled); everything else is passed through.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.written: dict[str, tuple[int, str]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish and record."""
        self._storage.write_bytes(key, data)
        self.written[key] = (len(data), sha256(data))

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Publish a local file and record it."""
        with open(local_path, "rb") as fh:
            data = fh.read()
        self._storage.put_file(key, local_path)
        self.written[key] = (len(data), sha256(data))

    def outputs(self) -> tuple[tuple[str, int, str], ...]:
        """(key, size, sha256) of the published files, sorted by key."""
        return tuple((k, s, h) for k, (s, h) in sorted(self.written.items()))


# ---- the frozen manifest (docs/reliability.md, row 22) -------------------------------------------


def freeze_manifest(storage: Storage, scenes: list, search: dict) -> list:
    """The run's frozen item list: the first search's, kept in the ledger and reused on reruns.

    Args:
        storage: the output.
        scenes: what the search found now.
        search: the search parameters (source, bbox, datetime, max_cloud, collection, ...).

    Returns:
        The frozen scenes when this output already has a manifest for the same search (changes
        in the catalog are logged as warnings, not used), else ``scenes`` (now frozen).
    """
    key = f"ledger/manifests/{fingerprint((), search)[:16]}.json"
    try:
        doc = json.loads(storage.read_bytes(key))
    except FileNotFoundError:
        doc = None
    if doc is None:
        storage.write_bytes(key, json.dumps(
            {"search": search, "scenes": [s.to_dict() for s in scenes]}, indent=1).encode())
        return scenes
    frozen = [Scene.from_dict(d) for d in doc["scenes"]]
    now = {s.id: s for s in scenes}
    then = {s.id: s for s in frozen}
    added = sorted(set(now) - set(then))
    removed = sorted(set(then) - set(now))
    changed = sorted(i for i in set(now) & set(then) if now[i] != then[i])
    for what, ids in (("new", added), ("gone", removed), ("changed", changed)):
        if ids:
            log.warning("catalog changed since this output was started: %d %s item(s) (%s%s); "
                        "using the frozen manifest %s (delete it to rebuild with the new items)",
                        len(ids), what, ", ".join(ids[:5]), ", ..." if len(ids) > 5 else "", key)
    return frozen


def clean_temp_files(storage: Storage) -> int:
    """Remove temporary files a killed run left in a local output: the storage's own temporary
    names (:data:`~basemap.output.storage.TEMP_NAME`) and its scratch folder ``.tmp/``, nothing
    else, and only in an output that is this tool's (:func:`~basemap.output.ownership.owned`).

    Called under the lease, so no live writer owns them. S3 outputs have none: an object exists
    only once its single PUT completed. Returns how many were removed.
    """
    if not isinstance(storage, LocalStorage) or not owned(storage):
        return 0
    root = Path(storage.root)
    removed = 0
    for tmp in root.rglob("*.tmp"):
        if tmp.is_file() and TEMP_NAME.fullmatch(tmp.name):
            tmp.unlink(missing_ok=True)
            removed += 1
    scratch = root / SCRATCH
    if scratch.is_dir():
        removed += sum(1 for p in scratch.rglob("*") if p.is_file())
        shutil.rmtree(scratch, ignore_errors=True)
    if removed:
        log.warning("removed %d temporary file(s) left by an interrupted run in %s", removed, root)
    return removed
