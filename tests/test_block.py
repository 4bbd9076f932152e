"""basemap.block: the settings that decide the pixels, and what a block reads."""

import pytest

from basemap.block import BuildSettings, input_region, read_region
from basemap.errors import InputError
from basemap.grid import Block
from basemap.quality import required_padding


@pytest.mark.parametrize(("field", "value", "message"), [
    ("renderer", "nope", "--renderer"), ("composite", "nope", "--composite"),
    ("tile_format", "gif", "--tile-format"), ("feather", -1, "--feather"),
    ("block_size", 300, "--block-size"), ("overlap", 300, "overlap"), ("chunk", 100, "chunk"),
])
def test_bad_settings_name_the_option(field, value, message):
    with pytest.raises(InputError, match=message):
        BuildSettings(**{field: value}).validated()


def test_the_renderer_gets_the_window_grid():
    r = BuildSettings(window=256, overlap=32).make_renderer()
    assert (r.grid.window, r.grid.overlap) == (256, 32)


def test_read_region_holds_the_windows_and_the_feather():
    block = Block(10, 20, 512, 14)
    s = BuildSettings(window=512, overlap=64, feather=64, block_size=512)
    r = s.make_renderer()
    need, read = input_region(block, r), read_region(block, s, r)
    region = block.region
    assert need.x0 <= region.x0 and need.x1 >= region.x1
    assert read.x0 <= need.x0 - 65 and read.y1 >= need.y1 + 65  # feather + 1 around the windows
    assert read.x0 % s.chunk == 0 and read.y1 % s.chunk == 0
    # Even a pixel-wise renderer reads the quality's context (cloud distance, footprint ramp).
    linear = BuildSettings(renderer="linear", composite="first", feather=0, block_size=512)
    read = read_region(block, linear, linear.make_renderer())
    pad = required_padding(0)
    assert read.x0 <= region.x0 - pad and read.y1 >= region.y1 + pad
