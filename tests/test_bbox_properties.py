"""BBox.parse on any input: a BBox or an InputError, never another exception (property tests)."""

from __future__ import annotations

import math
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

from basemap.errors import BasemapWarning, InputError
from basemap.types import MERCATOR_MAX_LAT, BBox

NUMBER_TEXT = (st.floats().map(repr) | st.integers(-400, 400).map(str)
               | st.sampled_from(["nan", "-inf", "1e400", "", " ", "1_0", "0x10", "١٢", "--1"]))


def _parse(text):
    """BBox.parse(text) -> BBox or None (InputError); anything else propagates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BasemapWarning)
        try:
            return BBox.parse(text)
        except InputError:
            return None


def _check(box):
    if box is None:
        return
    assert all(math.isfinite(v) for v in box.as_tuple())
    assert -180 <= box.west <= 180 and -180 <= box.east <= 180 and box.west != box.east
    assert -MERCATOR_MAX_LAT <= box.south < box.north <= MERCATOR_MAX_LAT


@given(st.text())
@settings(max_examples=500)
def test_any_text(text):
    _check(_parse(text))


@given(st.lists(NUMBER_TEXT, min_size=3, max_size=5), st.sampled_from([",", ", ", " ,", ";"]))
@settings(max_examples=500)
def test_number_like_fields(fields, sep):
    _check(_parse(sep.join(fields)))


@given(st.tuples(*[st.floats(allow_nan=True, allow_infinity=True)] * 4))
@settings(max_examples=500)
def test_any_floats(values):
    box = _parse(",".join(repr(v) for v in values))
    _check(box)
    w, s, e, n = values
    if box is not None:  # accepted: the given numbers, latitudes only clamped
        assert (box.west, box.east) == (w, e)
        assert box.south == max(s, -MERCATOR_MAX_LAT) and box.north == min(n, MERCATOR_MAX_LAT)
