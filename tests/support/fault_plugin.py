"""A Dask worker preload for the fault tests: one block task grows its worker past its memory limit.

Used by tests/integration/test_faults.py through Dask's own configuration, in the environment of a
real ``basemap build`` subprocess (so the build's own LocalCluster loads it in every worker process,
restarted ones included)::

    DASK_DISTRIBUTED__WORKER__PRELOAD='["/path/to/tests/support/fault_plugin.py"]'
    FAULT_HOG_MARKER=/tmp/x/victim     # the first block task's key is written here
    FAULT_HOG_MB=900                   # how much the victim allocates (above the memory limit)

The first block task that starts executing anywhere becomes the victim (its key goes into the
marker file, create-only); each time the victim starts executing, the plugin allocates and
touches ``FAULT_HOG_MB`` MB and waits, so the nanny's memory monitor kills the worker process.
Test code only: nothing in the package knows about it.
"""

from __future__ import annotations

import os
import time

from distributed.diagnostics.plugin import WorkerPlugin


class MemoryHog(WorkerPlugin):
    """Allocate past the memory limit when the victim block task starts executing."""

    name = "fault-memory-hog"

    def __init__(self, marker: str, megabytes: int) -> None:
        self.marker = marker
        self.megabytes = megabytes
        self.hog = None

    def transition(self, key, start, finish, **kwargs) -> None:
        """On ``executing`` of the victim: allocate, touch every page, and wait to be killed."""
        name = str(key)
        if finish != "executing" or not name.startswith("block-"):
            return
        try:
            fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as fh:
                fh.write(name)
        except FileExistsError:
            pass
        with open(self.marker) as fh:
            if fh.read() != name:
                return
        import numpy as np

        self.hog = np.ones(self.megabytes << 20, dtype=np.uint8)  # pages touched: resident
        time.sleep(20)  # the nanny terminates this process long before


async def dask_setup(worker) -> None:
    """Dask preload entry point: add the plugin to this worker."""
    await worker.plugin_add(
        MemoryHog(os.environ["FAULT_HOG_MARKER"], int(os.environ.get("FAULT_HOG_MB", "900"))),
        name=MemoryHog.name,
    )
