"""A build with no period, cloud limit or item count reads a bounded set of items, says which,
and records it (issue 30: the headline command searched the whole archive and never finished);
a block composites at most MAX_SCENES_PER_BLOCK scenes however many overlap it (issue 31, row 4).
"""

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rasterio.warp import transform_bounds

from basemap.stac.select import (
    DEFAULT_MAX_CLOUD,
    DEFAULT_MAX_ITEMS,
    MAX_SCENES_PER_BLOCK,
    default_period,
    last_complete_months,
    with_defaults,
)
from tests.support.cli_runner import run_cli
from tests.support.mini_world import COG_SIZE, make_item, write_cog

N_ITEMS = 150
EPSG = 32629


def test_last_complete_months():
    assert last_complete_months(date(2026, 12, 7)) == "2025-12-01/2026-11-30"
    assert last_complete_months(date(2026, 1, 1)) == "2025-01-01/2025-12-31"
    assert last_complete_months(date(2024, 3, 31), 1) == "2024-02-01/2024-02-29"


def test_the_default_period_of_a_static_catalog_ends_with_its_newest_item():
    scenes = [SimpleNamespace(datetime="2023-08-15T10:00:00Z"),
              SimpleNamespace(datetime="2021-01-02T10:00:00Z")]
    assert default_period(scenes, date(2026, 12, 7)) == "2022-09-01/2023-08-31"
    assert default_period(None, date(2026, 12, 7)) == "2025-12-01/2026-11-30"  # a STAC API


def test_defaults_fill_only_what_is_missing():
    d = with_defaults(None, None, None)
    assert (d.datetime, d.max_cloud, d.max_items) == (None, DEFAULT_MAX_CLOUD, DEFAULT_MAX_ITEMS)
    assert d.chosen == ("datetime", "max_cloud", "max_items") and "--datetime ../.." in d.text()
    given = with_defaults("../..", 100.0, 0)
    assert (given.datetime, given.max_cloud, given.max_items, given.chosen) == (
        None, None, None, ()) and given.text() == ""


@pytest.fixture(scope="module")
def overlapping_catalog(tmp_path_factory) -> Path:
    """150 items of one MGRS tile over the 3 years before today, every one over the same tiny
    COGs (an ItemCollection with relative hrefs), cloud cover 0-99 %."""
    root = tmp_path_factory.mktemp("overlapping")
    rng = np.random.default_rng(5)
    for name in ("B04", "B03", "B02"):
        write_cog(root / f"{name}.tif", rng.integers(1500, 4000, (COG_SIZE, COG_SIZE),
                                                     dtype=np.uint16), EPSG)
    write_cog(root / "SCL.tif", np.full((COG_SIZE // 2, COG_SIZE // 2), 4, np.uint8), EPSG)
    bbox = transform_bounds(EPSG, 4326, 300000, 2800000 - 10 * COG_SIZE,
                            300000 + 10 * COG_SIZE, 2800000)
    newest = datetime.now(timezone.utc) - timedelta(days=2)
    features = []
    for i in range(N_ITEMS):
        when = newest - timedelta(days=7.3 * i)
        spec = (when.strftime("%Y-%m-%dT%H:%M:%SZ"), float(rng.integers(0, 100)), "05.09", True,
                bbox, EPSG, "29RKH", None)
        item = make_item(f"S2A_29RKH_{when:%Y%m%d}_0_L2A", spec)
        for asset in item["assets"].values():
            asset["href"] = asset["href"].replace("./B08.tif", "./B04.tif")
        item["assets"].pop("nir")
        features.append(item)
    path = root / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _build(catalog: Path, out: Path, monkeypatch, capsys, *extra) -> tuple[int, str, dict]:
    items = json.loads(catalog.read_text())["features"]
    w, s, e, n = items[0]["bbox"]
    bbox = f"{w + 0.001},{s + 0.001},{e - 0.001},{n - 0.001}"
    code, _, err = run_cli(["build", "--stac", str(catalog), "--bbox", bbox, "--zoom", "8-12",
                            "--out", str(out), "--renderer", "linear", "--workers", "0",
                            "--block-size", "256", "--quiet", *extra], monkeypatch, capsys)
    record = json.loads((out / "build.json").read_text()) if (out / "build.json").exists() else {}
    return code, err, record


def test_no_period_reads_the_clearest_items_of_the_last_year(overlapping_catalog, tmp_path,
                                                             monkeypatch, capsys):
    """Before: every one of the 150 items was read (the whole archive, every cloud cover)."""
    code, err, record = _build(overlapping_catalog, tmp_path / "out", monkeypatch, capsys)
    assert code == 0, err
    assert "Defaults: --datetime" in err and "--max-items 8" in err
    assert record["defaults"] == ["datetime", "max_cloud", "max_items"]
    start, end = (date.fromisoformat(d) for d in record["datetime"].split("/"))
    assert (end - start).days in range(364, 366) and end.day >= 28  # 12 whole months
    items = {f["id"]: f["properties"] for f in json.loads(overlapping_catalog.read_text())[
        "features"]}
    in_period = sorted((p["eo:cloud_cover"], i) for i, p in items.items()
                       if start.isoformat() <= p["datetime"][:10] <= end.isoformat()
                       and p["eo:cloud_cover"] <= DEFAULT_MAX_CLOUD)
    assert record["items_read"] == DEFAULT_MAX_ITEMS == len(record["items"])
    clearest = {cloud for cloud, _ in in_period[:DEFAULT_MAX_ITEMS]}
    assert {items[i]["eo:cloud_cover"] for i in record["items"]} == clearest
    assert all(b["scenes"] <= DEFAULT_MAX_ITEMS for b in record["blocks"])
    assert all(b["status"] == "ok" for b in record["blocks"])


def test_a_block_composites_a_bounded_number_of_scenes(overlapping_catalog, tmp_path,
                                                       monkeypatch, capsys, caplog):
    """Before: every overlapping item was composited in every block (RSS grew ~20 MB per item
    per block, unbounded)."""
    code, err, record = _build(overlapping_catalog, tmp_path / "out", monkeypatch, capsys,
                               "--datetime", "../..", "--max-items", "0", "--max-cloud", "100")
    assert code == 0, err
    assert record["defaults"] == [] and record["items_read"] == N_ITEMS
    assert max(b["scenes"] for b in record["blocks"]) == MAX_SCENES_PER_BLOCK
    assert f"compositing the {MAX_SCENES_PER_BLOCK} least cloudy" in caplog.text
