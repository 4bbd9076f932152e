"""Which of the found items a build reads: a period, a season, and the least cloudy N per MGRS
tile; and the defaults that make a build without them bounded.

A region with years of Sentinel-2 has hundreds of items per tile; reading all of them costs I/O
and time for no better pixels. The policy, applied after the search and before the manifest is
frozen (so a rerun reads the same items):

1. **season** (``months``): keep items whose acquisition month is in ``first..last``, any year
   (``11-2`` wraps through the new year, for the southern summer);
2. **per tile** (``max_items``): group the items by MGRS tile (``grid:code``, else the EPSG code),
   keep the ``max_items`` with the lowest ``eo:cloud_cover`` (items without it last, ties to the
   most recent): the Sentinel Hub / CDSE mosaics and EOX cloudless likewise draw a few of the
   clearest observations per tile and period.

**Defaults** (:func:`with_defaults`): a build given no period, cloud limit or item count reads the
:data:`DEFAULT_MAX_ITEMS` clearest items per MGRS tile with at most :data:`DEFAULT_MAX_CLOUD` %
cloud of the last 12 complete months. A year, as EOX cloudless composites, because it is the
same for both hemispheres (a world run has no seam of seasons at the equator) and every place
has its clearest days in it; the clearest few per tile, as the CDSE and Sentinel Hub mosaics
draw. Whatever was chosen is printed and recorded in build.json; each can be overridden
(``--datetime ../..`` for the whole archive, ``--max-items 0`` for every item).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from basemap.errors import InputError
from basemap.stac.radiometry import parse_instant
from basemap.stac.scene import Scene
from basemap.stac.search import parse_datetime

#: Items per MGRS tile read by default (the clearest of the period).
DEFAULT_MAX_ITEMS = 8
#: Cloud cover (%) above which items are not read by default.
DEFAULT_MAX_CLOUD = 70.0
#: Most scenes one block composites (its least cloudy; a safety net beyond the per-tile limit).
MAX_SCENES_PER_BLOCK = 32


def last_complete_months(today: date, months: int = 12) -> str:
    """The STAC interval of the ``months`` complete calendar months before ``today``."""
    end = today.replace(day=1) - timedelta(days=1)
    year, month = divmod(end.year * 12 + end.month - 1 - (months - 1), 12)
    return f"{date(year, month + 1, 1).isoformat()}/{end.isoformat()}"


@dataclass(frozen=True)
class Defaults:
    """The search and read policy of a build after the defaults were applied."""

    datetime: str | None
    max_cloud: float | None
    max_items: int | None
    chosen: tuple[str, ...]  # the options that took their default

    def text(self) -> str:
        """One line saying what was chosen and how to override it ('' when nothing was)."""
        if not self.chosen:
            return ""
        said = {"datetime": lambda: "--datetime the last 12 complete months (of a static "
                                    "catalog: up to its newest item)",
                "max_cloud": lambda: f"--max-cloud {self.max_cloud:g}",
                "max_items": lambda: f"--max-items {self.max_items} (the clearest per MGRS tile)"}
        return ("Defaults: " + ", ".join(said[k]() for k in self.chosen) +
                ". Override any of them (--datetime ../.. for the whole archive, --max-items 0 "
                "for every item).")


def with_defaults(datetime: str | None, max_cloud: float | None,
                  max_items: int | None) -> Defaults:  # fmt: skip
    """Fill in what the user left out (see the module docstring); ``max_items`` 0 means all.
    A default period stays None here: it is decided with the search (:func:`default_period`)."""
    chosen = []
    if datetime is None:
        chosen.append("datetime")
    elif parse_datetime(datetime) == (None, None):  # "../..": the whole archive, no filter
        datetime = None
    if max_cloud is None:
        max_cloud = DEFAULT_MAX_CLOUD
        chosen.append("max_cloud")
    if max_items is None:
        max_items = DEFAULT_MAX_ITEMS
        chosen.append("max_items")
    no_filter = max_cloud >= 100.0  # every cover (items without one are kept anyway)
    return Defaults(datetime, None if no_filter else max_cloud, max_items or None, tuple(chosen))


def default_period(scenes: list[Scene] | None, today: date) -> str:
    """The default period: the last 12 complete months before ``today`` (a STAC API: pass
    None), or the 12 months up to the month of the newest of ``scenes`` (a static catalog)."""
    newest = [w for w in (parse_instant(s.datetime) for s in scenes or ()) if w is not None]
    if newest:
        today = (max(newest).date().replace(day=28) + timedelta(days=4)).replace(day=1)
    return last_complete_months(today)


def within(scenes: list[Scene], period: str) -> list[Scene]:
    """The scenes acquired in the STAC interval ``period`` (``A/B``, dates included)."""
    first, last = period.split("/")
    return [s for s in scenes if first <= s.datetime[:10] <= last]


def clearest(scenes: list[Scene], n: int) -> list[Scene]:
    """The ``n`` least cloudy of ``scenes`` (no cloud cover last, ties to the most recent), in
    their original order."""
    newest_first = sorted(scenes, key=lambda s: s.datetime, reverse=True)
    ranked = sorted(newest_first, key=lambda s: (s.cloud_cover is None, s.cloud_cover or 0.0))
    chosen = {s.id for s in ranked[:n]}
    return [s for s in scenes if s.id in chosen]


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
        chosen = {s.id for group in tiles.values() for s in clearest(group, self.max_items)}
        return [s for s in kept if s.id in chosen]
