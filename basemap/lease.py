"""The run lease (``ledger/lease.json``): keeps two runs off one output (docs/reliability.md, 21).

It is created with create-only semantics (O_EXCL locally, ``If-None-Match: *`` on S3) and renewed
by a heartbeat; a lease whose holder is gone (same host, dead pid) or whose heartbeat stopped
(expired) is broken.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from basemap.errors import LeaseHeldError
from basemap.output.storage import Storage

log = logging.getLogger(__name__)

LEASE_KEY = "ledger/lease.json"
#: A lease not renewed for this long is taken to be abandoned (its holder crashed elsewhere).
LEASE_TTL_S = 120.0


@dataclass
class Lease:
    """Exclusive use of an output by one run: create-only lease object plus a heartbeat.

    Use as a context manager: ``with Lease(storage): ...``.
    """

    storage: Storage
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
                        f"writing to {self.storage.root}; wait for it "
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
