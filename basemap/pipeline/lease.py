"""The run lease (``ledger/lease.json``): keeps two runs off one output (docs/reliability.md, 21).

Every step is atomic, so of runs racing for the lease exactly one wins:

- taking a free lease is a create-only write (O_EXCL locally, ``If-None-Match: *`` on S3);
- breaking a stale one (its holder is gone: same host and a dead pid, or its heartbeat stopped and
  it expired) deletes it only if it still holds the stale bytes that were read
  (:meth:`~basemap.output.storage.Storage.delete_if`: an flock locally, ``If-Match`` its ETag on
  S3), then the breaker takes it like a free one;
- the heartbeat renews it only if it still holds this run's bytes
  (:meth:`~basemap.output.storage.Storage.write_if`). A run whose heartbeat finds another run's
  lease has lost it: it stops (the main thread is interrupted) and the ``with`` block raises
  :class:`LeaseLostError`, instead of writing on.
"""

from __future__ import annotations

import _thread
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from basemap.errors import BasemapError, LeaseHeldError
from basemap.output.storage import Storage

log = logging.getLogger(__name__)

LEASE_KEY = "ledger/lease.json"
#: A lease not renewed for this long is taken to be abandoned (its holder crashed elsewhere); the
#: heartbeat renews it three times as often.
LEASE_TTL_S = 120.0
#: Tries to take the lease while it changes hands (each is one create-only write, at most).
ATTEMPTS = 5


class LeaseLostError(BasemapError):
    """Another run took this run's lease over: this run stopped writing (exit 1)."""


@dataclass
class Lease:
    """Exclusive use of an output by one run: create-only lease object plus a heartbeat.

    Use as a context manager: ``with Lease(storage): ...``.
    """

    storage: Storage
    ttl: float = field(default_factory=lambda: LEASE_TTL_S)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    lost: bool = False  # the heartbeat found another run's lease
    _held: bytes = field(default=b"", repr=False)  # the lease's bytes as this run last wrote them
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _beat: threading.Thread | None = field(default=None, repr=False)  # the heartbeat
    _main: bool = field(default=False, repr=False)  # taken in the main thread (interruptible)

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
        for _ in range(ATTEMPTS):
            doc = self._doc()
            try:
                self.storage.create_only(LEASE_KEY, doc)
            except FileExistsError:
                self._break_if_stale()
                continue
            self._held = doc
            break
        else:
            raise LeaseHeldError(f"could not take the lease {LEASE_KEY}: it keeps changing hands")
        self._main = threading.current_thread() is threading.main_thread()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="basemap-lease")
        self._beat.start()

    def _break_if_stale(self) -> None:
        """Delete the lease if its holder is gone and nobody changed it since it was read.

        Raises:
            LeaseHeldError: a live run holds it.
        """
        try:
            raw = self.storage.read_bytes(LEASE_KEY)
        except FileNotFoundError:
            return  # released meanwhile: take it
        holder = _parse(raw)
        if not _stale(holder):
            raise LeaseHeldError(
                f"another run (host {holder.get('host')}, pid {holder.get('pid')}) is "
                f"writing to {self.storage.root}; wait for it "
                f"to finish, or, if it is gone, delete {LEASE_KEY} there"
            )
        if self.storage.delete_if(LEASE_KEY, raw):
            log.warning("broke a stale lease on the output (holder %s)", holder)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            doc = self._doc()
            try:
                renewed = self.storage.write_if(LEASE_KEY, doc, self._held)
            except Exception as exc:  # noqa: BLE001 - a passing storage error: try again next beat
                log.warning("could not renew the output's lease (%s): trying again", exc)
                continue
            if renewed:
                self._held = doc
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                self.lost = True
                log.error("the output's lease %s was taken over by another run: stopping",
                          LEASE_KEY)
                if self._main:
                    _thread.interrupt_main()
            return

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours."""
        with self._lock:
            self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self._held and not self.lost:
            self.storage.delete_if(LEASE_KEY, self._held)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        except KeyboardInterrupt:  # the heartbeat's interruption, arriving late
            if not self.lost:
                raise
        if self.lost:
            raise LeaseLostError(
                f"another run took over the lease {LEASE_KEY} of {self.storage.root} (a lease not "
                f"renewed for {self.ttl:.0f} s is taken to be abandoned): this run stopped "
                "writing. Let the other run finish, then run the same command again"
            ) from None


def _parse(raw: bytes) -> dict:
    """A lease's document ({} when unreadable: a writer died mid-write on a store without
    atomic writes)."""
    try:
        holder = json.loads(raw)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _stale(holder: dict) -> bool:
    """True when a lease's holder is gone: expired, or a dead process on this host."""
    try:
        if not holder or float(holder.get("expires", 0)) < time.time():
            return True
    except (TypeError, ValueError):
        return True  # unreadable: as an empty lease
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
    return False
