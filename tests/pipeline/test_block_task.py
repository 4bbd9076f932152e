"""basemap.pipeline.block_task: the settings that decide the pixels, and what a block reads."""

import pytest

from basemap.errors import InputError
from basemap.grid import Block
from basemap.mosaic.observation_quality import required_padding
from basemap.output.storage import LocalStorage
from basemap.pipeline.plan import BlockJob, BuildSettings, input_region, read_region, window_owners


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


def _jobs(settings, blocks):
    return [BlockJob(Block(bx, by, settings.block_size, 14), (), settings, LocalStorage("/x"))
            for bx, by in blocks]


def test_every_window_is_owned_by_one_block_and_needed_by_the_blocks_it_touches():
    s = BuildSettings(block_size=512, window=128, overlap=32)
    grid = s.make_renderer().grid
    # an L of blocks: (11, 20) is missing, so windows with their top-left there go elsewhere
    jobs = _jobs(s, [(10, 20), (10, 21), (11, 21), (12, 21)])
    homes = {(j.block.bx, j.block.by): i for i, j in enumerate(jobs)}
    touching = [set(grid.windows(j.block.region)) for j in jobs]
    owned, needs = window_owners(jobs)
    runs = [w for ws in owned for w in ws]
    assert len(runs) == len(set(runs)) == len(set().union(*touching))  # each window once
    assert len(runs) < sum(map(len, touching))  # (149 of 169 here)
    for i in range(len(jobs)):
        assert needs[i][0] == i
        assert touching[i] <= {w for k in needs[i] for w in owned[k]}  # all it needs is there
        for w in owned[i]:  # in the block holding its top-left, when that block is built
            assert homes.get((w[0] // 512, w[1] // 512), i) == i


def test_renderers_without_windows_need_only_their_own_part():
    s = BuildSettings(renderer="sh-l2a-optimized", block_size=512)
    owned, needs = window_owners(_jobs(s, [(0, 0), (1, 0)]))
    assert owned == [(), ()] and needs == [(0,), (1,)]
