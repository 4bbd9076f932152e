"""The global grid: tile maths agree with mercantile; aligned blocks; the antimeridian splits."""

import mercantile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basemap.errors import InputError
from basemap.grid import (
    Block,
    bbox_regions,
    lonlat_to_px,
    plan_blocks,
    px_to_lonlat,
    tile_bounds_lonlat,
    tile_bounds_mercator,
    tiles_in,
)
from basemap.types import BBox


@settings(max_examples=200, deadline=None)
@given(z=st.integers(0, 16), fx=st.floats(0, 1, exclude_max=True),
       fy=st.floats(0, 1, exclude_max=True))
def test_tile_bounds_agree_with_mercantile(z, fx, fy):
    n = 2**z
    x, y = int(fx * n), int(fy * n)
    # 1e-6 m: both compute the same closed form in float64 (~1e-9 relative of 2e7 m)
    assert tile_bounds_mercator(x, y, z) == pytest.approx(
        tuple(mercantile.xy_bounds(x, y, z)), abs=1e-6)
    assert tile_bounds_lonlat(x, y, z) == pytest.approx(tuple(mercantile.bounds(x, y, z)), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(lon=st.floats(-179.9, 179.9), lat=st.floats(-85, 85), z=st.integers(0, 16))
def test_lonlat_to_tile_agrees_with_mercantile(lon, lat, z):
    px, py = lonlat_to_px(lon, lat, z)
    t = mercantile.tile(lon, lat, z)
    # points within 1e-7 px of a tile edge may round either way in the two implementations
    if min(px % 256, 256 - px % 256, py % 256, 256 - py % 256) > 1e-7:
        assert (int(px // 256), int(py // 256)) == (t.x, t.y)
    lon2, lat2 = px_to_lonlat(px, py, z)
    assert (lon2, lat2) == pytest.approx((lon, lat), abs=1e-9)


def test_blocks_are_aligned_tiles():
    blocks = plan_blocks(bbox_regions(BBox(5.9, 44.9, 6.1, 45.1), 14), 1024, 14)
    assert blocks and all(b.region.x0 % 1024 == 0 and b.region.y0 % 1024 == 0 for b in blocks)
    b = blocks[0]
    rz, rx, ry = b.root
    assert rz == 12
    assert mercantile.xy_bounds(rx, ry, rz) == pytest.approx(
        tile_bounds_mercator(b.bx, b.by, rz), abs=1e-6)
    assert len(list(tiles_in(b.region, 14))) == 16


def test_block_size_and_antimeridian():
    with pytest.raises(InputError, match="block-size"):
        plan_blocks([], 768, 14)
    regions = bbox_regions(BBox(179.9, -17.0, -179.9, -16.9), 14)
    assert len(regions) == 2
    world = 256 << 14
    assert regions[0].x1 == world and regions[1].x0 == 0
    assert Block(1, 2, 512, 14).name == "13/1/2"
