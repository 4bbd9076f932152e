"""BBox and ZoomRange parsing: docs/reliability.md, rows 1-4."""

import math
import warnings

import pytest

from basemap.errors import BasemapWarning, InputError
from basemap.types import MERCATOR_MAX_LAT, BBox, ZoomRange


@pytest.mark.parametrize(
    "text, field",
    [
        ("5,47,6,46", "south"),  # min > max in latitude
        ("5,-91,6,46", "south"),
        ("5,45,6,91", "north"),
        ("-181,45,6,46", "west"),
        ("5,45,181,46", "east"),
        ("nan,45,6,46", "west"),
        ("5,45,6", "four numbers"),
        ("5,x,6,46", "south"),
    ],
)
def test_bad_bbox_names_the_field(text, field):
    with pytest.raises(InputError, match=field):
        BBox.parse(text)


def test_bbox_crossing_antimeridian_splits_in_two():
    box = BBox.parse("179.5,-17,-179.5,-16")
    assert box.crosses_antimeridian
    parts = box.split_antimeridian()
    assert [p.as_tuple() for p in parts] == [(179.5, -17, 180, -16), (-180, -17, -179.5, -16)]


def test_bbox_beyond_mercator_is_clamped_with_warning():
    with pytest.warns(BasemapWarning, match="clamped"):
        box = BBox.parse("0,80,10,89")
    assert math.isclose(box.north, MERCATOR_MAX_LAT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BBox.parse("0,10,1,11").north == 11


@pytest.mark.parametrize("text", ["15-3", "-1", "0-17", "a-b", "3-"])
def test_bad_zoom_is_an_input_error(text):
    with pytest.raises(InputError):
        ZoomRange.parse(text)


def test_zoom_parses():
    assert list(ZoomRange.parse("0-14")) == list(range(15))
    assert ZoomRange.parse(" 12 ") == ZoomRange(12, 12)
