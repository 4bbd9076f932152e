"""What a build searches and reads, as one frozen value (:class:`Query`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from basemap.redact import redact_url
from basemap.stac.select import Selection


@dataclass(frozen=True)
class Query:
    """A build's search and read policy.

    Attributes:
        source: STAC API URL, or a static catalog / ItemCollection / item JSON.
        collection: collection id (None: the Sentinel-2 L2A items of one collection).
        datetime: STAC interval (None: every date, or the default period when ``defaults``
            names it).
        max_cloud: keep items with at most this ``eo:cloud_cover`` (None: every cover).
        selection: the season and the least cloudy N per MGRS tile.
        read_roots: local folders the catalog's hrefs may point into besides its own.
        defaults: the options that took their default (:func:`basemap.stac.select.with_defaults`).
    """

    source: str
    collection: str | None = None
    datetime: str | None = None
    max_cloud: float | None = None
    selection: Selection = field(default_factory=Selection)
    read_roots: tuple[str, ...] = ()
    defaults: tuple[str, ...] = ()

    def record(self, bbox: tuple[float, ...], datetime: str | None) -> dict:
        """The search as recorded in build.json and keyed in the ledger's manifests (secrets
        redacted), with the box searched and the period used."""
        return {"stac": redact_url(self.source), "bbox": list(bbox), "datetime": datetime,
                "max_cloud": self.max_cloud, "collection": self.collection,
                **self.selection.to_dict(), "defaults": list(self.defaults)}
