"""basemap.ledger: fingerprints, entries, intact-output checks and the frozen manifest."""

import json

import numpy as np

from basemap.ledger import (
    BlockRecord,
    Ledger,
    RecordingStorage,
    decode_rgba,
    encode_rgba,
    file_sha256,
    fingerprint,
    freeze_manifest,
    sha256,
)
from basemap.output.storage import LocalStorage


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
    assert file_sha256(path) is None
    path.write_bytes(b"one")
    assert file_sha256(path) == sha256(b"one")
    path.write_bytes(b"three")
    assert file_sha256(path) == sha256(b"three")


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
