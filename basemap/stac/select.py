"""Which of the found items a build reads: a season, and the least cloudy N per MGRS tile.

A region with years of Sentinel-2 has hundreds of items per tile; reading all of them costs I/O
and time for no better pixels. The policy, applied after the search and before the manifest is
frozen (so a rerun reads the same items):

1. **season** (``months``): keep items whose acquisition month is in ``first..last``, any year
   (``11-2`` wraps through the new year, for the southern summer);
2. **per tile** (``max_items``): group the items by MGRS tile (``grid:code``, else the EPSG code),
   keep the ``max_items`` with the lowest ``eo:cloud_cover`` (items without it last, ties to the
   most recent): the Sentinel Hub / CDSE mosaics and EOX cloudless likewise draw a few of the
   clearest observations per tile and period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from basemap.errors import InputError
from basemap.stac.radiometry import parse_instant
from basemap.stac.scene import Scene


@dataclass(frozen=True)
class Selection:
    """The read policy of a build; the default keeps every item."""

    max_items: int | None = None
    months: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.max_items is not None and self.max_items < 1:
            raise InputError(f"--max-items must be >= 1, got {self.max_items}")
        if self.months is not None and not all(1 <= m <= 12 for m in self.months):
            raise InputError(f"--months must be two months 1..12, got {self.months}")

    @staticmethod
    def parse_months(text: str | None) -> tuple[int, int] | None:
        """``"6-8"`` -> (6, 8); ``"11-2"`` wraps; ``"7"`` is one month; None stays None."""
        if text is None:
            return None
        m = re.fullmatch(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2}))?\s*", text)
        if not m:
            raise InputError(f"--months must be FIRST-LAST months, e.g. 6-8 or 11-2, got {text!r}")
        first = int(m.group(1))
        last = int(m.group(2) or first)
        if not (1 <= first <= 12 and 1 <= last <= 12):
            raise InputError(f"--months must be two months 1..12, got {text!r}")
        return first, last

    def to_dict(self) -> dict:
        """The policy as recorded in build.json and the manifest's search."""
        return {"max_items": self.max_items,
                "months": list(self.months) if self.months else None}  # fmt: skip

    def in_season(self, scene: Scene) -> bool:
        """True when the scene's month is in the season (always, without one)."""
        if self.months is None:
            return True
        when = parse_instant(scene.datetime)
        if when is None:
            return False
        first, last = self.months
        if first <= last:
            return first <= when.month <= last
        return when.month >= first or when.month <= last

    def apply(self, scenes: list[Scene]) -> list[Scene]:
        """The selected scenes, in their original order."""
        kept = [s for s in scenes if self.in_season(s)]
        if self.max_items is None:
            return kept
        tiles: dict[str, list[Scene]] = {}
        for s in kept:
            tiles.setdefault(s.grid_code or f"EPSG:{s.epsg}", []).append(s)
        chosen: set[str] = set()
        for group in tiles.values():
            newest_first = sorted(group, key=lambda s: s.datetime, reverse=True)
            ranked = sorted(newest_first, key=lambda s: (s.cloud_cover is None,
                                                         s.cloud_cover or 0.0))  # fmt: skip
            chosen.update(s.id for s in ranked[: self.max_items])
        return [s for s in kept if s.id in chosen]
