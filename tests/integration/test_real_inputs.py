"""Issue 13: real-shaped inputs (tests/support/real_inputs.py) through `basemap build`.

Each case either builds (exit 0, a valid COG, a STAC collection listing it) or fails with exit 2
and a message naming the file and the fix; never a traceback. Small settings: z14 only, 512-px
blocks, the `linear` renderer, in this process (`--workers 0`).
"""

import json
from pathlib import Path

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from tests.support.cli_runner import run_cli
from tests.support.real_inputs import BAD_CASES, CASES, build_bbox, make_catalog
from tests.support.stac_check import open_with_pystac_client, validate_stac

pytestmark = pytest.mark.slow


def _build(case, tmp_path, monkeypatch, capsys):
    catalog = make_catalog(tmp_path / "catalog", case)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["build", "--stac", str(catalog), "--bbox", build_bbox(case), "--zoom", "14",
         "--out", str(out), "--renderer", "linear", "--block-size", "512", "--workers", "0",
         "--tile-format", "png", "--quiet"], monkeypatch, capsys)
    assert "Traceback" not in stdout + stderr
    return code, stdout, stderr, out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_shaped_case_builds(case, tmp_path, monkeypatch, capsys):
    drivers = rasterio.drivers.raster_driver_extensions().values()
    if case.driver == "JP2OpenJPEG" and "JP2OpenJPEG" not in drivers:
        pytest.skip("this rasterio's GDAL has no JP2OpenJPEG driver (its error is tested below)")
    code, stdout, stderr, out = _build(case, tmp_path, monkeypatch, capsys)
    assert code == 0, stdout + stderr
    rec = json.loads((out / "build.json").read_text())
    statuses = {b["status"] for b in rec["blocks"]}
    assert statuses and statuses <= {"ok", "empty"}, rec["blocks"]
    assert len(rec["items"]) == len(case.dates)
    cogs = sorted((out / "cogs").rglob("*.tif")) if (out / "cogs").exists() else []
    if case.size[0] > 1 and case.size[1] > 1:  # a 10 m line may cover no z14 pixel centre
        assert cogs and "ok" in statuses
    for cog in cogs:
        assert cog_validate(str(cog), quiet=True)[0], cog
    if cogs:
        coll = json.loads((out / "stac" / "collection.json").read_text())
        assert sum(ln["rel"] == "item" for ln in coll["links"]) == len(cogs)


def test_sidecar_build_uses_both_dates_and_the_sidecar_georeferencing(tmp_path, monkeypatch,
                                                                      capsys):
    """The held-out check of issue 13, in small: a multi-date catalog whose assets keep their
    georeferencing in .aux.xml sidecars builds end to end (before: `CRSError: CRS is invalid:
    None` in every block, as GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR hid the sidecars)."""
    case = CASES[0]
    assert case.sidecar and len(case.dates) == 2
    code, stdout, stderr, out = _build(case, tmp_path, monkeypatch, capsys)
    assert code == 0, stdout + stderr
    rec = json.loads((out / "build.json").read_text())
    assert {b["status"] for b in rec["blocks"]} == {"ok"}
    assert all(b["scenes"] == 2 for b in rec["blocks"])
    # The basemap as STAC: validates offline, pystac-client lists every COG, the items link
    # their sources (entries of the manifest, for a static catalog).
    coll, items = validate_stac(out)
    cogs = sorted(p.relative_to(out).as_posix() for p in (out / "cogs").rglob("*.tif"))
    _, _, listed = open_with_pystac_client(out)
    assert sorted(Path(i.assets["data"].get_absolute_href()).resolve() for i in listed) == [
        (out / c).resolve() for c in cogs]
    manifest = json.loads((out / "manifest.json").read_text())["scenes"]
    for item in items:
        derived = [ln for ln in item["links"] if ln["rel"] == "derived_from"]
        assert [manifest[int(ln["href"].rsplit("/", 1)[1])]["id"] for ln in derived] == [
            ln["title"] for ln in derived] == rec["items"]


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_unusable_assets_exit_2_naming_the_file_and_the_fix(name, tmp_path, monkeypatch, capsys):
    case, fix = BAD_CASES[name]
    code, stdout, stderr, out = _build(case, tmp_path, monkeypatch, capsys)
    assert code == 2, stdout + stderr
    assert str(tmp_path / "catalog") in stderr and fix in stderr, stderr
    assert not (out / "cogs").exists()
