"""basemap.output.media: the one media-type table."""

from basemap.output.media import PMTILES_TYPES, TILE_FORMATS, media_type, tile_media_type


def test_media_types_by_suffix():
    assert media_type("tiles/14/1/2.webp") == "image/webp"
    assert media_type("cogs/11/1/2.TIF").startswith("image/tiff; application=geotiff")
    assert media_type("basemap.pmtiles") == "application/vnd.pmtiles"
    assert media_type(".probe") == media_type("x.unknownext") == "application/octet-stream"
    assert media_type("notes.txt") == "text/plain"  # the platform's table for the rest


def test_every_tile_format_has_a_media_type_and_a_pmtiles_type():
    for ext in TILE_FORMATS.values():
        assert tile_media_type(ext).startswith("image/")
        assert tile_media_type(PMTILES_TYPES[ext]) == tile_media_type(ext)
