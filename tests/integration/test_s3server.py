"""The S3 test server itself: signed writes, conditional create, anonymous read by policy."""

import pytest


def test_s3_server_roundtrip_and_create_only(s3_server):
    fs = s3_server.filesystem()
    key = f"{s3_server.bucket}/selftest/hello.txt"
    fs.pipe(key, b"hello", ContentType="text/plain")
    assert fs.cat(key) == b"hello"
    assert fs.info(key)["ContentType"] == "text/plain"
    # If-None-Match: * is what the S3 lease relies on: a second create must fail.
    fs.pipe(f"{s3_server.bucket}/selftest/once", b"1", IfNoneMatch="*")
    with pytest.raises(OSError):
        fs.pipe(f"{s3_server.bucket}/selftest/once", b"2", IfNoneMatch="*")
    assert fs.cat(f"{s3_server.bucket}/selftest/once") == b"1"


def test_s3_server_wrong_credentials_are_refused(s3_server):
    import s3fs

    fs = s3fs.S3FileSystem(key="nobody", secret="wrong", skip_instance_cache=True,
                           client_kwargs={"endpoint_url": s3_server.endpoint})
    with pytest.raises(PermissionError):
        fs.ls(s3_server.bucket, refresh=True)
