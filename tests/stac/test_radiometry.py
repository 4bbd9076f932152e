"""basemap.stac.radiometry: the DN offset rule, case by case, and DN -> reflectance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from basemap.errors import AssetError, StacError
from basemap.stac.radiometry import dn_offset_for, to_reflectance
from basemap.stac.scene import scene_from_item

ES = "sentinel-2-l2a"
C1 = "sentinel-2-c1-l2a"
RB = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
RB0 = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0}]



# ---- the DN offset rule, case by case (docs/s2-l2a.md) -------------------------------------------


@pytest.mark.parametrize(
    ("props", "bands", "collection", "expected"),
    [
        # Earth Search v1: the flag is the truth, whatever raster:bands says.
        ({"earthsearch:boa_offset_applied": True, "s2:processing_baseline": "05.09"}, RB, ES, 0.0),
        ({"earthsearch:boa_offset_applied": True, "s2:processing_baseline": "05.09"}, RB0, ES, 0.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "05.09"}, RB0, ES,
         -1000.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "04.00"}, RB, ES,
         -1000.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "02.14"}, RB0, ES,
         0.0),
        ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "03.01"}, RB, ES, 0.0),
        ({"earthsearch:boa_offset_applied": "true", "s2:processing_baseline": "04.00"}, RB, ES,
         0.0),
        # Earth Search c1-l2a: unshifted pixels, raster:bands offset is correct.
        ({"s2:processing_baseline": "05.00"}, RB, C1, -1000.0),
        ({"s2:processing_baseline": "05.00"}, RB0, C1, 0.0),
        ({}, [{"scale": 0.0001, "offset": -0.1}], C1, -1000.0),
        # Planetary Computer: no raster:bands; the baseline decides.
        ({"s2:processing_baseline": "04.00"}, None, ES, -1000.0),
        ({"s2:processing_baseline": "05.10"}, None, ES, -1000.0),
        ({"s2:processing_baseline": "03.01"}, None, ES, 0.0),
        ({"s2:processing_baseline": "02.09"}, [{"scale": 0.0001}], ES, 0.0),
        # Baseline only in the product URI.
        ({"s2:product_uri": "S2B_MSIL2A_20220301T101029_N0400_R022_T32TLR_20220301T133104.SAFE"},
         None, ES, -1000.0),
        ({"s2:product_uri": "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947.SAFE"},
         None, ES, 0.0),
        # Missing baseline: Collection-1 -> -1000; otherwise by date (2022-01-25 on -> -1000).
        ({"datetime": "2019-05-01T10:00:00Z"}, None, C1, -1000.0),
        ({"datetime": "2022-01-25T00:00:00Z"}, None, ES, -1000.0),
        ({"datetime": "2022-01-24T23:59:59Z"}, None, ES, 0.0),
        ({"datetime": "2018-07-01T10:00:00Z"}, None, "my-s2", 0.0),
        # Flag false and no baseline: the date decides (raster:bands is not trusted on ES v1).
        ({"earthsearch:boa_offset_applied": False, "datetime": "2023-05-01T00:00:00Z"}, RB0, ES,
         -1000.0),
    ],
)
def test_dn_offset_rule(props, bands, collection, expected):
    assert dn_offset_for(props, {"raster:bands": bands}, collection) == expected


@pytest.mark.parametrize("asset, expected", [
    ({"raster:offset": -0.1, "raster:scale": 0.0001}, -1000.0),  # STAC 1.1 (CDSE)
    ({"raster:offset": 0.0, "raster:scale": 0.0001}, 0.0),
    ({}, -1000.0),  # no offset field: processing:version 05.11 decides
])
def test_dn_offset_of_cdse_fields(asset, expected):
    """CDSE: STAC 1.1 raster:offset on the asset and processing:version as the baseline."""
    assert dn_offset_for({"processing:version": "05.11"}, asset, "sentinel-2-l2a") == expected


def test_dn_offset_rejects_odd_raster_bands_offset():
    with pytest.raises(StacError, match="neither -0.1 nor 0"):
        dn_offset_for({}, {"raster:bands": [{"scale": 0.0001, "offset": -0.2}]}, C1)


def test_real_earthsearch_item_offset():
    """The real 29RKH item (baseline 02.14, flag false) has no offset."""
    item = json.loads((__import__("pathlib").Path(__file__).parents[1] / "data" /
                       "earthsearch_29RKH_item.json").read_text())
    scene = scene_from_item(item)
    assert scene.dn_offset == 0.0
    assert scene.epsg == 32629 and scene.grid_code == "MGRS-29RKH"
    assert scene.href("red").endswith("/B04.tif") and scene.href("scl").endswith("/SCL.tif")


def test_planetary_computer_asset_names():
    item = {
        "id": "S2B_MSIL2A_20220301T101029_R022_T32TLR_20220301T133104",
        "collection": "sentinel-2-l2a",
        "bbox": [5.6, 45.0, 7.0, 46.0],
        "geometry": {"type": "Point", "coordinates": [6, 45.5]},
        "properties": {"datetime": "2022-03-01T10:10:29Z", "proj:code": "EPSG:32632",
                       "s2:processing_baseline": "04.00", "s2:mgrs_tile": "32TLR",
                       "eo:cloud_cover": 2.0},
        "assets": {k: {"href": f"https://pc.example/{k}.tif"}
                   for k in ("B02", "B03", "B04", "B08", "SCL", "visual")},
    }
    scene = scene_from_item(item)
    assert dict(scene.assets) == {"red": "https://pc.example/B04.tif",
                                  "green": "https://pc.example/B03.tif",
                                  "blue": "https://pc.example/B02.tif",
                                  "nir": "https://pc.example/B08.tif",
                                  "scl": "https://pc.example/SCL.tif"}
    assert scene.dn_offset == -1000.0 and scene.epsg == 32632 and scene.grid_code == "MGRS-32TLR"


# ---- reflectance --------------------------------------------------------------------------------


def test_to_reflectance_offset_clip_and_mask():
    dn = np.array([[[0, 500, 1000, 3000, 30000]]] * 3, dtype=np.uint16)
    refl, valid = to_reflectance(dn, -1000.0)
    assert refl.dtype == np.float32 and refl.shape == (3, 1, 5)
    assert valid.tolist() == [[False, True, True, True, True]]
    # (DN-1000)/1e4: 500 -> -0.05 clipped to 0; 3000 -> 0.2; 30000 -> 2.9 clipped to 1.5.
    np.testing.assert_allclose(refl[0, 0], [0.0, 0.0, 0.0, 0.2, 1.5], atol=1e-7)
    refl0, _ = to_reflectance(dn, 0.0)
    np.testing.assert_allclose(refl0[0, 0], [0.0, 0.05, 0.1, 0.3, 1.5], atol=1e-7)


def test_to_reflectance_dn0_in_one_band_invalidates_pixel():
    dn = np.full((3, 2, 2), 2000, np.uint16)
    dn[1, 0, 0] = 0
    refl, valid = to_reflectance(dn, 0.0)
    assert not valid[0, 0] and valid.sum() == 3
    assert (refl[:, 0, 0] == 0).all() and not np.isnan(refl).any()


@pytest.mark.parametrize("dtype", ["float32", "uint8", "bool"])
def test_to_reflectance_wrong_dtype(dtype):
    with pytest.raises(AssetError, match="expected Sentinel-2 DN as uint16"):
        to_reflectance(np.ones((3, 2, 2), dtype=dtype), 0.0)
