"""Reduced-precision inference (issue 34): the choice per device, bf16 within 2 DN of fp32 on
real held-out pixels, and outputs that do not depend on the batch or the threads."""

from __future__ import annotations

import numpy as np
import pytest
from basemap.model.training.corpus import heldout_scenes

from basemap.errors import ConfigError
from basemap.render import precision as prec
from basemap.render.inference import load_model, onnx_session

needs_bf16 = pytest.mark.skipif(not prec.cpu_has_bf16(),
                                reason="this CPU has no bf16 (AVX-512 BF16 or AMX)")


def test_auto_takes_what_the_device_has(monkeypatch):
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: True)
    assert prec.resolve("auto", "cpu") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: False)
    assert prec.resolve("auto", "cpu") == "fp32"
    assert prec.resolve("fp32", "cpu") == "fp32"
    monkeypatch.setattr(prec, "_cuda_has_bf16", lambda device: True)
    assert prec.resolve("auto", "cuda:0") == "bf16"
    monkeypatch.setattr(prec, "_cuda_has_bf16", lambda device: False)
    assert prec.resolve("auto", "cuda:0") == "fp16"
    assert prec.resolve("fp16", "cuda") == "fp16"


@pytest.mark.parametrize(("requested", "device", "says"), [
    ("int8", "cpu", "not offered"), ("fp64", "cpu", "choose one of"),
    ("fp16", "cpu", "GPU only"), ("bf16", "cpu", "neither AVX-512 BF16 nor AMX"),
    ("bf16", "cuda", "before Ampere"),
])
def test_what_a_device_cannot_run_is_refused_saying_what_can(monkeypatch, requested, device,
                                                              says):
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(prec, "_cuda_has_bf16", lambda device: False)
    with pytest.raises(ConfigError, match=says):
        prec.resolve(requested, device)


def test_the_environment_variable_is_read_and_checked_with_the_settings(monkeypatch):
    from basemap import config
    from basemap.pipeline.plan import BuildSettings

    monkeypatch.setenv(config.PRECISION_ENV, " BF16 ")
    assert config.precision() == "bf16"
    monkeypatch.setenv(config.PRECISION_ENV, "")
    assert config.precision() == "auto"
    with pytest.raises(ConfigError, match="int8 is not offered"):
        BuildSettings(precision="int8").validated()


def _real_inputs() -> list[np.ndarray]:
    """Held-out real scenes (desert, snow, pasture, forest, port), cropped to multiples of 16."""
    wanted = ("29RKH", "S2B_MSIL2A_20180204T94161_57_38", "S2A_MSIL2A_20170617T113321_36_85",
              "S2B_MSIL2A_20170924T93020_69_24", "optical_cube_20231022_L2A_RGB_10m")
    out = []
    for scene in (s for s in heldout_scenes() if s.name in wanted):
        refl, valid, *_ = scene.read()
        h, w = (min(512, d // 16 * 16) for d in valid.shape)
        out.append(np.ascontiguousarray(refl[None, :, :h, :w]))
    assert len(out) == len(wanted)
    return out


@needs_bf16
def test_bf16_is_within_2_levels_of_fp32_on_real_held_out_scenes():
    fp32, bf16 = load_model(precision="fp32"), load_model(precision="bf16")
    assert isinstance(bf16.session, prec.OpenVinoSession)
    diffs = [np.abs(np.rint(fp32.predict(x)) - np.rint(bf16.predict(x))) for x in _real_inputs()]
    worst = max(float(d.max()) for d in diffs)
    mean = float(np.concatenate([d.ravel() for d in diffs]).mean())
    assert worst <= 2.0 and mean <= 0.3, (worst, mean)
    assert worst > 0, "bf16 gave fp32's outputs exactly: the reduced precision did not run"


@needs_bf16
def test_a_bf16_window_does_not_depend_on_its_batch_nor_the_threads(monkeypatch):
    from basemap import config

    model = load_model(precision="bf16")
    x = np.random.default_rng(3).uniform(0, 0.5, (3, 3, 256, 256)).astype(np.float32)
    alone = [model.predict(x[i : i + 1]) for i in range(3)]
    together = model.predict(x)
    for i in range(3):
        np.testing.assert_array_equal(together[i : i + 1], alone[i])
    monkeypatch.setenv(config.CPU_BACKEND_ENV, "torch")  # the network itself, for a new session
    torch_model = load_model(precision="fp32")
    for threads in (1, 2):
        session = onnx_session(torch_model.net, torch_model.normalization, threads, "", "bf16")
        np.testing.assert_array_equal(session.run(["y"], {"x": x[:1]})[0], alone[0])


def test_the_torch_autocast_path_of_gpus_runs_reduced_on_cpu(monkeypatch):
    """The GPU code path (torch autocast in LoadedModel.predict), on the CPU: bf16 engaged,
    within 2 levels of fp32, and each window independent of its batch."""
    from basemap import config

    monkeypatch.setenv(config.CPU_BACKEND_ENV, "torch")
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: True)
    fp32, bf16 = load_model(precision="fp32"), load_model(precision="bf16")
    assert bf16.session is None and bf16.precision == "bf16"
    x = _real_inputs()[0][:, :, :256, :256]
    a, b = np.rint(fp32.predict(x)), np.rint(bf16.predict(x))
    assert 0 < np.abs(a - b).max() <= 2
    batch = np.concatenate([x, x[:, :, ::-1, :].copy()])
    np.testing.assert_array_equal(bf16.predict(batch)[:1], bf16.predict(x))


def test_blocks_asked_for_in_another_precision_are_rebuilt_and_auto_resumes_any():
    """The ledger keys a block by its inputs: an explicit precision is one of them; ``auto`` is
    not (its blocks may be any precision), so outputs begun before the choice existed resume."""
    import json
    from pathlib import Path

    from basemap.grid import Block
    from basemap.output.storage import LocalStorage
    from basemap.pipeline.plan import BlockJob, BuildSettings
    from basemap.stac.scene import Scene

    doc = json.loads((Path(__file__).parents[1] / "data" / "ledger_fingerprint.json").read_text())
    settings = {k: v for k, v in doc["settings"].items() if k != "precision"}

    def fingerprint(precision: str) -> str:
        return BlockJob(Block(*doc["block"]), tuple(Scene.from_dict(s) for s in doc["scenes"]),
                        BuildSettings(**settings, precision=precision),
                        LocalStorage("/nonexistent")).fingerprint()

    assert fingerprint("auto") == doc["fingerprint"]
    assert len({fingerprint("auto"), fingerprint("fp32"), fingerprint("bf16")}) == 3


@needs_bf16
def test_an_unreadable_export_fails_when_the_bf16_session_is_made(tmp_path, monkeypatch):
    """A damaged ONNX cache entry must fail where the loader catches it (and exports again),
    not at the first window."""
    from basemap import config
    from basemap.render.export import export_path
    from basemap.render.inference import _cached_model, weights_sha256

    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path))
    with pytest.raises(Exception):  # noqa: B017 (OpenVINO's parse error has no public type)
        prec.OpenVinoSession(b"not an onnx graph", 1)
    weights = config.weights_path(None)
    cached = export_path(weights_sha256(weights))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not an onnx graph")
    cached.with_suffix(".json").write_text('{"factor": 16}')
    assert _cached_model(weights, weights_sha256(weights), "bf16") is None
