"""`basemap worker`: the `dask worker` command line of a build worker."""

from __future__ import annotations

import sys

from basemap.errors import InputError


def worker_command(scheduler: str, gpus: str, nthreads: int, memory_limit: str,
                   name: str | None = None) -> list[str]:
    """The `dask worker` command line of a build worker.

    A worker with a GPU advertises the Dask resource ``GPU=1`` (inference tasks ask for it) and
    runs one thread per task slot; run one worker (container, pod) per GPU.

    Raises:
        InputError: ``gpus`` is not 0, 1 or "auto".
    """
    if gpus == "auto":
        try:
            import torch  # deferred on purpose: a heavy optional dependency

            count = min(1, torch.cuda.device_count())
        except ImportError:
            count = 0
    elif gpus in ("0", "1"):
        count = int(gpus)
    else:
        raise InputError(f"--gpus must be 0, 1 or auto (got {gpus!r}); run one worker per GPU")
    args = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
            "--nthreads", str(nthreads), "--memory-limit", memory_limit]
    if count:
        args += ["--resources", "GPU=1"]
    if name:
        args += ["--name", name]
    return args
