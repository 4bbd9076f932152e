"""basemap.output.storage: the Storage protocol, local folders and the choice of backend.

S3 (a real SeaweedFS server): tests/integration/test_s3_output.py.
"""

import inspect

import pytest

from basemap.errors import ConfigError
from basemap.output.s3 import S3Storage
from basemap.output.storage import LocalStorage, Storage, open_storage

METHODS = [n for n, v in vars(Storage).items() if callable(v) and not n.startswith("_")]


@pytest.mark.parametrize("storage", [LocalStorage("/x"), S3Storage("bucket", "p")])
def test_both_backends_implement_the_protocol(storage):
    assert isinstance(storage.root, str)
    cls = type(storage)
    for name in METHODS:
        assert callable(getattr(cls, name, None)), f"{cls.__name__} lacks {name}"
        want = list(inspect.signature(getattr(Storage, name)).parameters)
        assert list(inspect.signature(getattr(cls, name)).parameters) == want, name


def test_local_writes_are_atomic_and_create_only_refuses(tmp_path):
    storage = LocalStorage(str(tmp_path / "out"))
    storage.check_writable()
    storage.write_bytes("a/b.json", b"{}")
    assert storage.read_bytes("a/b.json") == b"{}" and storage.size("a/b.json") == 2
    assert storage.size("nope") is None
    scratch = tmp_path / "out" / ".tmp"
    assert storage.scratch_dir() == str(scratch)
    (scratch / "f.tif").write_bytes(b"tif")
    storage.put_file("cogs/f.tif", scratch / "f.tif")
    assert storage.read_bytes("cogs/f.tif") == b"tif" and not (scratch / "f.tif").exists()
    storage.clean_scratch()
    assert not scratch.exists()
    storage.create_only("lease.json", b"1")
    with pytest.raises(FileExistsError):
        storage.create_only("lease.json", b"2")
    storage.delete("lease.json")
    storage.delete("lease.json")  # absent: no error
    assert not list(tmp_path.rglob("*.tmp"))


def test_open_storage_picks_the_backend(tmp_path):
    assert open_storage(tmp_path) == LocalStorage(str(tmp_path))
    assert open_storage("s3://bucket/pre/fix/") == S3Storage("bucket", "pre/fix")
    with pytest.raises(ConfigError, match="not supported"):
        open_storage("gs://bucket")
    with pytest.raises(ConfigError, match="name a bucket"):
        open_storage("s3://")
