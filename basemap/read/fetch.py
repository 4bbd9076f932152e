"""Fetching a scene's assets: each opened, checked and its window read (where a region's pixels
fall in it), and the order and concurrency of those reads.

Remote assets are fetched at once by a pool of :data:`READ_THREADS` threads per process, and
:func:`prefetched` reads :data:`READ_AHEAD` remote scenes ahead of the one being used: the
network's latency is overlapped with the compositing. Local files are read one after another in
the calling thread: there is no latency to hide, and the cores are busy compositing (reading
them with the pool too made the U-Net demo build 1.1-1.3x slower, BENCHMARKS.md §9). Each
asset is opened once and read in one windowed read (GDAL fetches the COG tiles of a window in
parallel, consecutive ones merged), with :func:`basemap.config.gdal_env` in effect; what it
costs is counted (:mod:`basemap.read.traffic`).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from basemap import config
from basemap.config import is_remote
from basemap.errors import AssetError, AuthError, MissingAssetError
from basemap.grid import Region
from basemap.read.access import forget_token
from basemap.read.assets import asset_error, check_asset, forget, open_scene_asset, read_dn
from basemap.read.traffic import Traffic, counted, tile_bytes
from basemap.read.warp import Lattice, SourcePixels
from basemap.stac.scene import Scene

#: Assets a process reads at once (the read pool's threads; the network's latency is hidden
#: when they keep enough requests in flight).
READ_THREADS = 16
#: Remote scenes read ahead of the one being used (memory: this many warped scenes).
READ_AHEAD = 4
_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


class Lattices:
    """A region's coordinate mappings by CRS, made once per (region, CRS) and shared by every
    asset read for it (by the threads of the read pool)."""

    def __init__(self) -> None:
        self._made: dict[tuple, Lattice] = {}
        self._lock = threading.Lock()

    def get(self, region: Region, zoom: int, crs: CRS) -> Lattice:
        """The mapping of ``region`` at ``zoom`` into ``crs``."""
        key = (region, zoom, crs.to_wkt())
        with self._lock:
            if key not in self._made:
                self._made[key] = Lattice.of(region, zoom, key[2])
            return self._made[key]


@dataclass(frozen=True)
class Fetched:
    """One asset opened and read: its grid, where the region's pixels fall in it, and the DN of
    the source window they fall in (None when no pixel does)."""

    grid: tuple
    lattice: Lattice
    pixels: SourcePixels
    dn: np.ndarray | None


def fetch_asset(scene: Scene, key: str, region: Region, zoom: int, lattices: Lattices,
                traffic: Traffic) -> Fetched:  # fmt: skip
    """Open one asset of a scene, check it and read the window of it that the pixels of
    ``region`` (global pixels at ``zoom``) fall in; its cost counted into ``traffic``.

    Raises:
        AssetError: (or a subclass) the asset can't be opened, used or read.
    """
    href, error = scene.href(key), None
    with rasterio.Env(**config.gdal_env()), counted(href, traffic):
        ds = open_scene_asset(scene, key)
        try:
            check_asset(ds, href, scene.id, key)
            lattice = lattices.get(region, zoom, ds.crs)
            pixels = SourcePixels.of(lattice, ds.transform, (ds.height, ds.width))
            dn = None
            if pixels.part is not None:
                r0, r1, c0, c1 = pixels.window
                window = Window(c0, r0, c1 - c0, r1 - r0)
                dn = read_dn(ds, window)
                traffic.tile_bytes += tile_bytes(ds, window)
            grid = (ds.crs, ds.transform, ds.shape)
        except RasterioIOError as exc:  # a read after the open: truncated data, server gone
            error = asset_error(exc, href, scene.id, key, "reading", scene.source)
        finally:
            ds.close()
    if error is not None:
        _forget(scene, error, (key,))
        raise _diagnosed(scene, error, (key,))
    return Fetched(grid, lattice, pixels, dn)


def fetch_assets(scene: Scene, keys: tuple[str, ...], region: Region, zoom: int,
                 lattices: Lattices,
                 costs: dict[str, Traffic]) -> dict[str, Fetched | AssetError]:  # fmt: skip
    """Each asset of ``keys`` fetched (:func:`fetch_asset`), or the error it raised: at once by
    the read pool when the scene is remote, one after another in this thread when it is local."""
    def one(key: str) -> Fetched | AssetError:
        try:
            return fetch_asset(scene, key, region, zoom, lattices, costs[key])
        except AssetError as exc:
            return exc

    if not is_remote(scene.href(keys[0])):
        return {key: one(key) for key in keys}
    return dict(zip(keys, _pool("assets", READ_THREADS).map(one, keys), strict=True))


def prefetched(scenes: list[Scene], read: Callable[[Scene, Traffic], object],
               ) -> Iterator[tuple[Scene, Traffic, Future]]:  # fmt: skip
    """(scene, what its reads cost, the future of ``read(scene, cost)``), in order. Remote
    scenes: the next :data:`READ_AHEAD` are being read while one is used; local ones are read
    when they are asked for."""
    if any(is_remote(href) for scene in scenes for _, href in scene.assets):
        depth, pool = READ_AHEAD + 1, _pool("scenes", READ_AHEAD + 1)
    else:
        depth, pool = 1, _IN_THIS_THREAD
    ahead, pending = iter(scenes), deque()
    try:
        while True:
            for scene in islice(ahead, depth - len(pending)):
                cost = Traffic()
                pending.append((scene, cost, pool.submit(read, scene, cost)))
            if not pending:
                return
            yield pending.popleft()
    finally:
        for _, _, future in pending:
            future.cancel()


def _diagnosed(scene: Scene, error: AssetError, keys: tuple[str, ...]) -> AssetError:
    """The error of a failed read, made precise: GDAL says only "Read failed" when a server
    refuses a range request, so the assets are opened again, and a refusal (or a 404) there
    is the error to report."""
    if isinstance(error, (AuthError, MissingAssetError)):
        return error
    for key in keys:
        try:
            open_scene_asset(scene, key).close()
        except (AuthError, MissingAssetError) as reopened:
            _forget(scene, reopened, keys)
            return reopened
        except AssetError:
            pass
    return error


def _forget(scene: Scene, error: Exception, keys: tuple[str, ...]) -> None:
    """After a failed read: drop GDAL's cached state of the hrefs, and a refused token."""
    for key in keys:
        forget(scene.href(key))
    if isinstance(error, AuthError):
        forget_token(scene.collection)


class _InThisThread:
    """An executor that runs each call at once, in the calling thread (local reads)."""

    @staticmethod
    def submit(fn: Callable, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 (handed over as the future's, as a pool does)
            future.set_exception(exc)
        return future


_IN_THIS_THREAD = _InThisThread()


def _pool(name: str, threads: int) -> ThreadPoolExecutor:
    """This process's thread pool ``name`` (made at first use; a forked child makes its own)."""
    key = (name, os.getpid())
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix=f"basemap-{name}")
        return _pools[key]
