"""Where outputs go: one interface (:class:`Storage`) over a local folder or an s3:// bucket
(:mod:`basemap.output.s3`).

Keys are relative, "/"-separated paths such as ``tiles/14/8465/5859.webp``. Every write is
atomic: the bytes go to a temporary name in the same folder, then one rename publishes them, so a
reader (or a crash) never sees half a file under a final name.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from basemap.errors import ConfigError
from basemap.output.s3 import S3Storage

#: Folder (inside the output) for files being written before they are published.
SCRATCH = ".tmp"


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

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""

    def scratch_dir(self) -> str:
        """A local folder for temporary files."""

    def clean_scratch(self) -> None:
        """Remove the scratch folder when it is empty (nothing to do on S3)."""

    def check_writable(self) -> None:
        """Preflight: ConfigError (exit 2) when the output cannot be written."""


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
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Publish a finished local file under ``key``; the file is moved (renamed) there.

        Files from :meth:`scratch_dir` are on the same filesystem, so this is one rename; others
        are copied to a temporary name beside the target first.
        """
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local_path, target)
            return
        except OSError:  # another filesystem: copy, then rename
            pass
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as dst, open(local_path, "rb") as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        Path(local_path).unlink()

    def create_only(self, key: str, data: bytes) -> None:
        """Publish ``data`` only if ``key`` does not exist (O_EXCL): FileExistsError otherwise.

        Used by the run lease (basemap.lease.Lease); S3Storage does the same with If-None-Match.
        """
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        self.path(key).unlink(missing_ok=True)

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
        """Preflight: create the folder and probe a write.

        Raises:
            ConfigError: the folder cannot be created or written.
        """
        try:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.write_bytes(".probe", b"")
            self.path(".probe").unlink()
        except OSError as exc:
            raise ConfigError(
                f"output folder {self.root} is not writable ({exc.strerror}); "
                "choose another --out or fix its permissions"
            ) from exc


def open_storage(out: str | os.PathLike) -> Storage:
    """The storage for an ``--out`` value.

    Raises:
        ConfigError: an unsupported scheme (local folders and s3:// are supported).
    """
    text = str(out)
    if text.startswith("s3://"):
        return S3Storage.from_url(text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"--out {text}: {scheme}:// outputs are not supported yet; give a local folder"
        )
    return LocalStorage(os.path.abspath(text))
