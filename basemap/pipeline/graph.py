"""The Dask side of the build: the cluster, per-worker setup, and the task graph.

* Cluster: an existing one from ``--scheduler`` (or ``$BASEMAP_SCHEDULER``), else a LocalCluster
  of ``workers`` processes with one thread each, started with ``spawn`` (GDAL and torch threads
  must not be forked). ``workers=0`` runs one worker thread inside this process (debugging).
  A worker that dies (killed, or over its memory limit: ``$BASEMAP_WORKER_MEMORY``, e.g. ``4GB``,
  default Dask's share of RAM) is restarted by its nanny and its task runs again elsewhere; a
  task that was running on :data:`ALLOWED_FAILURES` + 1 dying workers fails (``KilledWorker``),
  its block is listed as failed (exit 3) and the run goes on. Each worker takes one task at a
  time (``worker-saturation`` 1.0), so a dying worker takes no queued block down with it.
* Failures: a failed block is recorded, the others go on; a full disk stops the run (the
  remaining tasks are cancelled and the ``OSError`` is raised: exit 1 in the CLI).
* Workers: :class:`WorkerSetup` checks that the worker can build (:func:`worker_problems`: the
  driver's basemap version, GDAL's drivers), exports :func:`basemap.config.gdal_env` and pins
  torch to one thread per worker process, before any task runs. A renderer's weights travel with
  the build, not as a path: the driver reads them once, pins their sha256 in the jobs
  (:func:`pin_weights`) and hands their bytes to every worker, those that join later included
  (:class:`WeightsPlugin`), which keeps them in its ``BASEMAP_CACHE``; a worker needs no path,
  folder or file of the driver's (the output is an ``s3://`` bucket on a cluster).
* Graph: for each block the ledger does not have finished, one
  :func:`basemap.pipeline.block_task.render_part` task (composite, and the U-Net on the windows
  that block owns: :func:`basemap.pipeline.plan.window_owners`, so each window runs once).
  When the cluster's workers advertise the Dask resource ``GPU`` and the renderer is ``unet``, the
  part is annotated ``GPU``; where the cluster has more threads than GPUs (CPU workers beside GPU
  ones, or a GPU worker with several threads), it is two tasks instead:
  :func:`basemap.pipeline.block_task.composite_part` (CPU, any thread) and
  :func:`basemap.pipeline.block_task.infer_part` (annotated ``GPU``, ahead of new composites), so
  the other threads composite while the GPU runs the network. Then one
  :func:`basemap.pipeline.block_task.run_block` task per block, from its part and those of the
  neighbours owning windows that touch it (blend, COG, tiles, ledger; prioritised over parts not
  started, so parts are freed row by row); then :func:`basemap.output.pyramid.pyramid_tile` tasks
  level by level above the blocks' root tiles (:func:`basemap.output.pyramid.reduce_levels`, the
  one level loop). Keys are ``name-token`` with tokens from the frozen arguments'
  ``__dask_tokenize__``, so the same work has the same key in every run. :func:`submit_graph`
  returns at once and :func:`collect` waits, so a world run submits its next shard's graph while
  the current one's last blocks run (:mod:`basemap.world.run`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import dask
import numpy as np
import rasterio
from dask.base import tokenize
from distributed import Client, Future, LocalCluster, Worker, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from basemap import __version__, config
from basemap.errors import ConfigError, WeightsError
from basemap.output.pyramid import pyramid_tile, reduce_levels
from basemap.output.tiles import TileOutput
from basemap.pipeline.block_task import (
    BlockResult,
    composite_part,
    infer_part,
    render_part,
    run_block,
)
from basemap.pipeline.ledger import Ledger
from basemap.pipeline.plan import BlockJob, window_owners
from basemap.progress import SILENT, Progress
from basemap.render.inference import default_device
from basemap.render.unet import keep_weights

log = logging.getLogger(__name__)

#: Worker deaths a task may survive on the local cluster before it fails (docs/reliability.md 17;
#: the container images set the same for external schedulers).
ALLOWED_FAILURES = 2
#: GDAL drivers every worker needs: GTiff reads and writes the COGs; HTTP is there when GDAL has
#: curl, which its /vsicurl/ reads of remote assets need.
GDAL_DRIVERS = {"GTiff": "reading and writing COGs",
                "HTTP": "GDAL built with curl, to read remote assets"}


class QuietFailures(logging.Filter):
    """Drops Dask's "Compute Failed" records (each with the worker's traceback): the client
    reports each failed block itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def worker_problems(version: str) -> list[str]:
    """What this process lacks to run a build's tasks for a driver running basemap ``version``:
    another basemap version (its pixels and fingerprints could differ), a GDAL driver of
    :data:`GDAL_DRIVERS` missing. Empty: nothing."""
    problems = []
    if version != __version__:
        problems.append(f"basemap {__version__} is installed here but the driver runs {version} "
                        "(install the same version on the driver and every worker)")
    with rasterio.Env() as env:
        have = env.drivers()
    problems += [f"GDAL has no {name} driver ({why})" for name, why in GDAL_DRIVERS.items()
                 if name not in have]  # fmt: skip
    return problems


class WorkerSetup(WorkerPlugin):
    """Per-worker-process setup: what the worker needs checked (:func:`worker_problems`), GDAL
    configuration, torch threads, and (unless ``verbose``) no "Compute Failed" tracebacks from
    the worker."""

    name = "basemap-worker-setup"

    def __init__(self, gdal_env: dict, torch_threads: int = 1, verbose: bool = False,
                 version: str = __version__) -> None:
        self.gdal_env = {k: str(v) for k, v in gdal_env.items()}
        self.torch_threads = torch_threads
        self.verbose = verbose
        self.version = version
        self.quiet = QuietFailures()

    def setup(self, worker: Worker) -> None:
        """Check the worker, export the GDAL settings and limit torch/OpenMP threads (before
        torch is imported).

        Raises:
            ConfigError: the worker lacks something (named); the driver's ``dask_client`` raises
                it (exit 2) for the workers there when it starts, a worker joining later logs it.
        """
        problems = worker_problems(self.version)
        if problems:
            raise ConfigError(f"worker {worker.address if worker else ''} cannot build: "
                              + "; ".join(problems))
        config.export_env(self.gdal_env, threads=self.torch_threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.torch_threads)
        if not self.verbose:
            logging.getLogger("distributed.worker").addFilter(self.quiet)

    def teardown(self, worker: Worker) -> None:
        """Remove the filter (a worker thread in this process: the process goes on)."""
        logging.getLogger("distributed.worker").removeFilter(self.quiet)


class WeightsPlugin(WorkerPlugin):
    """A renderer's weights, handed by a build's driver to every worker of the cluster (the
    scheduler keeps the plugin: workers that join later, e.g. replacements of lost ones, get it
    too) and kept there under their sha256 (:func:`basemap.render.unet.keep_weights`), where
    the tasks of jobs pinned by :func:`pin_weights` find them."""

    idempotent = True  # registered once per scheduler and weights, however many builds

    def __init__(self, data: bytes, sha256: str) -> None:
        self.data = data
        self.sha256 = sha256
        self.name = f"basemap-weights-{sha256[:16]}"

    def setup(self, worker: Worker) -> None:
        """Keep the weights on this machine (checked against their sha256).

        Raises:
            WeightsError: damaged on the way, or no writable place to keep them.
        """
        keep_weights(self.data, self.sha256)


def pin_weights(client: Client, jobs: list[BlockJob]) -> list[BlockJob]:
    """The jobs with their renderer's weights pinned by sha256 (``model_sha256``), the weights
    read once here and handed to every worker (:class:`WeightsPlugin`); unchanged when the
    renderer has no weights. The fingerprints stay the same (they hold that hash either way).

    Raises:
        WeightsError: the weights cannot be read here, or a worker cannot keep them.
    """
    settings = jobs[0].settings if jobs else None
    weights = settings.make_renderer().weights if settings else None
    if weights is None or settings.model_sha256:
        return jobs
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise WeightsError(f"U-Net weights {weights}: {exc.strerror or exc}") from None
    sha256 = hashlib.sha256(data).hexdigest()
    _register(client, WeightsPlugin(data, sha256))
    return [replace(j, settings=replace(j.settings, model_sha256=sha256)) for j in jobs]


def _register(client: Client, plugin: WorkerPlugin, tries: int = 3) -> None:
    """Register a worker plugin, asked again when a worker went away while it was sent to it
    (the scheduler keeps the plugin for the workers it has then and those that join)."""
    for attempt in range(tries):
        try:
            client.register_plugin(plugin)
            return
        except OSError as exc:  # CommClosedError included: a worker lost mid-broadcast
            if attempt == tries - 1:
                raise
            log.warning("registering %s again: %s", plugin.name, exc)
            time.sleep(1.0)


@contextmanager
def dask_client(
    workers: int | None = None, scheduler: str | None = None, want_gpu: bool = False
) -> Iterator:
    """A distributed Client for the build, closed (with its LocalCluster) on exit.

    Args:
        workers: LocalCluster worker processes (default: CPU count); 0 = one thread in-process.
        scheduler: address of an existing scheduler (overrides ``$BASEMAP_SCHEDULER``).
        want_gpu: give local workers a ``GPU`` resource when this machine has CUDA.
    """
    address = config.scheduler_address(scheduler)
    cluster = None
    dlog = logging.getLogger("distributed")
    level = dlog.level
    if not log.isEnabledFor(logging.INFO):  # Dask's INFO chatter only with -v
        dlog.setLevel(logging.WARNING)
    if address:
        client = Client(address, timeout="30s")
    else:
        n = (os.cpu_count() or 1) if workers is None else workers
        resources = {"GPU": 1} if want_gpu and default_device() != "cpu" else None
        with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                              "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                              "distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(
                n_workers=max(n, 1), threads_per_worker=1, processes=n > 0,
                dashboard_address=":0", resources=resources, silence_logs=logging.ERROR,
                memory_limit=config.worker_memory(),
            )
        client = Client(cluster)
    try:
        _register(client, WorkerSetup(config.gdal_env(), verbose=log.isEnabledFor(logging.INFO)))
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        dlog.setLevel(level)


def gpu_slots(client: Client) -> tuple[float, int]:
    """(the ``GPU`` resource the cluster's workers advertise in all, their threads in all)."""
    workers = client.scheduler_info().get("workers", {}).values()
    return (sum((w.get("resources") or {}).get("GPU", 0) for w in workers),
            sum(w.get("nthreads", 1) for w in workers))  # fmt: skip


def _key(prefix: str, *args: object) -> str:
    return f"{prefix}-{tokenize(*args)}"


def _finished(job: BlockJob) -> bool:
    """Whether the ledger has the block finished (sizes checked; its task checks hashes and
    builds the block itself, parts and all, when they differ)."""
    return Ledger(job.storage).done(job.block.name, job.fingerprint(), verify=False) \
        is not None


def _record(result: BlockResult) -> BlockResult:
    """Task: a block result without its pixels (what the client keeps)."""
    return replace(result, rgba=None)


@dataclass
class Submitted:
    """A build's graph on the cluster (:func:`submit_graph`), waited for by :func:`collect`."""

    jobs: list[BlockJob]  # the renderer's weights pinned (:func:`pin_weights`)
    records: dict[Future, BlockJob]  # a record future per block
    pyramid: dict[Future, int]  # a pyramid tile's "written" future: its zoom


def submit_graph(client: Client, jobs: list[BlockJob], out: TileOutput,
                 zmin: int) -> Submitted:
    """Submit one block task per job (their weights pinned first) and the pyramid tasks above
    the blocks' root tiles; returns at once (the graph runs on the cluster)."""
    if not jobs:
        return Submitted([], {}, {})
    jobs = pin_weights(client, jobs)
    settings = jobs[0].settings
    gpus, threads = gpu_slots(client)
    wants_gpu = settings.make_renderer().wants_gpu
    annotate = {"resources": {"GPU": 1}} if wants_gpu and gpus else {}
    todo = [j for j in jobs if not _finished(j)]
    windows, needs = window_owners(todo)
    if annotate and gpus < threads:  # threads without a GPU composite, the GPU's run the network
        parts = [client.submit(infer_part, job, ws,
                               client.submit(composite_part, job, ws, pure=True,
                                             key=_key("composite", job, ws)),
                               key=_key("part", job, ws), pure=True, priority=1, **annotate)
                 for job, ws in zip(todo, windows, strict=True)]  # fmt: skip
    else:  # one task per part, where its composite is made (a GPU for every thread, or none)
        parts = [client.submit(render_part, job, ws, key=_key("part", job, ws), pure=True,
                               **annotate)
                 for job, ws in zip(todo, windows, strict=True)]  # fmt: skip
    deps = {id(job): [parts[i] for i in need] for job, need in zip(todo, needs, strict=True)}
    level, records = {}, {}
    for job in jobs:
        # run_block: build_block from the parts, skipped when the ledger has the block (resume,
        # exactly once); ahead of the parts not started yet, so parts are freed as they go
        fut = client.submit(run_block, job, *deps.get(id(job), ()), key=_key("block", job),
                            pure=True, priority=1)  # fmt: skip
        level[(job.block.bx, job.block.by)] = fut
        records[client.submit(_record, fut, key=_key("record", job), pure=True)] = job
    written = {}

    def parent(z: int, px: int, py: int, kids: tuple[Future | None, ...]) -> Future:
        fut = client.submit(
            pyramid_tile, z, px, py, kids, out,
            key=_key(f"tile-{z}-{px}-{py}", tuple(k.key if k else None for k in kids), out),
            pure=True,
        )
        written[client.submit(_is_some, fut, key=_key("written", fut.key), pure=True)] = z
        return fut

    # The pyramid above the blocks' root tiles, from child tiles across blocks.
    reduce_levels(level, jobs[0].block.root[0], zmin, parent)
    return Submitted(jobs, records, written)


def run_graph(client: Client, jobs: list[BlockJob], out: TileOutput, zmin: int,
              progress: Progress = SILENT) -> tuple[list[BlockResult], dict[int, int], int]:
    """Submit the block tasks and the pyramid above them (:func:`submit_graph`); wait, with
    progress bars (:func:`collect`).

    Args:
        client: a distributed Client.
        jobs: the :class:`basemap.pipeline.plan.BlockJob` values, one per block.
        out: the :class:`basemap.output.tiles.TileOutput`.
        zmin: the lowest zoom to build.
        progress: where the blocks and pyramid tiles done are reported.
    """
    return collect(submit_graph(client, jobs, out, zmin), progress)


def collect(graph: Submitted, progress: Progress = SILENT
            ) -> tuple[list[BlockResult], dict[int, int], int]:
    """Wait for a submitted graph.

    Returns:
        (block results in job order (failed ones included), {zoom: pyramid tiles written},
        number of pyramid tiles not built because a child failed).
    """
    if not graph.jobs:
        return [], {}, 0
    results = {}
    bar = progress.stage("blocks", len(graph.records), "block")
    for fut in as_completed(list(graph.records)):
        job = graph.records[fut]
        if fut.status == "error":
            exc = fut.exception()
            _stop_if_disk_full(exc)
            log.error("block %s failed: %s", job.block.name, exc)
            message = f"{type(exc).__name__}: {exc}"
            results[job.block] = BlockResult(job.block, "failed", message=message)
        else:
            results[job.block] = fut.result()
        bar.advance()
    bar.close()

    written: dict[int, int] = {}
    missing = 0
    if graph.pyramid:
        bar = progress.stage("pyramid tiles", len(graph.pyramid), "tile")
        for fut in as_completed(list(graph.pyramid)):
            z = graph.pyramid[fut]
            if fut.status == "error":
                _stop_if_disk_full(fut.exception())
                missing += 1
            else:
                written[z] = written.get(z, 0) + fut.result()
            bar.advance()
        bar.close()
    return [results[j.block] for j in graph.jobs], written, missing


def _stop_if_disk_full(exc: BaseException) -> None:
    """A full disk fails every block after it: raise (docs/reliability.md, row 18); closing the
    client on the way out (:func:`dask_client`) drops the other tasks. (Cancelling them first
    trips an assertion in the scheduler, logged with tracebacks.)"""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise exc


def _is_some(value: np.ndarray | None) -> int:
    """Task: 1 when a pyramid tile was written (its pixels stay on the worker)."""
    return int(value is not None)
