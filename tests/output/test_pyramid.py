"""basemap.output.pyramid: the one level loop, its holes, and the in-process reduction."""

import numpy as np

from basemap.output.pyramid import children, reduce_levels, reduce_tiles
from basemap.output.storage import LocalStorage
from basemap.output.tiles import TileOutput


def test_parents_of_present_children_in_order():
    calls = []

    def parent(z, x, y, kids):
        calls.append((z, x, y, tuple(k is not None for k in kids)))
        return sum(k for k in kids if k)

    top, broken = reduce_levels({(0, 0): 1, (3, 1): 2}, 3, 1, parent)
    assert calls == [(2, 0, 0, (True, False, False, False)),
                     (2, 1, 0, (False, False, False, True)), (1, 0, 0, (True, True, False, False))]
    assert top == {(0, 0): 3} and not broken
    assert children(1, 2) == [(2, 4), (3, 4), (2, 5), (3, 5)]


def test_nothing_is_built_over_a_broken_child():
    top, broken = reduce_levels({(0, 0): 1}, 2, 0, lambda z, x, y, k: 1, broken={(1, 1)})
    assert top == {} and broken == {(0, 0)}


def test_reduce_tiles_writes_visible_parents_and_counts_them(tmp_path):
    tile = np.full((4, 256, 256), 255, np.uint8)
    out = TileOutput(LocalStorage(str(tmp_path)), "png")
    counts: dict[int, int] = {}
    top, _ = reduce_tiles({(0, 0): tile, (1, 1): np.zeros_like(tile)}, 10, 9, out, counts=counts)
    assert counts == {9: 1} and (tmp_path / "tiles/9/0/0.png").is_file()
    assert top[(0, 0)][3, 0, 0] == 255 and top[(0, 0)][3, -1, -1] == 0
    empty, _ = reduce_tiles({(0, 0): np.zeros_like(tile)}, 10, 9, out)
    assert empty == {}  # an empty parent is not written and not kept
