"""`basemap evaluate`: the measures on known images, then a whole report on a small build."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from basemap.qa.colour import MIN_OVERLAP_PX, colourfulness, cross_scene_delta_e, mean_lightness

BASEMAP = str(Path(sys.executable).with_name("basemap"))


def _flat(rgb, shape=(40, 40)):
    return np.broadcast_to(np.array(rgb, np.uint8)[:, None, None], (3, *shape)).copy()


def test_colourfulness_known_values():
    valid = np.ones((40, 40), bool)
    assert colourfulness(_flat((128, 128, 128)), valid) == pytest.approx(0.0, abs=1e-9)
    # Uniform red: rg = 255, yb = 127.5, no spread -> 0.3 * hypot(255, 127.5) = 85.530.
    assert colourfulness(_flat((255, 0, 0)), valid) == pytest.approx(85.5296, abs=1e-3)
    # Half red, half grey: spread adds the sigma term.
    img = _flat((128, 128, 128))
    img[:, :, :20] = np.array([255, 0, 0], np.uint8)[:, None, None]
    assert colourfulness(img, valid) > 85.5296 / 2
    # Only valid pixels count.
    mask = np.zeros((40, 40), bool)
    mask[:, 20:] = True
    assert colourfulness(img, mask) == pytest.approx(0.0, abs=1e-9)


def test_mean_lightness_known_values():
    valid = np.ones((40, 40), bool)
    assert mean_lightness(_flat((255, 255, 255)), valid) == pytest.approx(100.0, abs=1e-3)
    assert mean_lightness(_flat((0, 0, 0)), valid) == pytest.approx(0.0, abs=1e-6)
    # sRGB 119 grey is L* 50.0 (to 0.3, the 8-bit step).
    assert mean_lightness(_flat((119, 119, 119)), valid) == pytest.approx(50.0, abs=0.3)


def test_cross_scene_delta_e():
    shape = (64, 64)  # 4096 px >= MIN_OVERLAP_PX
    grey, other = _flat((120, 120, 120), shape), _flat((130, 120, 120), shape)
    everywhere = np.ones(shape, bool)
    assert cross_scene_delta_e([(grey, everywhere), (grey, everywhere)]) == (0.0, 1)
    de, pairs = cross_scene_delta_e([(grey, everywhere), (other, everywhere), (grey, everywhere)])
    assert pairs == 3
    # Two of the three pairs differ by the same colour step, one is identical.
    from basemap.colour import ciede2000, srgb_to_lab

    lab = [srgb_to_lab(np.array(c)) for c in ([120, 120, 120], [130, 120, 120])]
    step = float(ciede2000(*lab))
    assert de == pytest.approx(2 * step / 3, rel=1e-9)
    # Overlaps below MIN_OVERLAP_PX are not compared.
    small = np.zeros(shape, bool)
    small.flat[: MIN_OVERLAP_PX - 1] = True
    de, pairs = cross_scene_delta_e([(grey, small), (other, everywhere)])
    assert pairs == 0 and np.isnan(de)


@pytest.fixture(scope="module")
def eval_build(synth_world, tmp_path_factory):
    """A real `basemap build` of the synthetic test world: linear, PNG tiles (lossless), blocks of
    512 px and windows of 256/32 px so that every kind of border crosses a small sample."""
    from basemap.synth.tiles import world_bbox

    out = tmp_path_factory.mktemp("eval") / "out"
    run = subprocess.run(
        [BASEMAP, "build", "--stac", str(synth_world), "--bbox", str(world_bbox("test")),
         "--zoom", "14-14", "--renderer", "linear", "--tile-format", "png", "--block-size", "512",
         "--window", "256", "--overlap", "32", "--feather", "8", "--workers", "0", "--quiet",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return out


def test_evaluate_report(eval_build, tmp_path):
    report = tmp_path / "report"
    run = subprocess.run(
        [BASEMAP, "evaluate", str(eval_build), "--report", str(report), "--size", "512",
         "--against", "sh-l2a-optimized", "--against", "per-tile-stretch"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for name in ("report.json", "index.html", "crops.png", "block_corner.png", "figures.png"):
        assert (report / name).stat().st_size > 0, name
    doc = json.loads((report / "report.json").read_text())
    fig = doc["figures"]
    assert list(fig) == ["tiles (as built)", "linear", "sh-l2a-optimized", "per-tile-stretch"]
    # The build's tiles are lossless PNG of the same composite rendered with `linear`:
    # evaluate's re-render must give the same figures (exactly, up to float summation order).
    for key in ("clipped_pct", "colourfulness", "mean_lightness", "seam_excess_block"):
        assert fig["tiles (as built)"][key] == pytest.approx(fig["linear"][key], rel=1e-9), key
    # Per-tile stretch grades each 512-px tile alone: the paper's patchwork. Its block-border
    # seams must stand out against the pixel-wise renderers' (which have no seams by
    # construction): at least twice theirs.
    assert fig["per-tile-stretch"]["seam_excess_block"] > 2 * fig["linear"]["seam_excess_block"]
    # Linear clips bright ground (0-0.25 -> 0-255); L2A Optimized compresses highlights.
    assert fig["linear"]["clipped_pct"] > fig["sh-l2a-optimized"]["clipped_pct"]
    assert fig["linear"]["cross_scene_pairs"] >= 1
    assert "per-tile-stretch" in (report / "index.html").read_text()
    # The composite: no holes where a scene covers, the filled share and a leak proxy, reported.
    c = doc["composite"]
    assert c["holes_pct"] == 0.0
    assert 0.0 <= c["filled_pct"] <= 100.0 and 0.0 <= c["leak_proxy_pct"] <= 100.0
    assert c["build_filled_fraction"] is not None
    assert "leak proxy" in run.stdout and "holes" in (report / "index.html").read_text()
    # What the reads cost, from build.json: local files, so no request, but tiles and time
    r = doc["reads"]
    record = json.loads((eval_build / "build.json").read_text())
    assert r["blocks"] == len(record["blocks"]) > 0
    assert r["requests"] == r["bytes"] == 0 and r["bytes_over_tile_bytes"] is None
    assert r["tile_bytes"] == sum(b["reads"]["tile_bytes"] for b in record["blocks"]) > 0
    assert r["read_s"] > 0 and r["median_block"]["read_s"] > 0
    assert "reads: " in run.stdout and "Reads: " in (report / "index.html").read_text()


def test_evaluate_errors(tmp_path, eval_build):
    run = subprocess.run([BASEMAP, "evaluate", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2 and "build.json" in run.stderr
    run = subprocess.run([BASEMAP, "evaluate", str(eval_build), "--against", "nope"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "unknown renderer" in run.stderr
    run = subprocess.run([BASEMAP, "evaluate", str(eval_build), "--at", "6.1"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "--at must be LON,LAT" in run.stderr


def test_read_mosaic_places_the_cog_mosaic_on_the_grid(eval_build):
    """The COG mosaic's pixels sit where read_mosaic says: over its region they equal the
    lossless PNG tiles as delivered (a region off by one pixel would not)."""
    from basemap.qa.evaluate import read_build, read_mosaic, read_tiles

    build = read_build(eval_build)
    rgba, region = read_mosaic(build)
    assert region.x0 % 512 == 0 and region.y0 % 512 == 0  # whole blocks
    assert rgba.shape == (4, region.height, region.width)
    rgb, alpha = read_tiles(build, region)
    assert alpha.sum() > 0
    np.testing.assert_array_equal(rgba[3] > 0, alpha)
    np.testing.assert_array_equal(rgba[:3][:, alpha], rgb[:, alpha])
