"""A real cluster (issue 32): `dask scheduler` and `basemap worker` processes sharing no path
with the driver (tests/support/cluster.py: each worker in its own empty working directory, with
its own HOME, so its own BASEMAP_CACHE, and TMPDIR), the output in a real S3 server, the catalog
a real STAC API with its COGs on an HTTP Range server (`served_world`).

- `basemap world run --scheduler` of a plan of six one-block shards (linear renderer) survives
  a worker SIGKILLed (nanny and worker process: a machine lost) while it runs a task once some
  blocks are done, with a replacement worker joining: exit 0, and the tiles, COGs and ledger
  entries are the bytes of a local run of the same plan (the lost task run again elsewhere).
- The same world run on a cluster that scales 1 -> 3 -> 1 workers while it runs (two join, then
  are retired gracefully, as an adaptive cluster scales down): the same bytes.
- `basemap build --scheduler --renderer unet --model model.pt`, a path relative to the driver's
  working directory (where the workers have ANOTHER model.pt): the driver pins the weights by
  sha256 and hands them to every worker, which keeps them in its own cache; the output equals a
  local build with the same model, and the ledger's fingerprints too.
- Without processes: the pinned fingerprint, a worker finding weights by their hash (and saying
  what it lacks), and a worker lacking a GDAL driver or running another basemap version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from basemap import __version__, config
from basemap.cli import cli
from basemap.errors import ConfigError, WeightsError
from basemap.grid import Block
from basemap.output.s3 import S3Storage
from basemap.output.storage import LocalStorage
from basemap.pipeline import graph
from basemap.pipeline.plan import BlockJob, BuildSettings
from basemap.render.inference import weights_sha256
from basemap.render.unet import find_weights, keep_weights, kept_weights
from basemap.world.plan import Plan
from tests.support.cli_runner import EVERY_ITEM
from tests.support.cluster import Cluster, basemap_command, start

#: What the cluster and the local runs build (the tests' usual small build).
RUN = ["--renderer", "linear", "--tile-format", "png", "--feather", "32", "--quiet", *EVERY_ITEM]
#: A box inside the one block 13/4232/2946 (512-px blocks at z14) of the test world.
ONE_BLOCK = "5.99,45.0,6.01,45.005"
#: What a run publishes that depends on its pixels and inputs.
COMPARED = ("tiles/", "cogs/", "ledger/blocks/", "ledger/shards/")


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix().startswith(COMPARED)}


def s3_files(url: str) -> dict[str, bytes]:
    storage = S3Storage.from_url(url)
    return {k: storage.read_bytes(k) for k in storage.list("") if k.startswith(COMPARED)}


def differences(got: dict[str, bytes], expected: dict[str, bytes]) -> list[str]:
    keys = sorted(set(got) | set(expected))
    return [k for k in keys if got.get(k) != expected.get(k)]


@pytest.fixture
def cluster(tmp_path, s3_server):
    """A scheduler and two workers (one thread each) given the S3 server's variables, as
    worker machines would be; every process killed at the end."""
    with Cluster(tmp_path / "cluster", env=s3_server.env) as c:
        c.add_worker("w1")
        c.add_worker("w2")
        c.wait_for_workers({"w1", "w2"})
        yield c


def gone(process: psutil.Process) -> bool:
    """Whether a process is dead (a zombie not reaped yet included)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait(member, timeout: float) -> int:
    """The exit code of a process of ours, killed if it takes over ``timeout`` seconds."""
    try:
        return member.proc.wait(timeout=timeout)
    except Exception:
        member.kill()
        raise


# ---- a worker lost during a world run ----------------------------------------------------------


@pytest.fixture(scope="module")
def local_world(served_world, tmp_path_factory):
    """A plan of six (or more) one-block shards of the test world, and the files of its world
    run on a local cluster: (plan path, {key: bytes}), what the cluster runs must equal."""
    from basemap.synth.tiles import world_bbox

    folder = tmp_path_factory.mktemp("local-world")
    plan = folder / "plan.json"
    r = CliRunner().invoke(cli, ["plan", "--bbox", str(world_bbox("test")), "--shard-size", "1",
                                 "--block-size", "512", "--out", str(plan)])
    assert r.exit_code == 0, r.output
    assert len(Plan.read(plan).shards) >= 4
    local = folder / "local"
    r = CliRunner().invoke(cli, ["world", "run", str(plan), "--out", str(local), "--stac",
                                 served_world.stac_api_url, "--workers", "0", *RUN])
    assert r.exit_code == 0, r.output
    return plan, local_files(local)


def start_world_run(plan: Path, folder: Path, out: str, served_world, cluster):
    """`basemap world run PLAN --scheduler` as a driver process of its own."""
    return start("driver", folder, [basemap_command(), "world", "run", str(plan), "--out", out,
                                    "--stac", served_world.stac_api_url, "--scheduler",
                                    cluster.address, *RUN], dict(os.environ))


@pytest.mark.slow
def test_world_run_on_a_cluster_losing_a_worker_equals_a_local_run(cluster, served_world,
                                                                  s3_out, tmp_path,
                                                                  local_world):
    plan, expected = local_world
    run = start_world_run(plan, tmp_path / "driver", s3_out, served_world, cluster)
    storage = S3Storage.from_url(s3_out)
    victim, held = None, []
    try:
        deadline = time.monotonic() + 150
        while run.alive() and victim is None and time.monotonic() < deadline:
            busy = {n: keys for n, keys in cluster.processing().items()
                    if keys and n in ("w1", "w2")}
            if busy and storage.list("ledger/blocks/"):  # some blocks done, a task running
                victim = sorted(busy)[0]
                held = busy[victim]
                cluster.kill_worker(victim)
                cluster.add_worker("w3")
            else:
                time.sleep(0.2)
        code = wait(run, 150)
    finally:
        run.kill()
    logs = run.log() + "\n" + cluster.logs()
    assert victim is not None, "the run ended before a worker could be lost\n" + logs
    assert code == 0, logs
    assert not cluster.workers[victim].alive()
    assert all(map(gone, cluster.workers[victim].children))
    got = s3_files(s3_out)
    assert got.keys() >= {k for k in expected if k.startswith("tiles/")} and len(got) > 10
    assert not differences(got, expected), (differences(got, expected)[:10], held, logs)
    cluster.wait_for_workers({"w1", "w2", "w3"} - {victim})  # the replacement joined
    assert victim not in cluster.worker_names().values()
    for worker in cluster.workers.values():  # nothing written where a worker was started
        assert not list(worker.cwd.iterdir()), worker.name


# ---- workers that come and go (an adaptive cluster) ------------------------------------------


def until(condition, timeout: float) -> None:
    """Wait (polling) until ``condition()`` is true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow
def test_world_run_on_a_cluster_scaled_1_3_1_equals_a_local_run(served_world, s3_server, s3_out,
                                                                tmp_path, local_world):
    """One worker; two more join once it runs a task; once one of them has run a task both
    are retired (gracefully: what they hold moves to the first, as an adaptive cluster scales
    down) while the run goes on: exit 0, the bytes of the local run. The COGs are served slowly
    (200 ms a request), so the run lasts through the scaling."""
    plan, expected = local_world
    with Cluster(tmp_path / "cluster", env=s3_server.env) as cluster:
        cluster.add_worker("w1")
        cluster.wait_for_workers({"w1"})
        t0 = time.time()
        cluster.client.get_task_stream(start=t0)  # the scheduler records the tasks from now on

        def ran_on(addresses: set[str]) -> bool:
            return any(t["worker"] in addresses for t in cluster.client.get_task_stream(start=t0))

        served_world.range_server.latency = 0.2
        run = start_world_run(plan, tmp_path / "driver", s3_out, served_world, cluster)
        scaled = []
        try:
            until(lambda: cluster.processing().get("w1") or not run.alive(), 120)
            scaled.append(run.alive())  # 1 -> 3, once the first worker runs a task
            cluster.add_worker("w2"), cluster.add_worker("w3")
            cluster.wait_for_workers({"w1", "w2", "w3"})
            added = {a for a, n in cluster.worker_names().items() if n in ("w2", "w3")}
            until(lambda: ran_on(added) or not run.alive(), 120)
            scaled.append(run.alive())  # 3 -> 1
            cluster.client.retire_workers(workers=sorted(added), close_workers=True)
            retired = time.time()
            code = wait(run, 150)
        finally:
            served_world.range_server.latency = 0.0
            run.kill()
        logs = run.log() + "\n" + cluster.logs()
        assert scaled == [True, True], "the run ended before the cluster was scaled\n" + logs
        assert code == 0, logs
        assert set(cluster.worker_names().values()) == {"w1"}
        until(lambda: not (cluster.workers["w2"].alive() or cluster.workers["w3"].alive()), 30)
        assert not cluster.workers["w2"].alive() and not cluster.workers["w3"].alive(), logs
        stream = cluster.client.get_task_stream(start=t0)
        assert not [t["key"] for t in stream if t["worker"] in added
                    and min(s["start"] for s in t["startstops"]) > retired + 1]
        got = s3_files(s3_out)
        assert not differences(got, expected), (differences(got, expected)[:10], logs)


# ---- U-Net weights only the driver has ---------------------------------------------------------


def tiny_weights(path: Path) -> Path:
    """A small U-Net (not the shipped one: its hash is not the default's), saved to ``path``."""
    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig
    from basemap.model.weights import save_weights

    torch.manual_seed(0)
    net = ResUNet(UNetConfig(base=4, levels=3, tone_prior=False))
    return save_weights(path, net.eval(), Normalization())


@pytest.mark.slow
def test_unet_weights_that_only_the_driver_has_reach_the_workers(cluster, served_world, s3_out,
                                                                 tmp_path):
    driver = tmp_path / "driver"
    (driver / "cwd").mkdir(parents=True)
    sha = hashlib.sha256(tiny_weights(driver / "cwd" / "model.pt").read_bytes()).hexdigest()
    for worker in cluster.workers.values():  # another model at the same (relative) path
        shutil.copy(config.DEFAULT_WEIGHTS, worker.cwd / "model.pt")
    args = [basemap_command(), "build", "--bbox", ONE_BLOCK, "--zoom", "14", "--block-size",
            "512", "--renderer", "unet", "--model", "model.pt", "--tile-format", "png",
            "--stac", served_world.stac_api_url, "--quiet", *EVERY_ITEM]
    local = tmp_path / "local"
    one_thread = dict(os.environ, OMP_NUM_THREADS="1")  # as in a worker
    reference = start("reference", driver, [*args, "--out", str(local), "--workers", "0"],
                      one_thread)
    assert wait(reference, 150) == 0, reference.log()
    expected = local_files(local)
    assert any(k.startswith("ledger/blocks/") for k in expected)

    run = start("driver", driver, [*args, "--out", s3_out, "--scheduler", cluster.address],
                dict(os.environ))
    code = wait(run, 150)
    logs = run.log() + "\n" + cluster.logs()
    assert code == 0, logs
    got = s3_files(s3_out)
    assert not differences(got, expected), (differences(got, expected)[:10], logs)
    record = json.loads(S3Storage.from_url(s3_out).read_bytes("build.json"))
    assert record["model"] == {"path": "model.pt", "sha256": sha}
    for worker in cluster.workers.values():  # handed to each worker, kept in its own cache
        kept = worker.home / ".cache" / "basemap" / "weights" / f"{sha}.pt"
        assert kept.is_file(), worker.name
        assert (worker.cwd / "model.pt").read_bytes() == config.DEFAULT_WEIGHTS.read_bytes()


# ---- what a worker needs, without processes ------------------------------------------------------


def _job(model: str | None, renderer: str = "unet") -> BlockJob:
    return BlockJob(Block(4232, 2946, 512, 14), (), BuildSettings(renderer=renderer, model=model),
                    LocalStorage("/nonexistent"))


def test_pinned_weights_keep_the_block_fingerprint(tmp_path):
    """The driver pins the weights' sha256 in the jobs it sends: the fingerprint is the one of
    the unpinned job, also where the path does not exist (a worker)."""
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"some weights")
    job = _job(str(weights))
    sha = hashlib.sha256(b"some weights").hexdigest()
    pinned = replace(job, settings=replace(job.settings, model_sha256=sha))
    assert pinned.fingerprint() == job.fingerprint()
    elsewhere = replace(pinned, settings=replace(pinned.settings, model=str(tmp_path / "no.pt")))
    assert elsewhere.fingerprint() == job.fingerprint()
    assert _job(str(tmp_path / "no.pt")).fingerprint() != job.fingerprint()  # not pinned
    linear = _job(None, "linear")
    assert replace(linear, settings=replace(linear.settings, model_sha256=sha)).fingerprint() \
        == linear.fingerprint()


def test_a_worker_finds_weights_by_their_hash_or_says_what_it_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / "cache"))
    data = b"the driver's weights"
    sha = hashlib.sha256(data).hexdigest()
    stale = tmp_path / "model.pt"
    stale.write_bytes(b"another model")
    with pytest.raises(WeightsError) as lacking:
        find_weights(str(stale), sha)
    message = str(lacking.value)
    assert sha[:12] in message and f"{stale} has sha256" in message
    assert f"{kept_weights(sha)} missing" in message and config.CACHE_ENV in message

    kept = keep_weights(data, sha)
    assert kept == kept_weights(sha) and kept.read_bytes() == data
    assert find_weights(str(stale), sha) == kept  # a file of another hash is never used
    assert find_weights(str(tmp_path / "missing.pt"), sha) == kept
    named = tmp_path / "same.pt"
    named.write_bytes(data)
    assert find_weights(str(named), sha) == named  # the path itself when it has the hash
    default = weights_sha256(config.DEFAULT_WEIGHTS)
    assert find_weights("/driver/only/default.pt", default) == config.DEFAULT_WEIGHTS

    with pytest.raises(WeightsError, match="damaged on the way"):
        keep_weights(b"truncated", sha)
    (tmp_path / "a-file").write_bytes(b"")
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / "a-file"))
    with pytest.raises(WeightsError, match=f"cannot keep .* set {config.CACHE_ENV}"):
        keep_weights(data, sha)


def test_the_driver_pins_the_weights_and_hands_them_to_its_workers(tmp_path, monkeypatch):
    """pin_weights on a real (in-process) cluster: the jobs carry the hash, the worker kept the
    bytes; a renderer without weights is left alone."""
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / "cache"))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights to hand over")
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    jobs = [_job(str(weights))]
    with graph.dask_client(workers=0) as client:
        pinned = graph.pin_weights(client, jobs)
        assert [j.settings.model_sha256 for j in pinned] == [sha]
        assert kept_weights(sha).read_bytes() == weights.read_bytes()
        linear = [_job(None, "linear")]
        assert graph.pin_weights(client, linear) == linear


def test_a_worker_lacking_something_says_what(monkeypatch):
    """Another basemap version than the driver's, or a GDAL driver missing: the worker's setup
    fails naming it (the driver's client raises it: exit 2); `basemap worker` refuses to start."""
    assert graph.worker_problems(__version__) == []
    assert any("driver runs 0.0.0-other" in p and __version__ in p
               for p in graph.worker_problems("0.0.0-other"))
    monkeypatch.setitem(graph.GDAL_DRIVERS, "NoSuchDriver", "a test's")
    with pytest.raises(ConfigError, match="cannot build: GDAL has no NoSuchDriver driver"):
        graph.WorkerSetup({}).setup(None)
    with pytest.raises(ConfigError, match="NoSuchDriver"), graph.dask_client(workers=0):
        pass  # the driver's client raises what its worker lacks, before any task

    def no_exec(*args):
        raise AssertionError(f"dask worker started: {args}")

    monkeypatch.setattr(os, "execv", no_exec)
    r = CliRunner().invoke(cli, ["worker", "tcp://127.0.0.1:1", "--gpus", "0"])
    assert isinstance(r.exception, ConfigError) and r.exception.exit_code == 2, r.exception
    assert "NoSuchDriver" in str(r.exception)
