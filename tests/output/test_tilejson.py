"""basemap.output.tilejson: the one TileJSON builder."""

from basemap.output.tilejson import ATTRIBUTION, tilejson


def test_a_build_tilejson():
    doc = tilejson("basemap", "jpeg", (5.0, 45.0, 7.0, 46.0), 0, 14, 10,
                   description="d", attribution=ATTRIBUTION)
    assert doc["tiles"] == ["tiles/{z}/{x}/{y}.jpg"] and doc["tilejson"] == "3.0.0"
    assert doc["center"] == [6.0, 45.5, 10] and doc["attribution"] == ATTRIBUTION
    assert "version" in doc


def test_across_the_antimeridian_and_without_attribution():
    doc = tilejson("raster", "png", (170.0, -10.0, -170.0, 10.0), 2, 8, 2)
    assert doc["center"][0] == 180.0 or doc["center"][0] == -180.0
    assert "attribution" not in doc and "version" not in doc
