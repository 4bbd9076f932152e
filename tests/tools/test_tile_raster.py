"""`basemap tiles`: XYZ tiles from an 8-bit raster with the build's pyramid code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image

from basemap.cli import cli
from basemap.grid import TILE_SIZE, region_transform, tile_region
from basemap.output.tiles import assemble, reduce2x

Z = 14
TX, TY = 8484, 5880  # a z14 tile near 45 N, 6 E; the source covers 2 x 2 tiles from it


def _source(path, dtype="uint8", nodata_corner=True):
    """An RGB GeoTIFF in EPSG:3857 exactly on the z14 grid (2 x 2 tiles), with a nodata corner."""
    rng = np.random.default_rng(0)
    n = 2 * TILE_SIZE
    img = rng.integers(1, 256, (3, n, n)).astype(dtype)
    if nodata_corner:
        img[:, :100, :100] = 0
    profile = {"driver": "GTiff", "width": n, "height": n, "count": 3, "dtype": dtype,
               "crs": "EPSG:3857", "transform": region_transform(tile_region(TX, TY, Z, Z), Z),
               "nodata": 0}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(img)
    return img


def _read(out, z, x, y):
    with Image.open(out / "tiles" / str(z) / str(x) / f"{y}.png") as im:
        return np.moveaxis(np.asarray(im.convert("RGBA")), -1, 0)


def test_tiles_are_the_source_pixels_and_the_pyramid_is_exact(tmp_path):
    img = _source(tmp_path / "src.tif")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["tiles", str(tmp_path / "src.tif"), str(out), "--zoom",
                                      "10-14", "--workers", "0", "--resampling", "nearest", "-q"])
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(out / "tiles").as_posix() for p in out.rglob("*.png"))
    expected = [f"{Z}/{TX + i}/{TY + j}.png" for i in (0, 1) for j in (0, 1)]
    expected += [f"{z}/{TX >> (Z - z)}/{TY >> (Z - z)}.png" for z in range(10, Z)]
    assert files == sorted(expected)
    z14 = {}
    for j in (0, 1):
        for i in (0, 1):
            tile = _read(out, Z, TX + i, TY + j)
            src = img[:, j * 256 : (j + 1) * 256, i * 256 : (i + 1) * 256]
            alpha = (src != 0).any(axis=0)
            # nearest on the exact grid: every pixel is the source pixel; nodata is alpha 0
            np.testing.assert_array_equal(tile[3], np.where(alpha, 255, 0))
            np.testing.assert_array_equal(tile[:3][:, alpha], src[:, alpha])
            z14[(i, j)] = tile
    # z13 is the build's exact alpha-aware reduction of its four children (invariant 6)
    want = reduce2x(assemble((z14[(0, 0)], z14[(1, 0)], z14[(0, 1)], z14[(1, 1)])))
    np.testing.assert_array_equal(_read(out, Z - 1, TX // 2, TY // 2), want)
    tj = json.loads((out / "tilejson.json").read_text())
    assert (tj["minzoom"], tj["maxzoom"]) == (10, 14) and tj["tiles"][0].endswith(".png")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_same_tiles_whatever_the_workers_and_block_size(tmp_path, workers):
    _source(tmp_path / "src.tif")
    ref, out = tmp_path / "ref", tmp_path / "out"
    for dest, extra in ((ref, ["--workers", "0", "--block-size", "2048"]),
                        (out, ["--workers", workers, "--block-size", "256"])):
        r = CliRunner().invoke(cli, ["tiles", str(tmp_path / "src.tif"), str(dest), "--zoom",
                                     "8-14", "-q", *extra])
        assert r.exit_code == 0, r.output
    a = {p.relative_to(ref).as_posix(): p.read_bytes() for p in ref.rglob("*.png")}
    b = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}
    assert a == b and len(a) == 4 + 6


def test_rejects_a_16_bit_raster_with_exit_2(tmp_path):
    _source(tmp_path / "src.tif", dtype="uint16")
    r = CliRunner().invoke(cli, ["tiles", str(tmp_path / "src.tif"), str(tmp_path / "o")])
    assert r.exit_code == 2 or "8-bit" in str(r.exception)
    assert "8-bit" in (r.output + str(r.exception))


# ---- issue 13: any readable raster of any size -> tiles, or exit 2 -------------------------------


def test_tiles_of_a_non_raster_exit_2(tmp_path, monkeypatch, capsys):
    from tests.support.cli_runner import run_cli

    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, out, err = run_cli(["tiles", str(text), str(tmp_path / "out"), "-q"], monkeypatch,
                             capsys)
    assert code == 2 and "Traceback" not in out + err and str(text) in err


def test_tiles_of_any_size(tmp_path_factory):
    """Property: a plain (strip) RGB GeoTIFF of any size, 1 px wide or tall included."""
    from affine import Affine
    from hypothesis import given, settings
    from hypothesis import strategies as st

    sizes = st.one_of(st.integers(1, 20), st.sampled_from([131, 257, 512, 856]))

    @settings(max_examples=8, deadline=None, database=None)
    @given(height=sizes, width=sizes)
    def check(height, width):
        d = tmp_path_factory.mktemp("t")
        data = np.random.default_rng(height + width).integers(1, 256, (3, height, width))
        with rasterio.open(d / "src.tif", "w", driver="GTiff", width=width, height=height,
                           count=3, dtype="uint8", crs="EPSG:32632", tiled=False,
                           transform=Affine(10, 0, 300000, 0, -10, 5000000)) as ds:
            ds.write(data.astype(np.uint8))
        result = CliRunner().invoke(cli, ["tiles", str(d / "src.tif"), str(d / "out"),
                                          "--zoom", "12-14", "--workers", "0", "-q"])
        assert result.exit_code == 0, result.output
        doc = json.loads((d / "out" / "tilejson.json").read_text())
        assert doc["maxzoom"] == 14 and list((d / "out" / "tiles").rglob("*.png"))

    check()


def test_each_thread_warps_with_its_own_gdal_handles(tmp_path):
    """GDAL datasets are not thread-safe: a worker thread opens the source once for itself."""
    import threading

    from basemap.tools.tile_raster import TilesJob, _warped

    _source(tmp_path / "src.tif")
    job = TilesJob(str(tmp_path / "src.tif"), Z, Z - 1, "png", "bilinear", str(tmp_path / "o"))
    mine = _warped(job)
    assert _warped(job) is mine  # opened once per thread
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(_warped(job)))
    thread.start()
    thread.join()
    assert theirs[0] is not mine and not mine.closed
