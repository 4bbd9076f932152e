"""Runs racing for one output's lease: threads released at once by a barrier (row 21, issue row 7).
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from basemap.errors import LeaseHeldError
from basemap.pipeline.lease import LEASE_KEY, Lease, LeaseLostError


def stale_lease() -> bytes:
    """A lease whose holder's heartbeat stopped (expired): any run may break it."""
    return json.dumps({"token": "stale", "host": "another-host", "pid": 1,
                       "expires": time.time() - 1}).encode()


def thief_lease() -> bytes:
    """The lease of a run that broke this one's (as stale) and holds it now, alive."""
    return json.dumps({"token": "thief", "host": "another-host", "pid": 1,
                       "expires": time.time() + 3600}).encode()


def lose_the_lease(storage) -> None:
    """Hold the lease of ``storage`` while another run takes it over: the heartbeat (every 0.1 s
    at a 0.3 s TTL) must stop this run with LeaseLostError within 5 s, and leave the other run's
    lease alone."""
    thief = thief_lease()
    start = time.monotonic()
    with pytest.raises(LeaseLostError, match="another run took over the lease"):
        with Lease(storage, ttl=0.3):
            storage.write_bytes(LEASE_KEY, thief)
            while time.monotonic() - start < 10:
                time.sleep(0.02)
    assert time.monotonic() - start < 5
    assert storage.read_bytes(LEASE_KEY) == thief


def race(storage, contenders: int, spread: float = 0.0, timeout: float = 60.0) -> list[Lease]:
    """``contenders`` threads, released together, each trying to take the lease of ``storage``
    after a random delay of up to ``spread`` seconds (about one request's time on a server, so
    that one's steps fall between another's); returns the leases taken (the caller releases
    them)."""
    barrier = threading.Barrier(contenders)
    winners: list[Lease] = []
    errors: list[BaseException] = []

    def contend() -> None:
        lease = Lease(storage)
        barrier.wait(timeout)
        time.sleep(random.uniform(0.0, spread))
        try:
            lease.acquire()
        except LeaseHeldError:
            return
        except Exception as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
            return
        winners.append(lease)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a contender hung"
    return winners


def one_winner_each_trial(storage_of, trials: int, contenders: int = 4,
                          spread: float = 0.0) -> None:
    """For each trial, a stale lease in ``storage_of(trial)`` raced for by ``contenders``
    (:func:`race`): exactly one takes it, the lease held is the winner's, and once released
    no lease is left."""
    for trial in range(trials):
        storage = storage_of(trial)
        storage.write_bytes(LEASE_KEY, stale_lease())
        winners = race(storage, contenders, spread)
        try:
            assert len(winners) == 1, f"trial {trial}: {len(winners)} runs took the lease"
            assert json.loads(storage.read_bytes(LEASE_KEY))["token"] == winners[0].token
        finally:
            for lease in winners:
                lease.release()
        assert storage.size(LEASE_KEY) is None
