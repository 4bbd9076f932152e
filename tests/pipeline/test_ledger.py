"""basemap.pipeline.ledger: fingerprints, entries, intact-output checks, the frozen manifest and the
cleanup of temporary files."""

import json

import numpy as np

from basemap.output.ownership import MARKER, marker_bytes
from basemap.output.storage import LocalStorage
from basemap.pipeline.ledger import (
    BlockRecord,
    Ledger,
    RecordingStorage,
    clean_temp_files,
    decode_rgba,
    encode_rgba,
    fingerprint,
    freeze_manifest,
    sha256,
)
from basemap.render.inference import weights_sha256


def test_fingerprint_is_order_free_and_settings_sensitive():
    a = fingerprint([("x", "1"), ("y", None)], {"renderer": "linear"})
    assert a == fingerprint([("y", None), ("x", "1")], {"renderer": "linear"})
    assert a != fingerprint([("x", "2"), ("y", None)], {"renderer": "linear"})
    assert a != fingerprint([("x", "1"), ("y", None)], {"renderer": "unet"})


def test_rgba_roundtrip_is_lossless():
    rgba = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
    assert (decode_rgba(encode_rgba(rgba)) == rgba).all()


def test_done_only_with_the_same_inputs_and_intact_outputs(tmp_path):
    storage = LocalStorage(str(tmp_path))
    recording = RecordingStorage(storage)
    recording.write_bytes("tiles/14/1/2.png", b"tile")
    rec = BlockRecord("11/0/0", "fp", "ok", recording.outputs(), ("item",))
    ledger = Ledger(storage)
    ledger.record(rec, None)
    assert BlockRecord.from_json(rec.to_json()) == rec
    assert ledger.done("11/0/0", "fp") == rec
    assert ledger.done("11/0/0", "other") is None  # inputs changed
    (tmp_path / "tiles/14/1/2.png").write_bytes(b"tilf")  # same size, other bytes
    assert ledger.done("11/0/0", "fp", verify=False) == rec
    assert ledger.done("11/0/0", "fp") is None
    ledger.forget("11/0/0")
    assert ledger.read("11/0/0") is None


def test_file_sha256_follows_the_file(tmp_path):
    path = tmp_path / "w.pt"
    assert weights_sha256(path) is None
    path.write_bytes(b"one")
    assert weights_sha256(path) == sha256(b"one")
    path.write_bytes(b"three")
    assert weights_sha256(path) == sha256(b"three")


def test_the_first_search_is_frozen(tmp_path, mini_world):
    from basemap.stac.search import search
    from basemap.types import BBox

    storage = LocalStorage(str(tmp_path))
    scenes = search(str(mini_world), BBox(-180, -90, 180, 90))
    args = {"stac": "s", "bbox": [0, 0, 1, 1]}
    assert freeze_manifest(storage, scenes, args) == scenes
    assert freeze_manifest(storage, scenes[:1], args) == scenes  # reruns keep the first list
    (frozen,) = (tmp_path / "ledger" / "manifests").iterdir()
    assert json.loads(frozen.read_text())["search"] == args


def test_cleanup_removes_only_the_tools_temp_names_and_only_in_its_own_output(tmp_path):
    """Row 1: a folder that is not a basemap output is never cleaned; in one, only the storage's
    own temporary names (.name.XXXXXXXX.tmp) and its scratch folder .tmp/ go."""
    ours = {".tile.png.k3j_9x2q.tmp", "cogs/.2947.tif.abcd1234.tmp", ".tmp/tmpab12cd34.tif"}
    theirs = {"draft.tmp", "notes/.mine.tmp", "cogs/.x.toolongname.tmp", "build.json"}
    for name in ours | theirs:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    storage = LocalStorage(str(tmp_path))
    assert clean_temp_files(storage) == 0  # not a basemap output (no marker): untouched
    assert all((tmp_path / name).exists() for name in ours | theirs)
    storage.write_bytes(MARKER, marker_bytes())
    assert clean_temp_files(storage) == len(ours)
    left = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert left == theirs | {MARKER} and not (tmp_path / ".tmp").exists()
