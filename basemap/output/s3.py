"""S3-compatible output (``--out s3://bucket/prefix``), a :class:`basemap.output.storage.Storage`.

Every object is published by ONE PUT of its complete bytes (S3 makes an object visible only when
its upload completes, so a crash never leaves half an object under a final key), with the content
type a web client needs. Create-only writes (`If-None-Match: *`) and writes and deletes
conditional on the ETag read (`If-Match`) back the run lease. Files are made, before their upload,
in a local scratch folder of the run's own (unique, mode 0700, removed at the end of the run).

Endpoint and credentials come from the usual environment variables, read by botocore in each
process (so Dask workers use their own): AWS_ENDPOINT_URL (for MinIO, SeaweedFS, ...),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION, or a profile. They are
never logged, and never part of the pickled storage object.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from basemap import config
from basemap.errors import ConfigError, PreconditionFailed
from basemap.output.media import media_type
from basemap.output.ownership import claim

if TYPE_CHECKING:
    from s3fs import S3FileSystem


@lru_cache(maxsize=4)
def _filesystem(endpoint: str | None) -> S3FileSystem:
    """One s3fs filesystem per process and endpoint (botocore reads the credentials)."""
    import s3fs

    kwargs = {"endpoint_url": endpoint} if endpoint else {}
    region = config.s3_region()
    if region:
        kwargs["region_name"] = region
    return s3fs.S3FileSystem(client_kwargs=kwargs, skip_instance_cache=True,
                             use_listings_cache=False)


def _run_scratch() -> str:
    """The name of one run's local scratch folder: made on first use in the temporary folder of
    each machine that writes (the driver, or a worker with its own ``TMPDIR``: see
    S3Storage.scratch_dir)."""
    return f"basemap-scratch-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class S3Storage:
    """``s3://bucket/prefix``; frozen and picklable (holds no client and no credentials).

    ``scratch``, the name of the local scratch folder, is this object's own (each opened output,
    i.e. each run, has another); it travels with the object to the Dask workers, and each
    machine makes the folder in its own temporary folder (no path of the driver's).
    """

    bucket: str
    prefix: str = ""
    scratch: str = field(default_factory=_run_scratch, compare=False, repr=False)

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        """Parse ``s3://bucket[/prefix]``.

        Raises:
            ConfigError: no bucket name.
        """
        rest = url.split("://", 1)[1].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"--out {url}: name a bucket, e.g. s3://my-bucket/basemap")
        return cls(bucket, prefix.strip("/"))

    @property
    def root(self) -> str:
        """The output as a URL."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def fs(self) -> S3FileSystem:
        """This process's s3fs filesystem (endpoint from AWS_ENDPOINT_URL, if set)."""
        return _filesystem(config.s3_endpoint())

    def _key(self, key: str) -> str:
        """The object key of ``key`` (without the bucket)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full(self, key: str) -> str:
        return f"{self.bucket}/{self._key(key)}"

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.storage.S3Storage", self.bucket, self.prefix)  # the same in every run

    def path(self, key: str) -> str:
        """Where ``key`` is, for messages and summaries (the s3:// URL)."""
        return self.url(key)

    def url(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return "s3://" + self._full(key)

    def size(self, key: str) -> int | None:
        """Size in bytes of a published key, None when absent."""
        try:
            return int(self.fs.info(self._full(key))["size"])
        except FileNotFoundError:
            return None

    def read_bytes(self, key: str) -> bytes:
        """The bytes of a published key (FileNotFoundError when absent)."""
        return self.fs.cat_file(self._full(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish ``data`` under ``key`` with one PUT and its content type."""
        self.fs.pipe_file(self._full(key), data, ContentType=media_type(key))

    def create_only(self, key: str, data: bytes) -> None:
        """Publish ``data`` only if ``key`` does not exist yet (conditional PUT).

        Raises:
            PreconditionFailed: the key exists (another writer won).
        """
        try:
            self.fs.pipe_file(self._full(key), data, mode="create",
                              ContentType=media_type(key))
        except OSError as exc:
            if _precondition_failed(exc):
                raise PreconditionFailed(self.url(key)) from exc
            raise

    def write_if(self, key: str, data: bytes, expected: bytes) -> bool:
        """Replace ``key`` only if it still holds ``expected``: a PUT with ``If-Match`` the ETag
        of the ``expected`` version read; True when this call replaced it."""
        etag = self._etag_if(key, expected)
        if etag is None:
            return False
        return self._conditional("put_object", key, IfMatch=etag, Body=data,
                                 ContentType=media_type(key))

    def delete_if(self, key: str, expected: bytes) -> bool:
        """Remove ``key`` only if it still holds ``expected``: a DELETE with ``If-Match`` the
        ETag of the ``expected`` version read; True when this call removed it."""
        etag = self._etag_if(key, expected)
        return etag is not None and self._conditional("delete_object", key, IfMatch=etag)

    def _etag_if(self, key: str, expected: bytes) -> str | None:
        """The ETag of ``key`` when it holds ``expected`` (one GET), else None."""
        from fsspec.asyn import sync

        try:
            data, etag = sync(self.fs.loop, _get_with_etag, self.fs, self.bucket, self._key(key))
        except FileNotFoundError:
            return None
        return etag if data == expected else None

    def _conditional(self, method: str, key: str, **kwargs: str | bytes) -> bool:
        """A conditional request: False when its condition failed (another writer won)."""
        try:
            self.fs.call_s3(method, Bucket=self.bucket, Key=self._key(key), **kwargs)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        return True

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Publish a finished local file under ``key`` (one PUT; multipart only past 50 MB)."""
        self.write_bytes(key, Path(local_path).read_bytes())

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        try:
            self.fs.rm_file(self._full(key))
        except FileNotFoundError:
            pass

    def has(self, folder: str) -> bool:
        """Whether any object lies under ``folder`` ("": anywhere under the output's prefix)."""
        prefix = "/".join(p for p in (self.prefix, folder.strip("/")) if p)
        found = self.fs.call_s3("list_objects_v2", Bucket=self.bucket,
                                Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
        return bool(found.get("KeyCount") or found.get("Contents"))

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (relative to the storage root), sorted."""
        base = self._full(prefix).rstrip("/")
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self._full(""))
        return sorted(p[start:] for p in found)

    def scratch_dir(self) -> str:
        """This run's local folder for temporary files (objects are uploaded from there), in
        this machine's temporary folder (a worker on another machine uses its own): made mode
        0700 on first use in each process, and refused unless it is this user's own.

        Raises:
            ConfigError: the path exists and is not a folder of this user's, mode 0700.
        """
        path = os.path.join(tempfile.gettempdir(), self.scratch)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
        if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()
                or stat.S_IMODE(st.st_mode) != 0o700):
            raise ConfigError(f"scratch folder {path} exists and is not this user's own "
                              "(a folder of mode 0700): refusing to use it")
        return path

    def clean_scratch(self) -> None:
        """Remove this run's local scratch folder on this machine (at the end of the run)."""
        shutil.rmtree(os.path.join(tempfile.gettempdir(), self.scratch), ignore_errors=True)

    def check_writable(self) -> None:
        """Preflight before any compute: make sure the prefix is this tool's and mark it
        (:func:`basemap.output.ownership.claim`: the marker's PUT is the write probe), then probe
        a DELETE.

        Raises:
            ConfigError: bucket missing, credentials refused, endpoint unreachable, or the prefix
                is not this tool's.
        """
        try:
            claim(self)
            self.delete(".probe")
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all mean "unusable"
            reason = _reason(exc)
            raise ConfigError(
                f"--out {self.root} is not writable ({reason}); check that the bucket exists, "
                "the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile) may write "
                "to it, and AWS_ENDPOINT_URL points at the S3 server"
            ) from exc


async def _get_with_etag(fs: S3FileSystem, bucket: str, key: str) -> tuple[bytes, str]:
    """(bytes, ETag) of one version of an object, read with one GET (FileNotFoundError when
    absent)."""
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    try:
        return await resp["Body"].read(), resp["ETag"]
    finally:
        resp["Body"].close()


def _precondition_failed(exc: Exception) -> bool:
    """Whether an S3 error says a condition (If-Match, If-None-Match) did not hold (412), or a
    concurrent conditional write won (409 ConditionalRequestConflict)."""
    text = str(exc).lower()
    return any(s in text for s in ("pre-condition", "precondition", "conditionalrequestconflict"))


def _reason(exc: Exception) -> str:
    """A short reason for an S3 failure, without request ids or credentials."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{name}: {text}"[:200]
