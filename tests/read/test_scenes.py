"""basemap.read.scenes: scenes warped into chunk-aligned regions of the global grid; missing
assets."""

from dataclasses import replace

import pytest
import rasterio

from basemap.config import gdal_env
from basemap.errors import MissingAssetError
from basemap.grid import Region, bbox_regions
from basemap.read.scenes import ReadSettings, embed, observations, read_scene
from basemap.stac.search import search
from basemap.synth.tiles import world_bbox

SETTINGS = ReadSettings(zoom=14)


@pytest.fixture(scope="module")
def scenes_and_region(synth_world):
    scenes = search(str(synth_world), world_bbox("test"))
    r = bbox_regions(world_bbox("test"), 14)[0].aligned_out(128)
    x0, y0 = r.x0 + 256, r.y0 + 128
    return scenes, Region(x0, y0, x0 + 256, y0 + 256)


def test_a_scene_warped_onto_a_region(scenes_and_region):
    scenes, region = scenes_and_region
    with rasterio.Env(**gdal_env()):
        stacks = [read_scene(s, region, SETTINGS) for s in scenes]
    got = [s for s in stacks if s is not None]
    assert got, "the test world covers the region"
    crop = got[0].region
    assert region.x0 <= crop.x0 < crop.x1 <= region.x1
    assert region.y0 <= crop.y0 < crop.y1 <= region.y1
    assert got[0].dn.shape == (3, crop.height, crop.width) and got[0].dn.dtype == "uint16"
    assert got[0].scl.shape == (crop.height, crop.width) and got[0].scl.dtype == "uint8"


def test_the_same_chunk_reads_the_same_pixels_from_a_larger_region(scenes_and_region):
    """Partition invariance starts here: a chunk's pixels do not depend on the region around it."""
    scenes, region = scenes_and_region
    big = Region(region.x0 - 128, region.y0 - 128, region.x1 + 128, region.y1 + 128)
    scene = scenes[0]
    small, large = read_scene(scene, region, SETTINGS), read_scene(scene, big, SETTINGS)
    small_dn, large_dn = embed(small.dn, small.region, region), embed(large.dn, large.region, big)
    assert small_dn.any()
    assert (large_dn[:, 128:-128, 128:-128] == small_dn).all()  # exact: one mapping per pixel


def test_regions_must_be_chunk_aligned(scenes_and_region):
    scenes, region = scenes_and_region
    with pytest.raises(ValueError, match="not aligned"):
        read_scene(scenes[0], Region(region.x0 + 1, region.y0, region.x1, region.y1), SETTINGS)


def test_a_missing_asset_is_skipped_and_named(scenes_and_region, tmp_path):
    scenes, region = scenes_and_region
    gone = replace(scenes[0], assets=tuple((k, str(tmp_path / "gone.tif") if k == "red" else h)
                                           for k, h in scenes[0].assets))
    with pytest.raises(MissingAssetError, match="not found"):
        read_scene(gone, region, SETTINGS)
    skipped: list[str] = []
    seen = [o.scene.id for o in observations([gone, *scenes[1:]], region, SETTINGS, 0, skipped)]
    assert skipped == [gone.id] and gone.id not in seen
