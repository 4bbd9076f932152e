"""basemap.stac.scene and basemap.stac.manifest: Scene tokens, the manifest round trip."""

from __future__ import annotations

import subprocess
import sys

from basemap.stac.manifest import read_manifest, write_manifest
from basemap.stac.scene import Scene
from basemap.stac.search import search as stac_search
from basemap.types import BBox

ES = "sentinel-2-l2a"
C1 = "sentinel-2-c1-l2a"
RB = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
RB0 = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0}]



# ---- Scene: Dask tokens and manifest -----------------------------------------------------------


def _scene(**kw):
    base = dict(id="a", collection=ES, datetime="2020-01-01T00:00:00Z", updated=None, epsg=32631,
                bbox=(1.0, 2.0, 3.0, 4.0), footprint='{"type":"Point","coordinates":[2,3]}',
                assets=(("red", "r.tif"), ("green", "g.tif"), ("blue", "b.tif")),
                dn_offset=0.0, processing_baseline="02.14", cloud_cover=1.5, grid_code=None)
    base.update(kw)
    return Scene(**base)


def test_scene_dask_token_deterministic():
    from dask.base import tokenize

    assert tokenize(_scene()) == tokenize(_scene())
    assert tokenize(_scene()) != tokenize(_scene(dn_offset=-1000.0))
    assert tokenize(_scene()) != tokenize(_scene(assets=(("red", "x.tif"),)))
    code = ("from dask.base import tokenize; import tests.stac.test_scene as t; "
            "print(tokenize(t._scene()))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == tokenize(_scene()), "token must not depend on the process (hash seed)"


def test_manifest_roundtrip(tmp_path, mini_world):
    scenes = stac_search(str(mini_world), BBox(-180, -90, 180, 90))
    path = write_manifest(scenes, tmp_path / "m" / "manifest.json")
    assert read_manifest(path) == scenes
    assert not list(path.parent.glob("*.tmp"))
