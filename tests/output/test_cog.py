"""basemap.output.cog: the one COG writer, block COGs and the VRT.

The invalid-COG fault (a rio-cogeo output that fails validation is never published) runs in
tests/integration/test_faults.py.
"""

import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_validate

from basemap.grid import Block, region_transform
from basemap.output.cog import COG_PROFILE, cog_key, write_block_cog, write_cog, write_vrt
from basemap.output.storage import LocalStorage


def test_a_block_cog_is_georeferenced_validated_and_published(tmp_path):
    storage = LocalStorage(str(tmp_path))
    block = Block(5, 6, 512, 14)
    rgba = np.zeros((4, 512, 512), np.uint8)
    rgba[:, 100:300, 50:400] = 200
    key = cog_key(block)
    write_block_cog(rgba, block.region, 14, storage, key)
    path = tmp_path / key
    ok, errors, _ = cog_validate(str(path))
    assert ok, errors
    with rasterio.open(path) as ds:
        assert (ds.read() == rgba).all()  # lossless
        assert ds.transform == region_transform(block.region, 14) and ds.overviews(1) == [2]
    assert not list((tmp_path / ".tmp").glob("*"))  # the temporary file was renamed into place
    write_vrt([(key, block.region)], 14, storage)
    with rasterio.open(tmp_path / "mosaic.vrt") as vrt:
        assert (vrt.read() == rgba).all()


def test_write_cog_from_any_source(tmp_path):
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=300, height=200, count=1, dtype="uint16",
                       crs="EPSG:32631", transform=region_transform(Block(0, 0, 256, 1).region,
                                                                    1), nodata=0) as ds:
        ds.write(np.arange(60000, dtype=np.uint16).reshape(1, 200, 300))
    write_cog(str(src), tmp_path / "out.tif", dict(COG_PROFILE, blockxsize=128, blockysize=128))
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.nodata == 0 and (ds.read(1) == np.arange(60000).reshape(200, 300)).all()
