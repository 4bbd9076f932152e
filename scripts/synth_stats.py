#!/usr/bin/env python
"""Compare the synthetic world's per-class DN percentiles with real Sentinel-2 L2A samples.

Usage:
    python scripts/synth_stats.py REAL_DIR [--preset demo] [--seed 0] [--world OUT]

REAL_DIR holds the real samples (29RKH_20200219/ and bigearthnet/, see data/real-s2/README.md in
the project's shared data; they are not shipped with the repository). Prints a Markdown table of
p1/p50/p99 in DN (reflectance x 10000, offset removed) for R, G, B, NIR, synthetic clear-sky
pixels per landscape class (SCL 4/5/6/11) next to the real samples.
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
from pathlib import Path

import numpy as np
import pystac
import rasterio

from basemap.stac.radiometry import dn_offset_for
from basemap.synth.ground import Landscape
from basemap.synth.world import make_world

BANDS = ("B04", "B03", "B02", "B08")
ASSETS = ("red", "green", "blue", "nir")
REAL = (  # (label, bigearthnet patch suffix)
    ("real: Austrian arable (Jun)", "20170613T101031_87_48"),
    ("real: Irish arable/pasture (Jun)", "20170617T113321_36_85"),
    ("real: Irish pasture (Jun)", "20170617T113321_4_55"),
    ("real: Portuguese farm/forest (Dec)", "20171221T112501_56_35"),
    ("real: Finnish conifer/water (Sep)", "20170924T93020_69_24"),
    ("real: Finnish snow (Feb)", "20180204T94161_57_38"),
)


def _pct(values: np.ndarray) -> str:
    if values.size == 0:
        return "-"
    p1, p50, p99 = np.percentile(values, [1, 50, 99])
    return f"{p1:.0f}/{p50:.0f}/{p99:.0f}"


def real_rows(real_dir: Path) -> list[tuple[str, list[np.ndarray]]]:
    """Per-band valid DN of the real samples."""
    rows = []
    desert = real_dir / "29RKH_20200219"
    bands = []
    for b in BANDS:
        with rasterio.open(desert / f"{b}.tif") as src:
            a = src.read(1)
        bands.append(a[a > 0])
    rows.append(("real: 29RKH desert (Feb, 100 m)", bands))
    for label, suffix in REAL:
        folder = next(iter(glob.glob(str(real_dir / "bigearthnet" / f"*{suffix}"))))
        bands = []
        for b in BANDS:
            with rasterio.open(next(iter(glob.glob(f"{folder}/*_{b}.tif")))) as src:
                a = src.read(1)
            bands.append(a[a > 0])
        rows.append((label, bands))
    return rows


def synth_rows(catalog: Path) -> list[tuple[str, list[np.ndarray]]]:
    """Per-class per-band clear-sky DN (old-baseline scale) over every item of the world."""
    per_class: dict[int, list[list[np.ndarray]]] = {int(c): [[], [], [], []] for c in Landscape}
    for item in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True):
        d = json.loads(Path(item.get_self_href()).read_text())
        folder = Path(item.get_self_href()).parent
        with rasterio.open(folder / "SCL.tif") as src:
            scl = np.kron(src.read(1), np.ones((2, 2), np.uint8))
        with rasterio.open(folder / "landcover.tif") as src:
            lc = src.read(1)
        clear = np.isin(scl, (4, 5, 6, 11))
        for b, key in enumerate(ASSETS):
            offset = dn_offset_for(d["properties"], d["assets"][key].get("raster:bands"),
                                   "sentinel-2-l2a")
            with rasterio.open(folder / d["assets"][key]["href"]) as src:
                dn = src.read(1).astype(np.int32) + int(offset)
            for c in per_class:
                per_class[c][b].append(dn[clear & (lc == c)])
    return [(f"synth: {Landscape(c).name.lower()}", [np.concatenate(v) for v in bands])
            for c, bands in per_class.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real_dir", type=Path, help="folder with 29RKH_20200219/ and bigearthnet/")
    ap.add_argument("--preset", default="demo", choices=["test", "demo"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--world", type=Path, default=None,
                    help="an existing synthetic world's folder (else one is made in a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = (args.world / "catalog.json" if args.world
                   else make_world(Path(tmp), seed=args.seed, preset=args.preset))
        rows = synth_rows(catalog) + real_rows(args.real_dir)
    print("| sample | pixels | R p1/p50/p99 | G p1/p50/p99 | B p1/p50/p99 | NIR p1/p50/p99 |")
    print("|---|---:|---|---|---|---|")
    for label, bands in rows:
        print(f"| {label} | {bands[0].size} | " + " | ".join(_pct(b) for b in bands) + " |")


if __name__ == "__main__":
    main()
