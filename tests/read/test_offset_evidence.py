"""The DN offset of an Earth Search item whose flag may lie, decided from its real pixels: the
whole real Irish tile T29UNU (baseline 04.00, ESA's raw DN with +1000, water, peat, clouds and
shadows) keeps its -1000; the same pixels shifted as Earth Search's mislabelled items hold them
are read with offset 0 (issue 30, row a)."""

from dataclasses import replace

import numpy as np
import pytest
import rasterio

from basemap.read.offset_evidence import decide_offset
from basemap.stac.scene import scene_from_item
from tests.support.archives import IRELAND, real_item
from tests.support.mini_world import write_cog


def _scene(tmp_path, shift: int):
    """A flag-false baseline-05.09 Earth Search scene over the real tile, its DN - ``shift``."""
    with rasterio.open(IRELAND / "T29UNU_20221005_L2A_RGB_60m.tif") as ds:
        rgb = ds.read()
    with rasterio.open(IRELAND / "T29UNU_20221005_L2A_SCL_60m.tif") as ds:
        scl = ds.read(1)
    hrefs = {}
    for key, band in (("red", 0), ("green", 1), ("blue", 2)):
        dn = np.where(rgb[band] > shift, rgb[band].astype(np.int32) - shift, 0)
        write_cog(tmp_path / f"{key}.tif", dn.astype(np.uint16), 32629)
        hrefs[key] = str(tmp_path / f"{key}.tif")
    write_cog(tmp_path / "scl.tif", scl, 32629)
    hrefs["scl"] = str(tmp_path / "scl.tif")
    item = real_item("es_l2a_new_S2A_13TDE_20231008_0_L2A")
    item["properties"]["earthsearch:boa_offset_applied"] = False
    for key, href in hrefs.items():
        item["assets"][key]["href"] = href
    scene = scene_from_item(item)
    assert scene.offset_in_doubt and scene.dn_offset == -1000.0
    return scene


@pytest.mark.parametrize("shift, offset, said", [(0, -1000.0, False), (1000, 0.0, True)])
def test_the_pixels_decide_a_doubtful_offset(tmp_path, caplog, shift, offset, said):
    decided = decide_offset(_scene(tmp_path, shift))
    assert decided.dn_offset == offset and not decided.offset_in_doubt
    assert ("boa_offset_applied says false" in caplog.text) == said


def test_no_scl_keeps_the_metadata(tmp_path):
    scene = _scene(tmp_path, 1000)
    blind = replace(scene, assets=tuple(a for a in scene.assets if a[0] != "scl"))
    assert decide_offset(blind).dn_offset == -1000.0
