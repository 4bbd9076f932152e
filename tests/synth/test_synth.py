"""The synthetic Sentinel-2 L2A world: files, STAC shape, offsets, determinism, one ground."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
from rasterio.warp import Resampling, reproject
from rio_cogeo.cogeo import cog_validate

from basemap.stac.radiometry import dn_offset_for
from basemap.synth.ground import Landscape
from basemap.synth.tiles import world_bbox
from basemap.synth.world import make_world

CLEAR = (4, 5, 6, 11)  # SCL classes a compositor keeps (vegetation, not-vegetated, water, snow)


def _items(catalog: Path) -> dict[str, dict]:
    """Item JSON as written (pystac would migrate proj:epsg to proj:code on reading)."""
    cat = pystac.Catalog.from_file(str(catalog))
    out = {}
    for item in cat.get_items(recursive=True):
        path = Path(item.get_self_href())
        out[item.id] = json.loads(path.read_text()) | {"_dir": str(path.parent)}
    return out


def _read(item: dict, key: str) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(Path(item["_dir"]) / item["assets"][key]["href"]) as src:
        return src.read(1), src.transform


def _scl10(item: dict) -> np.ndarray:
    scl, _ = _read(item, "scl")
    return np.kron(scl, np.ones((2, 2), scl.dtype))


def _by(items: dict, zone: int, baseline_new: bool) -> list[dict]:
    return sorted(
        (d for d in items.values() if d["properties"]["mgrs:utm_zone"] == zone
         and (d["properties"]["s2:processing_baseline"] >= "04.00") == baseline_new),
        key=lambda d: d["id"],
    )


def test_catalog_items_in_both_zones(synth_world):
    items = _items(synth_world)
    assert len(items) == 8  # 4 tiles x 2 dates
    assert {d["properties"]["proj:epsg"] for d in items.values()} == {32631, 32632}
    for d in items.values():
        p = d["properties"]
        assert p["grid:code"].startswith(f"MGRS-{p['mgrs:utm_zone']}T")
        assert set(d["assets"]) >= {"red", "green", "blue", "nir", "scl"}
        assert d["assets"]["red"]["href"] == "./B04.tif"  # relative, next to the item
        assert 0 <= p["eo:cloud_cover"] <= 100
        w, s, e, n = d["bbox"]
        assert 5.9 < w < e < 6.1 and 44.9 < s < n < 45.1
    # footprints straddle the zone edge from both sides
    assert any(d["bbox"][2] > 6.0 for d in _by(items, 31, False))
    assert any(d["bbox"][0] < 6.0 for d in _by(items, 32, False))


def test_cogs_valid_uint16_tiled_with_overviews(synth_world):
    item = next(iter(_items(synth_world).values()))
    for key in ("red", "green", "blue", "nir", "scl"):
        path = Path(item["_dir"]) / item["assets"][key]["href"]
        ok, errors, _ = cog_validate(str(path), quiet=True)
        assert ok, errors
        with rasterio.open(path) as src:
            assert src.nodata == 0
            assert src.profile["tiled"]
            assert src.overviews(1), f"{key} has no overviews"
            if key == "scl":
                assert src.dtypes[0] == "uint8" and src.res == (20.0, 20.0)
            else:
                assert src.dtypes[0] == "uint16" and src.res == (10.0, 10.0)


def test_scl_has_real_classes_clouds_shadow_and_swath_edge(synth_world):
    items = _items(synth_world)
    seen = set()
    for d in items.values():
        scl, _ = _read(d, "scl")
        seen |= set(np.unique(scl).tolist())
        red, _ = _read(d, "red")
        nodata = red == 0
        if nodata.any():  # the swath cut: DN 0 in every band where SCL is 0
            for key in ("green", "blue", "nir"):
                assert np.array_equal(_read(d, key)[0] == 0, nodata)
            assert (_scl10(d)[nodata] == 0).all()
            assert d["properties"]["s2:nodata_pixel_percentage"] > 1
    assert seen <= set(range(12))
    assert {0, 3, 4, 5, 6, 8, 9, 10, 11} <= seen, seen
    assert any((_read(d, "red")[0] == 0).any() for d in items.values())


@pytest.mark.parametrize(
    "zone, flag, dn_shift",
    [
        (31, False, 1000),  # ESA's raw pixels: +1000 DN, flag false, the rule subtracts 1000
        (32, True, 0),  # harmonized by Earth Search: flag true, raster:bands still says -0.1
    ],
)
def test_baseline_offset_in_dn(synth_world, zone, flag, dn_shift):
    """Baseline >= 04.00 items in both Earth Search forms; after the offset rule they agree."""
    items = _items(synth_world)
    old, new = _by(items, zone, False)[0], _by(items, zone, True)[0]
    assert old["properties"]["s2:processing_baseline"] < "04.00"
    assert new["properties"]["s2:processing_baseline"] >= "04.00"
    assert new["properties"]["earthsearch:boa_offset_applied"] is flag
    assert old["assets"]["red"]["raster:bands"][0]["offset"] == 0
    assert new["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    assert old["properties"]["grid:code"] == new["properties"]["grid:code"]
    offsets = [
        dn_offset_for(d["properties"], d["assets"]["red"], "sentinel-2-l2a")
        for d in (old, new)
    ]
    assert offsets == [0.0, -float(dn_shift)]
    clear = np.isin(_scl10(old), CLEAR) & np.isin(_scl10(new), CLEAR)
    assert clear.sum() > 10_000
    dn_old = _read(old, "red")[0][clear].astype(float)
    dn_new = _read(new, "red")[0][clear].astype(float)
    # the raw DN differ by about the shift (dates differ by haze and a few % gain)
    assert abs(np.median(dn_new - dn_old) - dn_shift) < 150
    # reflectance after the rule: the dates differ by haze (< 0.007 in red), gain (+-3%, i.e.
    # < 0.012 on ground up to 0.4) and faint cirrus below the SCL threshold: median < 0.02,
    # against 0.1 when the wrong offset is applied
    diff = np.abs((dn_new + offsets[1]) / 1e4 - (dn_old + offsets[0]) / 1e4)
    assert np.median(diff) < 0.02, np.median(diff)
    wrong = -1000.0 - offsets[1]  # the other reading of the metadata
    assert np.median(np.abs((dn_new + wrong) / 1e4 - dn_old / 1e4)) > 0.08


def test_tiles_in_two_zones_agree_on_clear_ground(synth_world):
    """Reproject a zone-32 tile onto an overlapping zone-31 tile of the same date and compare."""
    items = _items(synth_world)
    a = _by(items, 31, True)[-1]  # the eastern zone-31 tile
    b = _by(items, 32, True)[0]  # the western zone-32 tile
    assert a["properties"]["datetime"] == b["properties"]["datetime"]
    red_a, tr_a = _read(a, "red")
    red_b, tr_b = _read(b, "red")
    warped = np.zeros(red_a.shape, np.float32)
    reproject(red_b.astype(np.float32), warped, src_transform=tr_b, src_crs="EPSG:32632",
              dst_transform=tr_a, dst_crs="EPSG:32631", src_nodata=0, dst_nodata=0,
              resampling=Resampling.bilinear)
    scl_b = np.zeros(red_a.shape, np.uint8)
    reproject(_scl10(b), scl_b, src_transform=tr_b, src_crs="EPSG:32632", dst_transform=tr_a,
              dst_crs="EPSG:32631", src_nodata=0, dst_nodata=0, resampling=Resampling.nearest)
    both = np.isin(_scl10(a), CLEAR) & np.isin(scl_b, CLEAR) & (warped > 0) & (red_a > 0)
    assert both.sum() > 20_000  # the tiles overlap by most of their area
    # zone 31 keeps ESA's +1000 DN on this date, zone 32 is harmonized: compare reflectance
    off_a, off_b = (
        dn_offset_for(d["properties"], d["assets"]["red"], "sentinel-2-l2a")
        for d in (a, b)
    )
    warped += off_b
    red_a = red_a.astype(np.float32) + off_a
    diff = np.abs(warped[both] - red_a[both]) / 1e4
    # bilinear resampling of 10 m texture across a ~2 deg grid rotation plus sensor noise
    # (sd 0.0015): a few thousandths; a different world or a shift would be ~0.03 and more
    assert np.median(diff) < 0.008, np.median(diff)
    shifted = np.abs(warped[both] - np.roll(red_a, 3, axis=1)[both]) / 1e4
    assert np.median(shifted) > 2 * np.median(diff)  # the comparison can tell a 30 m shift


def test_union_of_dates_is_mostly_clear_and_landscapes_present(synth_world):
    items = _items(synth_world)
    codes = set()
    for zone in (31, 32):
        for old, new in zip(_by(items, zone, False), _by(items, zone, True), strict=True):
            clear = np.isin(_scl10(old), CLEAR) | np.isin(_scl10(new), CLEAR)
            assert clear.mean() > 0.85, (old["id"], clear.mean())
            codes |= set(np.unique(_read(old, "landcover")[0]).tolist())
    assert codes == {int(c) for c in Landscape}


def test_world_bbox_is_inside_the_coverage(synth_world):
    """Every point of world_bbox lies inside some tile (of either zone) with data on some date."""
    bbox = world_bbox("test")
    assert bbox.west < 6.0 < bbox.east
    items = list(_items(synth_world).values())
    for lon in np.linspace(bbox.west, bbox.east, 7):
        for lat in np.linspace(bbox.south, bbox.north, 4):
            found = False
            for d in items:
                with rasterio.open(Path(d["_dir"]) / "B04.tif") as src:
                    x, y = rasterio.warp.transform("EPSG:4326", src.crs, [lon], [lat])
                    row, col = src.index(x[0], y[0])
                    if 5 <= row < src.height - 5 and 5 <= col < src.width - 5:
                        found |= bool(src.read(1, window=((row, row + 1), (col, col + 1)))[0, 0])
            assert found, (lon, lat)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(synth_world, tmp_path):
    root = Path(synth_world).parent
    again = make_world(tmp_path / "again", seed=0, preset="test").parent
    assert _digest(again) == _digest(root)
    other = _digest(make_world(tmp_path / "other", seed=1, preset="test").parent)
    tifs = [k for k in other if k.endswith("B04.tif")]
    assert tifs and all(other[k] != _digest(root).get(k) for k in tifs)


def test_cli_prints_catalog_and_bbox(tmp_path):
    from click.testing import CliRunner

    from basemap.cli import cli

    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "w"), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert f"catalog: {tmp_path / 'w' / 'catalog.json'}" in result.output
    assert f"bbox: {world_bbox('test')}" in result.output
    bad = CliRunner().invoke(cli, ["synth", str(tmp_path / "x"), "--preset", "huge"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("preset", ["test", "demo"])
def test_world_bbox_straddles_zone_edge(preset):
    b = world_bbox(preset)
    assert b.west < 6.0 < b.east and b.south < 45.0 < b.north
