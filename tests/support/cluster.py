"""A real Dask cluster for the tests: `dask scheduler` and `basemap worker` subprocesses.

Each process gets a folder of its own under the cluster's root: an empty working directory
(``cwd/``), its own ``HOME`` (so its own ``~/.cache/basemap``: ``BASEMAP_CACHE`` is unset for
it) and ``TMPDIR``, and a log. A worker shares no path with the driver of a build: what it needs
must reach it through the scheduler, the output store (S3) or the network (the catalog).

Every process is started in a session of its own and killed with its whole process group (the
`dask worker` nanny and the worker process it spawns) by :meth:`Cluster.kill_worker` (a machine
lost) and by :meth:`Cluster.stop` (at the end, also on failure: use the cluster as a context
manager). Processes are found by the ids this module started, never by name.

    with Cluster(tmp_path / "cluster", env=s3_server.env) as cluster:
        cluster.add_worker("w1"), cluster.add_worker("w2")
        cluster.wait_for_workers({"w1", "w2"})
        ... basemap world run PLAN --scheduler cluster.address ...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

#: The scheduler's settings in the container images (docker/Dockerfile.*, workflows/k8s/).
SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "2"}
#: Variables of the test process a cluster process must not inherit: its cache is its HOME's,
#: and the driver's scheduler setting is the driver's.
NOT_INHERITED = ("BASEMAP_CACHE", "BASEMAP_SCHEDULER", "PWD", "OLDPWD")


def basemap_command() -> str:
    """The `basemap` console script of this environment."""
    return str(Path(sys.executable).parent / "basemap")


@dataclass
class Member:
    """A process of the cluster and its own folder (cwd/, home/, tmp/, log)."""

    name: str
    folder: Path
    proc: subprocess.Popen
    children: tuple[psutil.Process, ...] = ()  # its descendants, as last seen

    @property
    def cwd(self) -> Path:
        return self.folder / "cwd"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def log(self, chars: int = 4000) -> str:
        """The end of its output."""
        text = (self.folder / "log").read_text(errors="replace")
        return f"--- {self.name} ---\n{text[-chars:]}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def remember_children(self) -> None:
        """Note the ids of its descendants (the worker process a nanny spawned), to kill them
        even if they outlive it."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        self.children = tuple({p.pid: p for p in (*self.children, *found)}.values())

    def kill(self) -> None:
        """SIGKILL its process group and every descendant seen (by id), and reap it."""
        self.remember_children()
        if self.proc.poll() is None or any(c.is_running() for c in self.children):
            try:  # its group's id is still in use (by it or a child): not another's
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in self.children:  # psutil checks it is still that process (not a reused id)
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=30)


def isolated_env(base: dict[str, str], folder: Path) -> dict[str, str]:
    """``base`` without :data:`NOT_INHERITED`, with HOME and TMPDIR in ``folder``."""
    env = {k: v for k, v in base.items() if k not in NOT_INHERITED}
    return env | {"HOME": str(folder / "home"), "TMPDIR": str(folder / "tmp")}


def start(name: str, folder: Path, args: list[str], env: dict[str, str]) -> Member:
    """Start ``args`` in ``folder``/cwd (empty) with its own HOME and TMPDIR, output to
    ``folder``/log, in a session of its own."""
    for sub in ("cwd", "home", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    with open(folder / "log", "ab") as log:
        proc = subprocess.Popen(args, cwd=folder / "cwd", env=isolated_env(env, folder),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return Member(name, folder, proc)


class Cluster:
    """A `dask scheduler` on 127.0.0.1 (a free port) and `basemap worker` processes.

    Args:
        root: a folder for the processes' own folders.
        env: variables added to the test process's environment for every process (e.g. the
            S3 server's AWS_* variables: what a worker machine would be given).
    """

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.env = {**os.environ, **(env or {})}
        self.scheduler: Member | None = None
        self.workers: dict[str, Member] = {}
        self.address = ""
        self._client = None

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> Cluster:
        """Start the scheduler and wait for its address (from its scheduler file)."""
        folder = self.root / "scheduler"
        info = folder / "scheduler.json"
        self.scheduler = start("scheduler", folder, [
            sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
            "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
            self.env | SCHEDULER_ENV)
        deadline = time.monotonic() + timeout
        while not self.address:
            if not self.scheduler.alive() or time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not start\n" + self.scheduler.log())
            try:
                self.address = json.loads(info.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.1)
        return self

    def add_worker(self, name: str, nthreads: int = 1, memory_limit: str = "2GB",
                   env: dict[str, str] | None = None) -> Member:
        """Start `basemap worker ADDRESS --name NAME` (no GPU) in a folder of its own; it is
        not waited for (:meth:`wait_for_workers`)."""
        if name in self.workers:
            raise ValueError(f"worker {name} exists")
        args = [basemap_command(), "worker", self.address, "--name", name, "--gpus", "0",
                "--nthreads", str(nthreads), "--memory-limit", memory_limit]
        self.workers[name] = start(name, self.root / name, args, self.env | (env or {}))
        return self.workers[name]

    @property
    def client(self):
        """A distributed Client of the test process, to look at the scheduler."""
        if self._client is None:
            from distributed import Client

            self._client = Client(self.address, timeout="30s")
        return self._client

    def worker_names(self) -> dict[str, str]:
        """{worker address: name} of the workers the scheduler has now."""
        return {addr: w.get("name") for addr, w in
                self.client.scheduler_info(n_workers=-1)["workers"].items()}

    def wait_for_workers(self, names: set[str], timeout: float = 90.0) -> None:
        """Wait until the scheduler has the workers ``names``."""
        deadline = time.monotonic() + timeout
        while not names <= set(self.worker_names().values()):
            dead = [w for n, w in self.workers.items() if n in names and not w.alive()]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"workers {sorted(names)} did not all join\n"
                                   + "\n".join(w.log() for w in self.workers.values()))
            time.sleep(0.2)
        for name in names:
            self.workers[name].remember_children()

    def processing(self) -> dict[str, list[str]]:
        """{worker name: keys of the tasks it is running or holds to run now}."""
        names = self.worker_names()
        return {names.get(addr, addr): [str(k) for k in keys]
                for addr, keys in self.client.processing().items()}

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker ``name``: its nanny and its worker process (a machine lost)."""
        self.workers[name].kill()

    def logs(self) -> str:
        """The end of every process's output (for assertion messages)."""
        members = [m for m in (self.scheduler, *self.workers.values()) if m is not None]
        return "\n".join(m.log() for m in members)

    def stop(self) -> None:
        """Close the test's client, then kill every worker and the scheduler."""
        if self._client is not None:
            try:
                self._client.close(timeout=5)
            except Exception:  # noqa: BLE001 - the processes are killed below anyway
                pass
            self._client = None
        for member in [*self.workers.values(), self.scheduler]:
            if member is not None:
                member.kill()
