"""Peak memory of building one fully covered block from catalogs of 8, 64 and 1,000 items.

    python benchmarks/block_memory.py --items 8,64,1000 \\
        --json benchmarks/results/block_memory.json

The demo world (``basemap synth``'s ``demo`` preset, made once in ``--work``); one block of
``--block-size`` px at z14 inside one of its tiles, so every item covers all of it. A catalog
of N items is N copies of that tile's items (each date again, a day later each time, with its
own id and cloud cover), a static STAC catalog whose assets are the world's files. Each is built
with ``basemap build`` (linear renderer, one worker, every item allowed: ``--max-items 0``) in
a subprocess; the peak RSS of its process tree is sampled every 0.1 s. The build composites at
most :data:`basemap.stac.select.MAX_SCENES_PER_BLOCK` items per block (the clearest), and the
streaming composite keeps at most 8 candidates per pixel: the peak should not grow with N.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, table, write_json  # noqa: E402
from pipeline import build_command, ensure_world, run_build  # noqa: E402


def many_items(world: Path, tile_items: list[dict], n: int, out: Path) -> Path:
    """A static catalog of ``n`` copies of ``tile_items`` (dates a day apart), assets absolute."""
    import pystac

    collection = pystac.Collection(
        id="sentinel-2-l2a", description=f"{n} items over one tile", license="CC-BY-4.0",
        extent=pystac.Extent(pystac.SpatialExtent([tile_items[0]["bbox"]]),
                             pystac.TemporalExtent([[None, None]])))
    start = dt.datetime(2026, 1, 1, 10, 30, tzinfo=dt.timezone.utc)
    for k in range(n):
        item = json.loads(json.dumps(tile_items[k % len(tile_items)]))
        when = start + dt.timedelta(days=k)
        item["id"] = f"{item['id']}-copy{k:04d}"
        item["properties"]["datetime"] = when.isoformat().replace("+00:00", "Z")
        item["properties"]["eo:cloud_cover"] = round(5 + (k * 37) % 60, 1)
        item["links"] = []
        for asset in item["assets"].values():
            asset["href"] = str((world / asset["href"]).resolve()) if not Path(
                asset["href"]).is_absolute() else asset["href"]
        collection.add_item(pystac.Item.from_dict(item, preserve_dict=True, migrate=False))
    catalog = pystac.Catalog(id=f"items-{n}", description=f"{n} overlapping items")
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(out))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return out / "catalog.json"


def tile_items(world: Path) -> list[dict]:
    """The items of the world's first tile (every date), their asset hrefs made absolute."""
    items = []
    for path in sorted(world.rglob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("type") == "Feature":
            for asset in doc["assets"].values():
                asset["href"] = str((path.parent / asset["href"]).resolve())
            items.append(doc)
    first = items[0]["properties"].get("grid:code")
    return [i for i in items if i["properties"].get("grid:code") == first]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    from basemap.types import BBox

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", default="8,64,1000", help="catalog sizes, comma-separated")
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--preset", default="demo", choices=("test", "demo", "season"),
                   help="the synthetic world (test: a smoke run; its tiles are 3 km)")
    p.add_argument("--work", default=None, help="scratch folder, keeps the world between runs")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-block-memory-"))
    world = ensure_world(work, args.preset).parent
    items = tile_items(world)
    west, south, east, north = items[0]["bbox"]
    lon, lat = (west + east) / 2, (south + north) / 2
    bbox = BBox(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001)  # one block at z14
    rows = []
    for n in (int(v) for v in args.items.split(",")):
        catalog = many_items(world, items, n, work / f"items-{n}")
        out = work / f"out-{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = build_command(bbox, out, catalog, "14-14", renderer="linear",
                            block_size=args.block_size, workers=1, read_root=str(world))
        seconds, peak = run_build(cmd)
        record = json.loads((out / "build.json").read_text())
        rows.append({"items": n, "blocks": len(record["blocks"]),
                     "scenes_per_block": max(b["scenes"] for b in record["blocks"]),
                     "peak_rss_gb": round(peak / 1e9, 3), "seconds": round(seconds, 1)})
    base = rows[0]["peak_rss_gb"]
    for row in rows:
        row["peak_over_first"] = round(row["peak_rss_gb"] / base, 3)
    result = header() | {"benchmark": "block_memory", "preset": args.preset,
                         "bbox": list(bbox.as_tuple()),
                         "block_size": args.block_size, "rows": rows}
    print(table(rows, ["items", "blocks", "scenes_per_block", "peak_rss_gb", "peak_over_first",
                       "seconds"]))
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
