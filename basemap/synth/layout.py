"""The synthetic world's presets: sizes, dates and layout (docs/synthetic-world.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from basemap.errors import InputError

Preset = Literal["test", "demo", "season"]

#: Centre of the world: the UTM zone edge between 31 and 32 (6 E), at 45 N.
LON0, LAT0 = 6.0, 45.0

#: Metres per degree at the centre (local equirectangular "world metres").
KX = 111319.49 * math.cos(math.radians(LAT0))

KY = 111132.95

@dataclass(frozen=True)
class Layout:
    """Geometry and sizes of one preset (pixels are 10 m)."""

    tile_px: int  # tile width and height at 10 m (even: SCL is 20 m)
    overlap_px: int  # overlap of neighbouring tiles in a zone (~9%)
    cols: int  # tiles per zone, west to east
    zone_reach_m: float  # how far each zone's tiles reach past 6 E into the other zone
    dates: tuple[tuple[str, str], ...]  # (datetime, processing baseline)
    blocksize: int  # COG internal tile size
    half_x: float  # half extent of the world's layout (world metres)
    half_y: float
    shadow_m: float  # cloud-shadow displacement
    cloud_scale_m: float  # size of cloud structures
    bbox_margin: float  # fraction of the covered area left out of world_bbox

PRESETS: dict[str, Layout] = {
    "test": Layout(
        tile_px=300, overlap_px=27, cols=2, zone_reach_m=2300.0,
        dates=(("2020-07-14T10:37:21.024000Z", "02.14"), ("2023-07-24T10:37:19.031000Z", "05.09")),
        blocksize=128, half_x=3200.0, half_y=1500.0, shadow_m=200.0, cloud_scale_m=700.0,
        bbox_margin=0.2,
    ),
    "demo": Layout(
        tile_px=1800, overlap_px=162, cols=2, zone_reach_m=9000.0,
        dates=(
            ("2020-07-14T10:37:21.024000Z", "02.14"),
            ("2022-07-19T10:37:18.012000Z", "04.00"),
            ("2023-07-24T10:37:19.031000Z", "05.09"),
        ),
        blocksize=512, half_x=26000.0, half_y=9000.0, shadow_m=900.0, cloud_scale_m=3500.0,
        bbox_margin=0.12,
    ),
    # A season of imagery at half the demo's scale: six summer dates, as a region's catalog has
    # them (benchmarks/composite_leaks.py measures compositing on it).
    "season": Layout(
        tile_px=900, overlap_px=82, cols=2, zone_reach_m=4500.0,
        dates=tuple((f"2023-{m:02d}-{d:02d}T10:37:19.031000Z", "05.09")
                    for m, d in ((6, 4), (6, 19), (7, 9), (7, 24), (8, 8), (8, 23))),
        blocksize=256, half_x=13000.0, half_y=4500.0, shadow_m=450.0, cloud_scale_m=1750.0,
        bbox_margin=0.12,
    ),
}

def layout(preset: str) -> Layout:
    try:
        return PRESETS[preset]
    except KeyError:
        raise InputError(
            f"unknown synth preset {preset!r}; choose one of {', '.join(PRESETS)}"
        ) from None
