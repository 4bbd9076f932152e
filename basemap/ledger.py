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

The lease (``ledger/lease.json``) keeps two runs off one output: it is created with create-only
semantics (O_EXCL locally, ``If-None-Match: *`` on S3) and renewed by a heartbeat; a lease whose
holder is gone (same host, dead pid) or whose heartbeat stopped (expired) is broken.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from basemap.errors import ConfigError

log = logging.getLogger(__name__)

LEDGER_PREFIX = "ledger/blocks"
LEASE_KEY = "ledger/lease.json"
#: BlockResult.message of a block taken from the ledger instead of being recomputed.
RESUMED = "resumed from the ledger"
#: A lease not renewed for this long is taken to be abandoned (its holder crashed elsewhere).
LEASE_TTL_S = 120.0


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

    def to_json(self) -> bytes:
        """The entry's bytes."""
        doc = {
            "block": self.block, "fingerprint": self.fingerprint, "status": self.status,
            "outputs": [list(o) for o in self.outputs], "items": list(self.items),
            "notes": list(self.notes), "root": self.root,
        }  # no timestamp: a resumed output is byte-identical to a clean one, ledger included
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> BlockRecord:
        """Parse an entry (ValueError/KeyError when it is not one)."""
        doc = json.loads(data)
        return cls(doc["block"], doc["fingerprint"], doc["status"],
                   tuple((k, int(s), h) for k, s, h in doc["outputs"]),
                   tuple(doc.get("items", ())), tuple(doc.get("notes", ())),
                   bool(doc.get("root", False)))


def encode_rgba(rgba: np.ndarray) -> bytes:
    """Lossless PNG of a (4, h, w) uint8 RGBA array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.moveaxis(rgba, 0, -1)), "RGBA").save(
        buf, "PNG", compress_level=6)
    return buf.getvalue()


def decode_rgba(data: bytes) -> np.ndarray:
    """Inverse of encode_rgba."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.moveaxis(np.asarray(im.convert("RGBA")), -1, 0).copy()


@dataclass(frozen=True)
class Ledger:
    """The ledger of one output (frozen, picklable: workers write their own entries)."""

    storage: object  # LocalStorage or S3Storage

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
        if digest is None and hasattr(self.storage, "size"):
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
        delete = getattr(self.storage, "delete", None)
        if delete is not None:
            delete(self.entry_key(block_name))


# ---- the lease ---------------------------------------------------------------------------------


class LeaseHeldError(ConfigError):
    """Another run holds the output's lease."""


@dataclass
class Lease:
    """Exclusive use of an output by one run: create-only lease object plus a heartbeat.

    Use as a context manager: ``with Lease(storage): ...``.
    """

    storage: object
    ttl: float = LEASE_TTL_S
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _doc(self) -> bytes:
        return json.dumps({
            "token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
            "expires": time.time() + self.ttl,
        }).encode()

    def acquire(self) -> None:
        """Take the lease, breaking a stale one.

        Raises:
            LeaseHeldError: a live run holds it (exit 2, nothing written).
        """
        for _ in range(3):
            try:
                self.storage.create_only(LEASE_KEY, self._doc())
                break
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not _stale(holder):
                    raise LeaseHeldError(
                        f"another run (host {holder.get('host')}, pid {holder.get('pid')}) is "
                        f"writing to {getattr(self.storage, 'root', self.storage)}; wait for it "
                        f"to finish, or, if it is gone, delete {LEASE_KEY} there"
                    ) from None
                log.warning("breaking a stale lease on the output (holder %s)", holder)
                self.storage.delete(LEASE_KEY)
        else:
            raise LeaseHeldError(f"could not take the lease {LEASE_KEY}: it keeps changing hands")
        self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                        name="basemap-lease")
        self._thread.start()

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.storage.read_bytes(LEASE_KEY))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # unreadable: a writer died mid-write on a store without atomic writes

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            holder = self._holder()
            if holder is None or holder.get("token") != self.token:
                log.error("the output's lease was taken over by another run")
                return
            self.storage.write_bytes(LEASE_KEY, self._doc())

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            self.storage.delete(LEASE_KEY)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _stale(holder: dict) -> bool:
    """True when a lease's holder is gone: expired, or a dead process on this host."""
    if not holder or holder.get("expires", 0) < time.time():
        return True
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
    return False


# ---- resumable block tasks -------------------------------------------------------------------


class RecordingStorage:
    """A storage wrapper that remembers (key, size, sha256) of everything a block publishes.

    Lives inside one task (never pickled); everything else is passed through.
    """

    def __init__(self, storage) -> None:
        self._storage = storage
        self.written: dict[str, tuple[int, str]] = {}

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish and record."""
        self._storage.write_bytes(key, data)
        self.written[key] = (len(data), sha256(data))

    def put_file(self, key: str, local_path) -> None:
        """Publish a local file and record it."""
        with open(local_path, "rb") as fh:
            data = fh.read()
        self._storage.put_file(key, local_path)
        self.written[key] = (len(data), sha256(data))

    def outputs(self) -> tuple[tuple[str, int, str], ...]:
        """(key, size, sha256) of the published files, sorted by key."""
        return tuple((k, s, h) for k, (s, h) in sorted(self.written.items()))


def model_identity(settings) -> str | None:
    """SHA-256 of the U-Net weights a build uses (None for the classic renderers)."""
    if settings.renderer != "unet":
        return None
    from pathlib import Path

    from basemap.model.weights import DEFAULT_WEIGHTS

    path = Path(settings.model) if settings.model else DEFAULT_WEIGHTS
    return sha256(path.read_bytes()) if path.is_file() else None


def block_fingerprint(job) -> str:
    """The inputs fingerprint of a :class:`basemap.build.BlockJob`: items and update times,
    settings (model path replaced by the weights' checksum), block, package version."""
    from dataclasses import asdict

    from basemap import __version__

    settings = asdict(job.settings)
    settings["model"] = model_identity(job.settings)
    settings["block"] = [job.block.bx, job.block.by, job.block.size, job.block.z]
    settings["version"] = __version__
    return fingerprint(((s.id, s.updated) for s in job.scenes), settings)


def _tile_counts(outputs: tuple[tuple[str, int, str], ...]) -> tuple[tuple[int, int], ...]:
    counts: dict[int, int] = {}
    for key, _, _ in outputs:
        if key.startswith("tiles/"):
            z = int(key.split("/")[1])
            counts[z] = counts.get(z, 0) + 1
    return tuple(sorted(counts.items(), reverse=True))


def run_block(job):
    """Dask task: one block, exactly once.

    Skipped (its files and the lossless root tile come from the ledger) when the ledger has it
    with the same inputs fingerprint and intact files; otherwise its entry is dropped, the block
    is built (:func:`basemap.build.build_block`) and, once every file is published, recorded.
    A failure raises before anything is recorded, so the block is retried by the next run.
    """
    from dataclasses import replace

    from basemap.build import BlockResult, build_block

    ledger = Ledger(job.storage)
    name = job.block.name
    fp = block_fingerprint(job)
    rec = ledger.done(name, fp)
    if rec is not None:
        log.info("block %s: finished in an earlier run (ledger): not recomputed", name)
        cog = next((k for k, _, _ in rec.outputs if k.startswith("cogs/")), None)
        return BlockResult(job.block, rec.status, len(rec.items), _tile_counts(rec.outputs), cog,
                           RESUMED, 0.0, rgba=ledger.root(name) if rec.root else None)
    ledger.forget(name)
    recording = RecordingStorage(job.storage)
    result = build_block(replace(job, storage=recording))
    notes = (result.message,) if result.message else ()
    ledger.record(BlockRecord(name, fp, result.status, recording.outputs(),
                              tuple(s.id for s in job.scenes), notes, result.rgba is not None),
                  result.rgba)
    return result


# ---- the frozen manifest (RELIABILITY.md row 22) ------------------------------------------------


def freeze_manifest(storage, scenes: list, search: dict) -> list:
    """The run's frozen item list: the first search's, kept in the ledger and reused on reruns.

    Args:
        storage: the output.
        scenes: what the search found now.
        search: the search parameters (source, bbox, datetime, max_cloud, collection, ...).

    Returns:
        The frozen scenes when this output already has a manifest for the same search (changes
        in the catalog are logged as warnings, not used), else ``scenes`` (now frozen).
    """
    from basemap.stac import Scene

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


def clean_temp_files(storage) -> int:
    """Remove temporary files a killed run left in a local output (``.name.*.tmp``, ``.tmp/``).

    Called under the lease, so no live writer owns them. S3 outputs have none: an object exists
    only once its single PUT completed. Returns how many were removed.
    """
    import shutil
    from pathlib import Path

    from basemap.storage import LocalStorage

    if not isinstance(storage, LocalStorage):
        return 0
    root = Path(storage.root)
    if not root.is_dir():
        return 0
    removed = 0
    for tmp in root.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    scratch = root / ".tmp"
    if scratch.is_dir():
        removed += sum(1 for p in scratch.rglob("*") if p.is_file())
        shutil.rmtree(scratch, ignore_errors=True)
    if removed:
        log.warning("removed %d temporary file(s) left by an interrupted run in %s", removed, root)
    return removed
