"""S3-compatible output (``--out s3://bucket/prefix``), a :class:`basemap.output.storage.Storage`.

Every object is published by ONE PUT of its complete bytes (S3 makes an object visible only when
its upload completes, so a crash never leaves half an object under a final key), with the content
type a web client needs. Create-only writes (`If-None-Match: *`) back the run lease.

Endpoint and credentials come from the usual environment variables, read by botocore in each
process (so Dask workers use their own): AWS_ENDPOINT_URL (for MinIO, SeaweedFS, ...),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION, or a profile. They are
never logged, and never part of the pickled storage object.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from basemap import config
from basemap.errors import ConfigError, PreconditionFailed
from basemap.output.media import media_type


@lru_cache(maxsize=4)
def _filesystem(endpoint: str | None):
    """One s3fs filesystem per process and endpoint (botocore reads the credentials)."""
    import s3fs

    kwargs = {"endpoint_url": endpoint} if endpoint else {}
    region = config.s3_region()
    if region:
        kwargs["region_name"] = region
    return s3fs.S3FileSystem(client_kwargs=kwargs, skip_instance_cache=True,
                             use_listings_cache=False)


@dataclass(frozen=True)
class S3Storage:
    """``s3://bucket/prefix``; frozen and picklable (holds no client and no credentials)."""

    bucket: str
    prefix: str = ""

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
    def fs(self):
        """This process's s3fs filesystem (endpoint from AWS_ENDPOINT_URL, if set)."""
        return _filesystem(config.s3_endpoint())

    def _full(self, key: str) -> str:
        return f"{self.bucket}/{self.prefix}/{key}" if self.prefix else f"{self.bucket}/{key}"

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
            if "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower():
                raise PreconditionFailed(self.url(key)) from exc
            raise

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Publish a finished local file under ``key`` (one PUT; multipart only past 50 MB)."""
        self.write_bytes(key, Path(local_path).read_bytes())

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        try:
            self.fs.rm_file(self._full(key))
        except FileNotFoundError:
            pass

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
        """A local folder for temporary files (objects are uploaded from there)."""
        path = Path(tempfile.gettempdir(), "basemap-scratch")
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def clean_scratch(self) -> None:
        """Nothing to do: the local scratch folder is shared by every S3 output of the machine."""

    def check_writable(self) -> None:
        """Preflight before any compute: probe a PUT and a DELETE under the prefix.

        Raises:
            ConfigError: bucket missing, credentials refused, or endpoint unreachable.
        """
        probe = ".probe"
        try:
            self.write_bytes(probe, b"")
            self.delete(probe)
        except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all mean "unusable"
            reason = _reason(exc)
            raise ConfigError(
                f"--out {self.root} is not writable ({reason}); check that the bucket exists, "
                "the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile) may write "
                "to it, and AWS_ENDPOINT_URL points at the S3 server"
            ) from exc


def _reason(exc: Exception) -> str:
    """A short reason for an S3 failure, without request ids or credentials."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{name}: {text}"[:200]
