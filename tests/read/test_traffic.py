"""Reads that hide the network (basemap.read.scenes, basemap.read.traffic): a region's assets are
requested at once, the result is the same as reading from disk one asset after another, and what
the reads cost is counted exactly (requests and bytes against what the server sent)."""

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from basemap.grid import Region, bbox_regions
from basemap.mosaic.region import composite_region
from basemap.read import fetch as fetch_module
from basemap.read.scenes import ReadSettings
from basemap.read.traffic import Traffic, tile_bytes
from basemap.stac.search import search
from basemap.synth.tiles import world_bbox

SETTINGS = ReadSettings(zoom=14)


def _served(scenes, world: Path, url: str):
    """The scenes with their asset hrefs at ``url`` (the range server of the world's folder)."""
    def remote(href: str) -> str:
        return f"{url}/{Path(href).resolve().relative_to(world).as_posix()}"

    return [replace(s, assets=tuple((k, remote(h)) for k, h in s.assets)) for s in scenes]


def _composite(scenes, region, traffic=None):
    made, used = composite_region(scenes, region, SETTINGS, "best", 16, [], traffic=traffic)
    return made, used


@pytest.fixture(scope="module")
def world_scenes(synth_world):
    world = Path(synth_world).parent.resolve()
    scenes = search(str(synth_world), world_bbox("test"))
    region = bbox_regions(world_bbox("test"), 14)[0].aligned_out(128)
    return world, scenes, region


def test_reads_over_a_slow_network_are_concurrent_equal_to_disk_and_counted(world_scenes,
                                                                             range_server,
                                                                             monkeypatch):
    world, scenes, region = world_scenes
    server = range_server(world)
    server.latency = 0.05
    remote = _served(scenes, world, server.url)

    traffic = Traffic()
    seen = _fetches_seen(monkeypatch)
    over_http, used = _composite(remote, region, traffic)
    assert threading.current_thread() not in seen and len(set(seen)) >= 4  # the read pool's
    from_disk, used_disk = _composite(scenes, region)  # one asset after another

    assert used == used_disk == len(scenes) >= 4
    for name in ("reflectance", "valid", "count", "filled"):
        np.testing.assert_array_equal(getattr(over_http, name), getattr(from_disk, name),
                                      err_msg=name)
    # the four assets of a scene and the scenes read ahead were asked for at once
    assert server.peak_in_flight >= 4, server.peak_in_flight
    gets = [r for r in server.log if r.method == "GET"]
    assert traffic.bytes == sum(r.sent for r in gets) > 0
    # GDAL counts a parallel multi-range read as one request: never more than the server saw
    assert len({r.path for r in server.log}) <= traffic.requests <= len(server.log)
    assert traffic.assets == 4 * len(scenes)
    assert 0 < traffic.tile_bytes <= traffic.bytes
    assert traffic.read_s > 0 and traffic.wait_s >= 0


def _fetches_seen(monkeypatch) -> list:
    """The threads that fetch assets, as they fetch them."""
    seen, fetch = [], fetch_module.fetch_asset
    monkeypatch.setattr(fetch_module, "fetch_asset",
                        lambda *args: seen.append(threading.current_thread()) or fetch(*args))
    return seen


def test_a_local_read_costs_no_request_but_is_timed_and_its_tiles_counted(world_scenes,
                                                                           monkeypatch):
    _, scenes, region = world_scenes
    traffic = Traffic()
    seen = _fetches_seen(monkeypatch)
    _composite(scenes[:1], region, traffic)
    assert set(seen) == {threading.current_thread()}  # no latency to hide: read right here
    assert traffic.requests == traffic.bytes == 0
    assert traffic.assets == 4 and traffic.read_s > 0
    assert traffic.tile_bytes > 0


def test_tile_bytes_sums_the_compressed_tiles_a_window_touches(tmp_path):
    path = tmp_path / "tiled.tif"
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": 300, "height": 200, "count": 1, "dtype": "uint16",
               "tiled": True, "blockxsize": 128, "blockysize": 128, "compress": "deflate",
               "crs": "EPSG:32631", "transform": rasterio.Affine(10, 0, 500000, 0, -10, 5e6)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(rng.integers(0, 4000, (200, 300), dtype="uint16"), 1)
    with rasterio.open(path) as ds:
        sizes = {(c, r): int(ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1))
                 for c in range(3) for r in range(2)}
        # a window inside tile (1, 0), one across all six, one across the 2 x 2 top-left
        assert tile_bytes(ds, Window(130, 10, 20, 20)) == sizes[(1, 0)]
        assert tile_bytes(ds, Window(0, 0, 300, 200)) == sum(sizes.values())
        assert tile_bytes(ds, Window(100, 100, 50, 50)) == sum(
            sizes[k] for k in ((0, 0), (1, 0), (0, 1), (1, 1)))
    # the compressed tiles are what a file of random DN mostly holds
    assert 0.9 * path.stat().st_size < sum(sizes.values()) < path.stat().st_size


def test_two_regions_read_at_once_in_one_process_count_each_byte_once(world_scenes,
                                                                       range_server):
    """Blocks that read the same assets at the same time (a worker with several threads) are
    each given what their own reads fetched: the two figures add up to what the server sent."""
    from concurrent.futures import ThreadPoolExecutor

    world, scenes, region = world_scenes
    server = range_server(world)
    server.latency = 0.02
    remote = _served(scenes, world, server.url)
    halves = [region, Region(region.x0 + 128, region.y0, region.x1 + 128, region.y1)]
    figures = [Traffic(), Traffic()]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda k: _composite(remote, halves[k], figures[k]), (0, 1)))
    sent = sum(r.sent for r in server.log if r.method == "GET")
    # (an asset both need is downloaded by the first to get it; the other reads GDAL's cache)
    assert figures[0].bytes + figures[1].bytes == sent > 0
    assert figures[0].assets == figures[1].assets == 4 * len(scenes)
