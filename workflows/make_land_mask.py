"""Derive the coarse land mask that `basemap plan --land-only` ships with (run once, offline).

Source: the `global-land-mask` package (MIT licence, Todd Karin), a 1 km (30 arc-second) land/sea
mask extracted from NOAA's GLOBE elevation data. We reduce it to 0.25 degree cells, a cell being
land when ANY of its 1 km pixels is land (so small islands survive), and pack it into
basemap/data/land_mask_0p25.npz (about 100 kB). Lakes count as land in the source.

Usage: pip install global-land-mask && python workflows/make_land_mask.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CELL_DEG = 0.25
OUT = Path(__file__).resolve().parents[1] / "basemap" / "data" / "land_mask_0p25.npz"


def main() -> None:
    """Load the 1 km mask, reduce it by any-land to 0.25 degree, save packed bits."""
    from global_land_mask import globe

    ocean = globe._mask  # (21600, 43200) bool, True = ocean; rows follow globe._lat
    lat = globe._lat
    if lat[0] < lat[-1]:  # make row 0 the northernmost row
        ocean = ocean[::-1]
    step = int(round(CELL_DEG * ocean.shape[1] / 360.0))  # 30 source pixels per cell
    rows, cols = ocean.shape[0] // step, ocean.shape[1] // step
    land = np.zeros((rows, cols), dtype=bool)
    for r in range(rows):  # row by row: the full mask is ~1 GB as bool
        band = ~ocean[r * step:(r + 1) * step]
        land[r] = band.reshape(step, cols, step).any(axis=(0, 2))
    # Row 0 covers 90N..89.75N (north up), column 0 covers 180W..179.75W.
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, land=np.packbits(land, axis=1), shape=np.array(land.shape),
                        cell_deg=np.array(CELL_DEG))
    print(f"{OUT}: {land.shape}, land fraction of cells {land.mean():.3f}, "
          f"{OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
