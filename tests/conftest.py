"""Shared test fixtures: small rasters, and real servers on 127.0.0.1."""

import pytest


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory):
    """The synthetic Sentinel-2 world (test preset, seed 0), built once per session.

    Returns the path of its static STAC catalog (OUT/catalog.json); items live under
    OUT/sentinel-2-l2a/<item-id>/ with relative COG hrefs. Treat it as read-only.
    """
    from basemap.synth import make_world

    return make_world(tmp_path_factory.mktemp("synth_world"), seed=0, preset="test")
