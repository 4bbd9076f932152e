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
    model_calls: int = 0

    def to_json(self) -> bytes:
        """The entry's bytes."""
        doc = {
            "block": self.block, "fingerprint": self.fingerprint, "status": self.status,
            "outputs": [list(o) for o in self.outputs], "items": list(self.items),
            "notes": list(self.notes), "model_calls": self.model_calls,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> BlockRecord:
        """Parse an entry (ValueError/KeyError when it is not one)."""
        doc = json.loads(data)
        return cls(doc["block"], doc["fingerprint"], doc["status"],
                   tuple((k, int(s), h) for k, s, h in doc["outputs"]),
                   tuple(doc.get("items", ())), tuple(doc.get("notes", ())),
                   int(doc.get("model_calls", 0)))


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
        if rec.status != "empty":
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
        """The lossless root tile of a finished block (None for an empty block)."""
        try:
            return decode_rgba(self.storage.read_bytes(self.root_key(block_name)))
        except FileNotFoundError:
            return None

    def record(self, rec: BlockRecord, root: np.ndarray | None) -> None:
        """Publish a block's entry: call only after every output in ``rec`` is published."""
        if root is not None and root[3].any():
            self.storage.write_bytes(self.root_key(rec.block), encode_rgba(root))
        self.storage.write_bytes(self.entry_key(rec.block), rec.to_json())

    def forget(self, block_name: str) -> None:
        """Drop a block's entry (before rebuilding it, so a crash midway is never 'finished')."""
        delete = getattr(self.storage, "delete", None)
        if delete is not None:
            delete(self.entry_key(block_name))


def output_record(storage, keys: Iterable[str]) -> tuple[tuple[str, int, str], ...]:
    """(key, size, sha256) of published outputs, read back from storage (what is really there)."""
    out = []
    for key in sorted(set(keys)):
        data = storage.read_bytes(key)
        out.append((key, len(data), sha256(data)))
    return tuple(out)


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
