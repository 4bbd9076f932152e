"""Small value types shared by the CLI and the library: bounding boxes and zoom ranges."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from basemap.errors import BasemapWarning, InputError

#: Latitude limit of Web Mercator (EPSG:3857); a bbox beyond it is clamped with a warning.
MERCATOR_MAX_LAT = 85.0511287798066
#: Highest zoom the pipeline builds (z14 is ~9.55 m/px at the equator, Sentinel-2's 10 m).
MAX_SUPPORTED_ZOOM = 16


@dataclass(frozen=True)
class BBox:
    """A WGS84 bounding box (west, south, east, north); west > east crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        """Parse "W,S,E,N" and validate it (docs/reliability.md, rows 1-3).

        Raises:
            InputError: naming the bad field, for NaN, out-of-range or inverted latitudes.
        """
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4:
            raise InputError(
                f"--bbox must be four numbers W,S,E,N (got {text!r}); e.g. --bbox 5.9,45.9,6.1,46.1"
            )
        names = ("west", "south", "east", "north")
        values = []
        for name, part in zip(names, parts, strict=True):
            try:
                value = float(part)
            except ValueError:
                raise InputError(f"--bbox {name} is not a number: {part!r}") from None
            if math.isnan(value) or math.isinf(value):
                raise InputError(f"--bbox {name} must be a finite number, got {part!r}")
            values.append(value)
        return cls(*values).validated()

    def validated(self) -> BBox:
        """Check ranges; clamp latitudes to the Web Mercator limit with a warning."""
        for name in ("west", "east"):
            v = getattr(self, name)
            if not -180.0 <= v <= 180.0:
                raise InputError(f"--bbox {name}={v} is outside -180..180 degrees of longitude")
        for name in ("south", "north"):
            v = getattr(self, name)
            if not -90.0 <= v <= 90.0:
                raise InputError(f"--bbox {name}={v} is outside -90..90 degrees of latitude")
        if self.south >= self.north:
            raise InputError(
                f"--bbox south={self.south} must be less than north={self.north} "
                "(order is W,S,E,N)"
            )
        if self.west == self.east:
            raise InputError(f"--bbox west and east are equal ({self.west}): the box has no width")
        south = max(self.south, -MERCATOR_MAX_LAT)
        north = min(self.north, MERCATOR_MAX_LAT)
        if (south, north) != (self.south, self.north):
            warnings.warn(
                f"latitudes clamped to the Web Mercator limit +-{MERCATOR_MAX_LAT:.4f}",
                BasemapWarning,
                stacklevel=2,
            )
            if south >= north:
                raise InputError("--bbox lies entirely beyond the Web Mercator latitude limit")
        return BBox(self.west, south, self.east, north)

    @property
    def crosses_antimeridian(self) -> bool:
        """True when west > east (STAC convention for a box over 180 degrees)."""
        return self.west > self.east

    def split_antimeridian(self) -> list[BBox]:
        """One box, or two boxes either side of 180 degrees when the box crosses it."""
        if not self.crosses_antimeridian:
            return [self]
        return [
            BBox(self.west, self.south, 180.0, self.north),
            BBox(-180.0, self.south, self.east, self.north),
        ]

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(west, south, east, north)."""
        return (self.west, self.south, self.east, self.north)

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in self.as_tuple())


@dataclass(frozen=True)
class ZoomRange:
    """An inclusive range of web-map zoom levels, e.g. 0-14."""

    min: int
    max: int

    @classmethod
    def parse(cls, text: str) -> ZoomRange:
        """Parse "A-B" or "B" (docs/reliability.md, row 4: never silently swapped)."""
        match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", str(text))
        if match is None:
            raise InputError(
                f"--zoom must be 'MIN-MAX' with whole numbers, e.g. --zoom 0-14 (got {text!r})"
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        return cls(lo, hi).validated()

    def validated(self) -> ZoomRange:
        """Check the range; raise InputError with the fix."""
        if self.min < 0 or self.max < 0:
            raise InputError(f"--zoom levels must be >= 0 (got {self.min}-{self.max})")
        if self.max > MAX_SUPPORTED_ZOOM:
            raise InputError(
                f"--zoom max {self.max} is above the supported {MAX_SUPPORTED_ZOOM} "
                "(Sentinel-2's 10 m pixels are z14)"
            )
        if self.min > self.max:
            raise InputError(
                f"--zoom {self.min}-{self.max} is reversed: write --zoom {self.max}-{self.min}"
            )
        return self

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.min, self.max + 1))

    def __str__(self) -> str:
        return f"{self.min}-{self.max}"
