"""Where outputs go: one interface (:class:`Storage`) over a local folder or an s3:// bucket
(:mod:`basemap.output.s3`).

Keys are relative, "/"-separated paths such as ``tiles/14/8465/5859.webp``. Every write is
atomic: the bytes go to a temporary name in the same folder, then one rename publishes them, so a
reader (or a crash) never sees half a file under a final name. Files get the modes the umask
gives (``0666 & ~umask``), folders too (``0777 & ~umask``), as any tool's would.

Before a command writes, :meth:`Storage.check_writable` makes sure the output is this tool's
(:mod:`basemap.output.ownership`).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from basemap.errors import ConfigError
from basemap.output.ownership import claim
from basemap.output.s3 import S3Storage

#: Folder (inside the output) for files being written before they are published.
SCRATCH = ".tmp"
#: The names of the temporary files :class:`LocalStorage` publishes from (``.{name}.XXXXXXXX.tmp``,
#: mkstemp's 8 random characters): the only files a cleanup removes outside :data:`SCRATCH`.
TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


class Storage(Protocol):
    """What the pipeline needs from an output (frozen and picklable: it crosses Dask)."""

    @property
    def root(self) -> str:
        """The output, as given (folder path or s3:// URL)."""

    def path(self, key: str) -> Path | str:
        """Where ``key`` is, for messages and summaries."""

    def size(self, key: str) -> int | None:
        """Size in bytes of a published key, None when absent."""

    def read_bytes(self, key: str) -> bytes:
        """The bytes of a published key (FileNotFoundError when absent)."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish ``data`` under ``key`` atomically."""

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Publish a finished local file (from :meth:`scratch_dir`) under ``key``."""

    def create_only(self, key: str, data: bytes) -> None:
        """Publish only if ``key`` does not exist: FileExistsError otherwise (the run lease)."""

    def write_if(self, key: str, data: bytes, expected: bytes) -> bool:
        """Replace ``key`` only if it still holds ``expected``, atomically (of several callers
        with the same ``expected``, one wins); True when this call replaced it."""

    def delete_if(self, key: str, expected: bytes) -> bool:
        """Remove ``key`` only if it still holds ``expected``, atomically (one caller wins);
        True when this call removed it."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""

    def has(self, folder: str) -> bool:
        """Whether anything is stored under ``folder`` ("": anywhere in the output)."""

    def scratch_dir(self) -> str:
        """A local folder for temporary files."""

    def clean_scratch(self) -> None:
        """Remove the scratch folder (local: when it is empty; S3: this run's, at its end)."""

    def check_writable(self) -> None:
        """Preflight: ConfigError (exit 2) when the output cannot be written or is not this
        tool's (:func:`basemap.output.ownership.claim`, which marks it)."""


@functools.cache
def file_mode() -> int:
    """The mode of new files, ``0666 & ~umask`` (read without changing the umask, which other
    threads may be using, where /proc tells it)."""
    try:
        with open("/proc/self/status") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@dataclass(frozen=True)
class LocalStorage:
    """A local output folder; frozen and picklable so it can be sent to Dask workers."""

    root: str

    def path(self, key: str) -> Path:
        """The local path of ``key``."""
        return Path(self.root, *key.split("/"))

    def size(self, key: str) -> int | None:
        """Size in bytes of a published key, None when absent."""
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def read_bytes(self, key: str) -> bytes:
        """The bytes of a published key."""
        return self.path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish ``data`` under ``key`` atomically (temp file + rename)."""
        target = self.path(key)
        _replace(_temp_file(target, lambda fh: fh.write(data)), target)

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Publish a finished local file under ``key``; the file is moved (renamed) there.

        Files from :meth:`scratch_dir` are on the same filesystem, so this is one rename; others
        are copied to a temporary name beside the target first.
        """
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(local_path, file_mode())  # made by mkstemp: 0600
            os.replace(local_path, target)
            return
        except OSError:  # another filesystem: copy, then rename
            pass
        with open(local_path, "rb") as src:
            tmp = _temp_file(target, lambda dst: shutil.copyfileobj(src, dst, 1 << 20))
        _replace(tmp, target)
        Path(local_path).unlink()

    def create_only(self, key: str, data: bytes) -> None:
        """Publish ``data`` only if ``key`` does not exist: FileExistsError otherwise.

        The bytes go to a unique temporary file, then a hard link publishes them (atomic, and
        refused when ``key`` exists), so ``key`` is never seen empty or half-written. Used by the
        run lease (basemap.pipeline.lease.Lease); S3Storage does the same with If-None-Match.
        """
        target = self.path(key)
        tmp = _temp_file(target, lambda fh: fh.write(data))
        try:
            os.link(tmp, target)
        finally:
            os.unlink(tmp)

    def write_if(self, key: str, data: bytes, expected: bytes) -> bool:
        """Replace ``key`` only if it still holds ``expected`` (compared and replaced under an
        exclusive lock of the key); True when this call replaced it."""
        with self._locked(key) as target:
            if _read_or_none(target) != expected:
                return False
            self.write_bytes(key, data)
            return True

    def delete_if(self, key: str, expected: bytes) -> bool:
        """Remove ``key`` only if it still holds ``expected`` (compared and removed under an
        exclusive lock of the key); True when this call removed it."""
        with self._locked(key) as target:
            if _read_or_none(target) != expected:
                return False
            target.unlink()
            return True

    @contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        """An exclusive flock of ``.{name}.lock`` beside ``key``: the conditional updates of the
        key, one at a time (across threads and processes; released when its holder dies)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target.with_name(f".{target.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield target
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        self.path(key).unlink(missing_ok=True)

    def has(self, folder: str) -> bool:
        """Whether anything is stored under ``folder`` ("": anywhere in the output folder)."""
        path = self.path(folder) if folder else Path(self.root)
        try:
            return any(path.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return False

    def scratch_dir(self) -> str:
        """A folder for temporary files inside the output (same filesystem: cheap renames)."""
        path = Path(self.root, SCRATCH)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def clean_scratch(self) -> None:
        """Remove the scratch folder when it is empty (a crash may leave files to inspect)."""
        try:
            Path(self.root, SCRATCH).rmdir()
        except OSError:
            pass

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.storage.LocalStorage", self.root)

    def check_writable(self) -> None:
        """Preflight: create the folder, make sure it is this tool's and mark it
        (:func:`basemap.output.ownership.claim`: the marker's write is the write probe).

        Raises:
            ConfigError: the folder cannot be created or written, or is not this tool's.
        """
        try:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            claim(self)
        except OSError as exc:
            raise ConfigError(
                f"output folder {self.root} is not writable ({exc.strerror}); "
                "choose another --out or fix its permissions"
            ) from exc


def open_storage(out: str | os.PathLike) -> Storage:
    """The storage for an ``--out`` value.

    Raises:
        ConfigError: an empty value, or an unsupported scheme (local folders and s3:// are
            supported).
    """
    text = os.fspath(out)
    if not text.strip():
        raise ConfigError("--out is empty (an unset variable?): give the output folder or "
                          "s3://bucket/prefix")
    if text.startswith("s3://"):
        return S3Storage.from_url(text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"--out {text}: {scheme}:// outputs are not supported yet; give a local folder"
        )
    return LocalStorage(os.path.abspath(text))


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _temp_file(target: Path, write: Callable[[BinaryIO], object]) -> str:
    """A temporary file beside ``target`` (the tool's temporary name, the umask's mode) holding
    what ``write`` wrote to it; removed again when writing fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _replace(tmp: str, target: Path) -> None:
    """Publish the finished ``tmp`` as ``target`` (a rename); ``tmp`` removed if that fails."""
    try:
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
