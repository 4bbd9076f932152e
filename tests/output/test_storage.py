"""basemap.output.storage: the Storage protocol, local folders and the choice of backend; which
outputs are the tool's (basemap.output.ownership).

S3 (a real SeaweedFS server): tests/integration/test_s3_output.py.
"""

import inspect
import stat
import subprocess
import sys

import pytest

from basemap.errors import ConfigError
from basemap.output.ownership import MARKER, marker_bytes, owned
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


# ---- safe by default: an output is the tool's only when it says so (ownership.py) -------------


def test_a_new_or_empty_folder_is_claimed_with_the_marker(tmp_path):
    for out in (tmp_path / "new" / "out", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        storage = LocalStorage(str(out))
        storage.check_writable()
        assert storage.read_bytes(MARKER) == marker_bytes() and owned(storage)
        assert sorted(p.name for p in out.iterdir()) == [MARKER]
        storage.check_writable()  # its own output: fine, again


def test_a_folder_that_is_not_a_basemap_output_is_refused_untouched(tmp_path):
    out = tmp_path / "mine"
    (out / "stac").mkdir(parents=True)
    files = {"build.json": b"my build", "stac/catalog.json": b"{}", "draft.tmp": b"x",
             ".notes.abcd1234.tmp": b"y"}
    for name, data in files.items():
        (out / name).write_bytes(data)
    with pytest.raises(ConfigError, match=f"{out} is not empty and is not a basemap output"):
        LocalStorage(str(out)).check_writable()
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file()} == files


def test_an_output_of_an_earlier_basemap_is_recognized_by_its_ledger(tmp_path):
    out = tmp_path / "old"
    (out / "ledger" / "manifests").mkdir(parents=True)
    (out / "ledger" / "manifests" / "1a4bf7971bf4a7c8.json").write_text("{}")
    (out / "build.json").write_text("{}")
    storage = LocalStorage(str(out))
    assert not owned(storage)
    storage.check_writable()
    assert owned(storage)


def test_a_marker_of_another_format_or_a_newer_version_is_refused(tmp_path):
    storage = LocalStorage(str(tmp_path))
    (tmp_path / MARKER).write_text('{"format": "basemap-output", "version": 99}')
    with pytest.raises(ConfigError, match="newer basemap"):
        storage.check_writable()
    (tmp_path / MARKER).write_text("not json")
    with pytest.raises(ConfigError, match="not a basemap marker"):
        storage.check_writable()


@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_out_is_refused(out):
    with pytest.raises(ConfigError, match="--out is empty"):
        open_storage(out)


def test_conditional_writes_and_deletes_compare_the_bytes(tmp_path):
    storage = LocalStorage(str(tmp_path))
    assert not storage.write_if("k", b"new", b"old") and not storage.delete_if("k", b"old")
    storage.write_bytes("k", b"old")
    assert not storage.write_if("k", b"new", b"other") and storage.read_bytes("k") == b"old"
    assert storage.write_if("k", b"new", b"old") and storage.read_bytes("k") == b"new"
    assert not storage.delete_if("k", b"old") and storage.delete_if("k", b"new")
    assert storage.size("k") is None
    assert not storage.has("k") and storage.has("") and not storage.has("nothing")


def test_files_and_folders_get_the_umask_modes(tmp_path):
    """Row 8: every way a file is published gets 0666 & ~umask (mkstemp alone gives 0600)."""
    script = (
        "import sys, tempfile\n"
        "from basemap.output.storage import LocalStorage\n"
        "s = LocalStorage(sys.argv[1])\n"
        "s.check_writable()\n"
        "s.write_bytes('a/b.json', b'{}')\n"
        "fd, tmp = tempfile.mkstemp(dir=s.scratch_dir())\n"
        "s.put_file('c/d.tif', tmp)\n"
        "s.create_only('e/f.json', b'1')\n"
        "s.write_if('e/f.json', b'2', b'1')\n"
    )
    for umask in (0o022, 0o007):
        out = tmp_path / f"out-{umask:o}"
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, umask=umask)
        modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode)
                 for p in out.rglob("*")}
        assert set(modes) >= {MARKER, "a/b.json", "c/d.tif", "e/f.json"}
        for key, mode in modes.items():
            want = 0o777 & ~umask if (out / key).is_dir() else 0o666 & ~umask
            assert mode == want, (umask, key, oct(mode))
