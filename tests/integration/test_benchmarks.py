"""Smoke runs of benchmarks/ (tiny sizes, seconds each) so the scripts don't rot, and the
equivalence of the fast CPU inference path (ONNX Runtime) with the torch reference.

These assert that the scripts run and produce well-formed numbers, never speed: speed goals live
in BENCHMARKS.md, measured by the scripts themselves.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def run_script(name: str, *args: str, tmp_path: Path, timeout: int = 120) -> dict:
    """Run benchmarks/<name> with --json and return its result."""
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, str(BENCH / name), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    for key in ("date", "command", "machine"):
        assert key in result
    assert result["machine"]["cores"] >= 1
    return result


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_model_throughput_smoke(tmp_path):
    r = run_script("model_throughput.py", "--window", "64", "--overlap", "16", "--batch", "2",
                   "--variants", "eager,fold_cl,ort", "--rounds", "1", "--repeat", "1",
                   "--peak-n", "128", "--peak-repeat", "1", "--region", "96", "--device", "cpu",
                   tmp_path=tmp_path)
    assert r["flops_per_pixel"] > 1e4  # the default U-Net: ~79 kFLOP per pixel
    assert positive(r["peak_gflop_s"]["float32"])
    names = {(v["variant"], v["batch"]) for v in r["variants"]}
    assert names == {(n, 2) for n in ("eager", "fold_cl", "ort")}
    for v in r["variants"]:
        assert positive(v["input_mpx_s"]) and positive(v["fraction_of_fp32_peak"])
        # same outputs whatever the variant (fp32): tiny float differences only
        assert v["max_abs_diff_8bit"] < 0.05, v
    assert positive(r["blended"]["output_mpx_s"]) and r["blended"]["windows"] > 0
    assert r["overlap_cost"] == pytest.approx((64 / 48) ** 2, rel=1e-3)


@pytest.mark.parametrize("tone_prior", [False, True])
def test_onnx_runtime_path_matches_torch_and_is_batch_invariant(tmp_path, tone_prior):
    """The CPU fast path gives the torch reference's colours (within 0.01 of an 8-bit unit,
    float rounding) and the same bytes for a window whatever batch it runs in (so builds stay
    partition-invariant), with and without the tone prior."""
    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig

    from basemap.render.inference import LoadedModel, onnx_session, prepare_net

    torch.manual_seed(0)
    net = ResUNet(UNetConfig(base=8, levels=3, tone_prior=tone_prior)).eval()
    torch.nn.init.normal_(net.head.weight, std=0.1)  # a correction on top of the prior
    net = prepare_net(net, "cpu")
    norm = Normalization()
    session = onnx_session(net, norm, 1)
    assert session is not None, "onnxruntime and onnx are dependencies (pyproject.toml)"
    fast = LoadedModel("t", "", "cpu", net, norm, session=session)
    ref = LoadedModel("t", "", "cpu", net, norm)
    x = np.random.default_rng(0).uniform(0, 1.2, (3, 3, 64, 64)).astype(np.float32)
    a, b = fast.predict(x), ref.predict(x)
    assert a.shape == b.shape == (3, 3, 64, 64)
    assert np.abs(a - b).max() < 0.01
    one = np.concatenate([fast.predict(x[i : i + 1]) for i in range(3)])
    np.testing.assert_array_equal(one, a)


def test_onnx_export_is_cached_per_weights_and_gives_the_same_session(tmp_path, monkeypatch):
    """The export is written to BASEMAP_CACHE under a key of the weights, read back by the next
    session (same outputs, byte for byte), a new file for other weights; none when it is empty."""
    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig

    from basemap.render.inference import onnx_session, prepare_net

    monkeypatch.setenv("BASEMAP_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = prepare_net(ResUNet(UNetConfig(base=8, levels=3, tone_prior=False)).eval(), "cpu")
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
    first = onnx_session(net, Normalization(), 1, "a" * 64).run(["y"], {"x": x})[0]
    files = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns  # unchanged below: read, not exported again
    again = onnx_session(net, Normalization(), 1, "a" * 64).run(["y"], {"x": x})[0]
    np.testing.assert_array_equal(first, again)
    assert files[0].stat().st_mtime_ns == mtime
    files[0].write_bytes(b"not onnx")  # a damaged cache file is exported again and replaced
    np.testing.assert_array_equal(
        onnx_session(net, Normalization(), 1, "a" * 64).run(["y"], {"x": x})[0], first)
    assert files[0].read_bytes() != b"not onnx"
    onnx_session(net, Normalization(), 1, "b" * 64)
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2
    monkeypatch.setenv("BASEMAP_CACHE", "")
    onnx_session(net, Normalization(), 1, "c" * 64)
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2


_LOAD_AND_PREDICT = """
import sys
import numpy as np
from basemap.render.inference import load_model
m = load_model(sys.argv[1], device="cpu")
x = np.random.default_rng(2).uniform(0, 0.4, (2, 3, 64, 64)).astype(np.float32)
np.save(sys.argv[2], m.predict(x))
print(m.factor, "torch" in sys.modules)
"""


def test_a_worker_with_the_export_cached_starts_without_torch(tmp_path):
    """With the weights' export (and its factor) in BASEMAP_CACHE, a new process loads the model
    and predicts without importing torch, the same bytes as the process that exported it; a
    damaged entry falls back to the weights."""
    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig
    from basemap.model.weights import save_weights

    torch.manual_seed(0)
    tiny = ResUNet(UNetConfig(base=4, levels=3, tone_prior=False)).eval()
    tiny_weights = save_weights(tmp_path / "tiny.pt", tiny, Normalization())
    env = {**os.environ, "BASEMAP_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}

    def run(name):
        out = subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, str(tiny_weights),
                              str(tmp_path / name)], env=env, capture_output=True, text=True,
                             check=True)  # fmt: skip
        return out.stdout.split(), np.load(tmp_path / name)

    (factor, torch_loaded), first = run("a.npy")
    assert (factor, torch_loaded) == ("4", "True")  # exported: torch was needed
    assert (run("b.npy")[0], run("b.npy")[1].tobytes()) == (["4", "False"], first.tobytes())
    (meta,) = (tmp_path / "cache" / "onnx").glob("*.json")
    meta.write_text("{")
    assert run("c.npy")[0] == ["4", "True"] and run("c.npy")[1].tobytes() == first.tobytes()


def test_tiles_vs_gdal_smoke(tmp_path):
    """`basemap tiles` and gdal2tiles (Debian's gdal-bin, installed by make test) on a tiny COG."""
    r = run_script("tiles_vs_gdal.py", "--size", "256", "--zoom", "0-12", "--rounds", "1",
                   "--processes", "1", tmp_path=tmp_path)
    assert positive(r["basemap_s"]) and r["basemap_tiles"] >= 10 and r["basemap_empty_tiles"] == 0
    assert positive(r["basemap_bytes"])
    assert r["gdal2tiles_s"] is not None, "no gdal2tiles.py: run scripts/install-system-deps.sh"
    assert positive(r["speedup"])
    assert r["same_visible_tile_set"], (r["only_basemap"], r["only_gdal2tiles"])


def test_pipeline_smoke(tmp_path, synth_world):
    """Overhead and memory parts on the test world, in-process builds (--workers 0)."""
    r = run_script("pipeline.py", "--preset", "test", "--catalog", str(synth_world),
                   "--zoom", "13-14", "--window", "64", "--overlap", "16", "--block-size", "256",
                   "--workers", "0", "--skip", "scaling", "--work", str(tmp_path / "work"),
                   tmp_path=tmp_path, timeout=300)
    large = r["large"]
    assert positive(large["build_s"]) and positive(large["model_only_s"])
    assert large["windows_touching_each_block_summed"] >= large["windows_global"] > 0
    assert positive(large["overhead"]) and large["megapixels"] > 0
    mem = r["memory"]
    assert mem["peak_rss_large_mib"] > 50 and positive(mem["ratio"])
    assert r["bbox_large"][2] - r["bbox_large"][0] == pytest.approx(
        4 * (r["bbox_small"][2] - r["bbox_small"][0]))


def test_worker_time_smoke(tmp_path, synth_world):
    """A real one-worker LocalCluster build, its task stream summed by kind."""
    r = run_script("worker_time.py", "--preset", "test", "--catalog", str(synth_world),
                   "--zoom", "13-14", "--window", "64", "--overlap", "16", "--block-size", "256",
                   "--workers", "1", "--work", str(tmp_path / "work"), tmp_path=tmp_path,
                   timeout=300)
    (run,) = r["runs"]
    assert run["workers"] == 1 and positive(run["build_s"])
    assert positive(run["seconds"]["compute:part"]) and positive(run["seconds"]["compute:block"])
    assert "transfer" not in run["seconds"]  # one worker: nothing moves between workers
    assert 0 < run["busy_share"] <= 1
    assert len(run["per_worker"]) == 1


def test_overlap_seams_smoke(tmp_path):
    """Seam excess per overlap on one small uint16 scene with a tiny random model."""
    import rasterio
    import torch
    from basemap.model.unet import Normalization, ResUNet, UNetConfig
    from basemap.model.weights import save_weights

    torch.manual_seed(0)
    net = ResUNet(UNetConfig(base=8, levels=3, tone_prior=False)).eval()
    weights = save_weights(tmp_path / "w.pt", net, Normalization())
    rng = np.random.default_rng(0)
    paths = []
    for band in "rgb":
        path = tmp_path / f"{band}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=320, height=320, count=1,
                           dtype="uint16") as ds:
            ds.write(rng.integers(300, 3000, (1, 320, 320)).astype("uint16"))
        paths.append(str(path))
    r = run_script("overlap_seams.py", "--weights", str(weights), "--window", "64",
                   "--overlaps", "0,16", "--bands", ",".join(paths), tmp_path=tmp_path)
    assert [row["overlap"] for row in r["rows"]] == [0, 16]
    for row in r["rows"]:
        assert positive(row["cost"]) and positive(row["s_per_mpx"])
        assert positive(row["excess_max"])


def test_network_benchmark_smoke(tmp_path):
    """Local and HTTP builds through the slow range server: same tiles, reads reported."""
    r = run_script("network.py", "--preset", "test", "--renderer", "linear", "--latency-ms", "5",
                   "--mbps", "200", "--work", str(tmp_path / "work"), tmp_path=tmp_path,
                   timeout=300)
    assert r["tiles"] > 0 and r["tile_mismatches"] == []
    assert positive(r["local_s"]) and positive(r["http_s"]) and positive(r["http_over_local"])
    assert r["server"]["requests"] > 0 and r["server"]["bytes"] > 0
    reads = [b for b in r["blocks"] if b["requests"] is not None]
    # the blocks' reads are what the server sent, but for the driver's preflight open
    assert reads and 0.9 * r["server"]["bytes"] <= sum(b["bytes"] for b in reads) \
        <= r["server"]["bytes"]
    assert all(b["tile_bytes"] > 0 for b in reads)


def test_block_memory_benchmark_smoke(tmp_path):
    """One block from catalogs of 2 and 40 overlapping items: at most 32 composited."""
    r = run_script("block_memory.py", "--preset", "test", "--items", "2,40", "--block-size", "256",
                   "--work", str(tmp_path / "work"), tmp_path=tmp_path, timeout=300)
    small, large = r["rows"]
    assert (small["items"], large["items"]) == (2, 40)
    assert small["scenes_per_block"] == 2 and large["scenes_per_block"] == 32
    assert positive(small["peak_rss_gb"]) and positive(large["peak_over_first"])


def test_world_utilisation_benchmark_smoke(tmp_path):
    """A world run of the test world's shards, one worker: wall, busy time from the task stream
    and the idle time around and between shards add up."""
    r = run_script("world_utilisation.py", "--preset", "test", "--block-size", "512",
                   "--shard-size", "1", "--workers", "1", "--work", str(tmp_path / "work"),
                   tmp_path=tmp_path, timeout=300)
    assert r["shards"] >= 2
    (row,) = r["rows"]
    assert row["workers"] == 1 and positive(row["wall_s"]) and positive(row["busy_s"])
    assert row["busy_pct"] == pytest.approx(100 * row["busy_s"] / row["wall_s"], rel=0.05)
    assert (row["busy_s"] + row["idle_start_s"] + row["idle_between_s"] + row["idle_end_s"]
            == pytest.approx(row["wall_s"], abs=0.5))


def test_precision_benchmark_smoke(tmp_path):
    from basemap.render.precision import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 (AVX-512 BF16 or AMX): the benchmark compares nothing")
    r = run_script("precision.py", "--rounds", "1", "--repeat", "1", "--region", "128",
                   "--scenes", "2", tmp_path=tmp_path)
    assert [row["precision"] for row in r["speed"]] == ["fp32", "bf16"]
    assert all(positive(row["blended_mpx_s"]) and positive(row["network_vs_fp32"])
               for row in r["speed"])
    (acc,) = r["accuracy"]
    assert acc["scenes"] == 2 and 0 <= acc["mean_abs_levels"] <= acc["max_abs_levels"] <= 255
