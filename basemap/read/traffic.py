"""What a block's reads cost: HTTP requests and bytes per asset (GDAL's network statistics), the
bytes of the COG tiles its windows touch, and the seconds spent reading and waiting for reads.

GDAL counts the requests and bytes of its network file systems (``/vsicurl/``, ``/vsis3/``, ...)
per file and per process when ``CPL_VSIL_NETWORK_STATS_ENABLED`` is set before the first network
read of the process, which importing this module does. A read is attributed to the asset it
opened: :func:`counted` takes the asset's lock (one reader of an href at a time in a process,
so two blocks reading the same scene never count each other's requests) and the difference of
that file's figures before and after is the read's. A parallel multi-range read (GDAL fetching
the tiles of one window at once) counts as one request, as GDAL logs it.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from rasterio.io import DatasetReader
from rasterio.windows import Window

from basemap.config import count_network_reads, is_remote
from basemap.read.gdal_lib import gdal_function, vsi_path

count_network_reads()  # before any network access of the process

#: Locks by href (striped): one reader of an asset at a time per process.
_STRIPES = [threading.Lock() for _ in range(1024)]
_stats_lock = threading.Lock()
_reading = 0  # counted reads in progress; the statistics are reset when none is


@dataclass
class Traffic:
    """The cost of reads (summed over assets, scenes and a block's parts).

    Attributes:
        requests: HTTP requests (0 for local files).
        bytes: bytes downloaded (0 for local files).
        tile_bytes: compressed bytes of the internal tiles the read windows touch (TIFF assets).
        read_s: seconds spent opening and reading assets, summed over concurrent reads.
        wait_s: seconds the compositing waited for a scene's reads to finish.
        assets: assets opened.
    """

    requests: int = 0
    bytes: int = 0
    tile_bytes: int = 0
    read_s: float = 0.0
    wait_s: float = 0.0
    assets: int = 0

    def add(self, other: Traffic) -> Traffic:
        """Add ``other`` into this one; returns self."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def record(self) -> dict:
        """The figures as build.json keeps them (seconds rounded to ms)."""
        out = asdict(self)
        out["read_s"], out["wait_s"] = round(self.read_s, 3), round(self.wait_s, 3)
        return out


def _network_figures(path: str) -> tuple[int, int]:
    """(requests, bytes) GDAL has counted for the file ``path`` (any query string of it: a
    signed URL counts as its href) since the statistics were last reset."""
    get = gdal_function("VSINetworkStatsGetAsSerializedJSON", (ctypes.c_void_p,), ctypes.c_void_p)
    free = gdal_function("VSIFree", (ctypes.c_void_p,))
    if get is None or free is None:
        return 0, 0
    pointer = get(None)
    try:
        stats = json.loads(ctypes.string_at(pointer).decode()) if pointer else {}
    finally:
        if pointer:
            free(pointer)
    requests = downloaded = 0
    for handler in stats.get("handlers", {}).values():
        # reads through an open file, then operations on a path (HEAD of a Stat, ...)
        groups = [handler.get("files", {})]
        groups += [action.get("files", {}) for action in handler.get("actions", {}).values()]
        for files in groups:
            for name, figures in files.items():
                if name.split("?", 1)[0] == path:
                    for method in figures.get("methods", {}).values():
                        requests += method.get("count", 0)
                        downloaded += method.get("downloaded_bytes", 0)
    return requests, downloaded


@contextmanager
def counted(href: str, into: Traffic) -> Iterator[None]:
    """Count what the reads of ``href`` inside the block cost into ``into``: the time, and for a
    remote href its requests and bytes. Holds the href's lock (one reader per process)."""
    global _reading
    start = time.perf_counter()
    remote = is_remote(href)
    path = vsi_path(href).split("?", 1)[0]
    with _STRIPES[hash(path) % len(_STRIPES)]:
        if remote:
            with _stats_lock:
                _reading += 1
                before = _network_figures(path)
        try:
            yield
        finally:
            if remote:
                with _stats_lock:
                    after = _network_figures(path)
                    _reading -= 1
                    if _reading == 0:
                        _reset()
                into.requests += after[0] - before[0]
                into.bytes += after[1] - before[1]
            into.read_s += time.perf_counter() - start
            into.assets += 1


def _reset() -> None:
    """Forget the figures (no counted read in progress): the statistics stay small."""
    reset = gdal_function("VSINetworkStatsReset", ())
    if reset is not None:
        reset()


def tile_bytes(ds: DatasetReader, window: Window) -> int:
    """Compressed bytes of the internal tiles (or strips) of band 1 that ``window`` touches
    (0 when the format does not tell: JPEG 2000, ...)."""
    height, width = ds.block_shapes[0]
    r0, c0 = int(window.row_off) // height, int(window.col_off) // width
    r1 = (int(window.row_off + window.height) - 1) // height
    c1 = (int(window.col_off + window.width) - 1) // width
    total = 0
    for row in range(r0, r1 + 1):
        for col in range(c0, c1 + 1):
            size = ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1)
            if size is None:
                return 0
            total += int(size)
    return total
