"""basemap.stac.select: the season and the least cloudy N items per MGRS tile."""

from __future__ import annotations

import json

import pytest

from basemap.errors import InputError
from basemap.stac.scene import Scene
from basemap.stac.search import search as stac_search
from basemap.stac.select import Selection
from basemap.synth.tiles import world_bbox
from tests.support.cli_runner import run_cli


def _scene(id_, when, cloud, tile="31TGK", epsg=32631):
    return Scene(id=id_, collection="c", datetime=when, updated=None, epsg=epsg,
                 bbox=(1.0, 2.0, 3.0, 4.0), footprint="{}", assets=(), dn_offset=0.0,
                 processing_baseline=None, cloud_cover=cloud, grid_code=tile)  # fmt: skip


SCENES = [
    _scene("a", "2023-01-10T10:00:00Z", 5.0),
    _scene("b", "2023-06-10T10:00:00Z", 40.0),
    _scene("c", "2023-07-10T10:00:00Z", 2.0),
    _scene("d", "2023-12-10T10:00:00Z", None),
    _scene("e", "2024-07-10T10:00:00Z", 2.0),
    _scene("f", "2023-07-11T10:00:00Z", 1.0, tile=None, epsg=32632),
]


def test_the_default_keeps_everything_in_order():
    assert Selection().apply(SCENES) == SCENES


def test_least_cloudy_per_tile_ties_to_the_newest_and_keeps_the_order():
    kept = Selection(max_items=2).apply(SCENES)
    # 31TGK: c and e (2 %), the tie goes to the newest first, then a (5 %) is third; the zone 32
    # scene without a grid code is its own group
    assert [s.id for s in kept] == ["c", "e", "f"]
    assert [s.id for s in Selection(max_items=1).apply(SCENES)] == ["e", "f"]
    assert [s.id for s in Selection(max_items=4).apply(SCENES)] == ["a", "b", "c", "e", "f"]


def test_months_select_a_season_and_wrap_through_the_new_year():
    summer = Selection(months=Selection.parse_months("6-8")).apply(SCENES)
    assert [s.id for s in summer] == ["b", "c", "e", "f"]
    winter = Selection(months=Selection.parse_months("12-1")).apply(SCENES)
    assert [s.id for s in winter] == ["a", "d"]
    assert Selection.parse_months("7") == (7, 7)


@pytest.mark.parametrize("text", ["0-3", "6-13", "june", "6..8", ""])
def test_bad_months_are_input_errors(text):
    with pytest.raises(InputError, match="--months"):
        Selection.parse_months(text)


def test_max_items_below_one_is_an_input_error():
    with pytest.raises(InputError, match="--max-items"):
        Selection(max_items=0)


def test_build_reads_only_the_selected_items(synth_world, tmp_path, monkeypatch, capsys):
    """A real build of the test world (2 dates per tile) with --max-items 1: one item per tile
    in build.json and the manifest, the policy recorded, every covered pixel still filled."""
    bbox = ",".join(str(v) for v in world_bbox("test").as_tuple())
    out = tmp_path / "out"
    code, _, err = run_cli(["build", "--bbox", bbox, "--zoom", "12-13", "--out", str(out),
                            "--stac", str(synth_world), "--renderer", "linear",
                            "--max-items", "1", "--workers", "0", "--quiet"], monkeypatch, capsys)
    assert code == 0, err
    record = json.loads((out / "build.json").read_text())
    assert record["max_items"] == 1 and record["months"] is None
    found = stac_search(str(synth_world), world_bbox("test"))
    clearest = {}
    for s in found:
        if s.grid_code not in clearest or s.cloud_cover < clearest[s.grid_code].cloud_cover:
            clearest[s.grid_code] = s
    assert len(found) > len(clearest) >= 2
    assert sorted(record["items"]) == sorted(s.id for s in clearest.values())
    assert record["filled_fraction"] >= 0 and all(b["status"] == "ok" for b in record["blocks"])
    code, _, err = run_cli(["build", "--bbox", bbox, "--out", str(tmp_path / "x"), "--stac",
                            str(synth_world), "--months", "13-2"], monkeypatch, capsys)
    assert code == 2 and "--months" in err
