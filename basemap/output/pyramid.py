"""The pyramid: every zoom below the max from the four tiles above it, by the one level loop.

Inside a block, :func:`write_levels` halves the block's own array down to its root tile. Above the
blocks, :func:`reduce_levels` walks zoom by zoom from a level of tiles (a dict ``(x, y) -> value``)
to its parents: the build runs it with Dask futures as values (:mod:`basemap.pipeline.graph`),
`basemap tiles` and the world pyramid with RGBA arrays in this process (:func:`reduce_tiles`). A
parent with a *broken* child (a failed block, an unfinished shard) is not built (never read as
transparent) and is broken itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

import numpy as np

from basemap.grid import TILE_SIZE
from basemap.output.tiles import TileOutput, assemble, reduce2x

T = TypeVar("T")


def children(px: int, py: int) -> list[tuple[int, int]]:
    """(x, y) of the four children of tile (px, py): top-left, top-right, bottom-left, -right."""
    return [(2 * px + dx, 2 * py + dy) for dy in (0, 1) for dx in (0, 1)]


def reduce_levels(
    level: Mapping[tuple[int, int], T],
    z: int,
    zmin: int,
    parent: Callable[[int, int, int, tuple[T | None, ...]], T | None],
    broken: Collection[tuple[int, int]] = (),
) -> tuple[dict[tuple[int, int], T], set[tuple[int, int]]]:
    """THE level loop: from tiles at zoom ``z``, make every parent level down to ``zmin``.

    Args:
        level: the tiles at ``z``, (x, y) -> value (absent: empty).
        z, zmin: the zoom of ``level``, and the lowest zoom to make.
        parent: ``parent(z, x, y, children)`` -> the parent's value, or None for an empty tile;
            called for every parent of a present or broken child, in (x, y) order.
        broken: tiles at ``z`` that must not be read (their ancestors are broken too).

    Returns:
        (the tiles at ``zmin``, the broken ones there).
    """
    level, broken = dict(level), set(broken)
    while z > zmin:
        z -= 1
        nxt: dict[tuple[int, int], T] = {}
        nbroken: set[tuple[int, int]] = set()
        for px, py in sorted({(x // 2, y // 2) for x, y in [*level, *broken]}):
            kids = children(px, py)
            if any(k in broken for k in kids):
                nbroken.add((px, py))
                continue
            value = parent(z, px, py, tuple(level.get(k) for k in kids))
            if value is not None:
                nxt[(px, py)] = value
        level, broken = nxt, nbroken
    return level, broken


def reduce_tiles(level: Mapping[tuple[int, int], np.ndarray], z: int, zmin: int,
                 out: TileOutput | None, broken: Collection[tuple[int, int]] = (),
                 counts: dict[int, int] | None = None
                 ) -> tuple[dict[tuple[int, int], np.ndarray], set[tuple[int, int]]]:
    """:func:`reduce_levels` in this process on RGBA tiles, writing each parent to ``out``.

    Args:
        out: where to write (None: only reduce, keep every parent, even a transparent one).
        counts: {zoom: tiles written}, updated in place.

    Returns:
        As :func:`reduce_levels`.
    """
    def parent(pz: int, px: int, py: int,
               kids: tuple[np.ndarray | None, ...]) -> np.ndarray | None:
        tile = reduce2x(assemble(kids))
        if out is None:
            return tile
        if not out.write(pz, px, py, tile):
            return None
        if counts is not None:
            counts[pz] = counts.get(pz, 0) + 1
        return tile

    return reduce_levels(level, z, zmin, parent, broken)


def write_levels(
    rgba: np.ndarray, tx: int, ty: int, z: int, zmin: int, out: TileOutput
) -> tuple[dict[int, int], np.ndarray]:
    """Write the tiles of a tile-aligned RGBA array from zoom ``z`` down to ``zmin``.

    Args:
        rgba: (4, n*256, n*256) uint8, n a power of two; its top-left tile is (tx, ty) at ``z``.
        tx, ty, z: the top-left tile.
        zmin: the lowest zoom to write (levels below the array's single root tile are left to
            :func:`pyramid_tile`).
        out: where to write.

    Returns:
        (tiles written per zoom, the RGBA of the lowest level computed).
    """
    counts: dict[int, int] = {}
    level = rgba
    while True:
        n = level.shape[1] // TILE_SIZE
        counts[z] = 0
        for j in range(n):
            for i in range(n):
                rows = slice(j * TILE_SIZE, (j + 1) * TILE_SIZE)
                tile = level[:, rows, i * TILE_SIZE : (i + 1) * TILE_SIZE]
                counts[z] += out.write(z, tx + i, ty + j, tile)
        if n == 1 or z == zmin:
            return counts, level
        level = reduce2x(level)
        tx, ty, z = tx // 2, ty // 2, z - 1


def pyramid_tile(
    z: int, x: int, y: int, children: tuple, out: TileOutput
) -> np.ndarray | None:
    """Dask task: build tile (z, x, y) from its four children at z+1 and write it.

    Args:
        children: four values (top-left, top-right, bottom-left, bottom-right), each an RGBA
            (4, 256, 256) array, None (an empty child), or an object with an ``rgba`` attribute
            (a block result).

    Returns:
        The tile's RGBA, or None when it is empty (nothing written).
    """
    arrays = tuple(getattr(c, "rgba", c) for c in children)
    if all(a is None for a in arrays):
        return None
    tile = reduce2x(assemble(arrays))
    return tile if out.write(z, x, y, tile) else None
