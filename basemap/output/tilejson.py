"""TileJSON 3.0.0 documents: the one builder, for `basemap build` and `basemap tiles`."""

from __future__ import annotations

from basemap import __version__
from basemap.output.media import TILE_FORMATS

#: Attribution required for products made from Copernicus Sentinel data.
ATTRIBUTION = "Contains modified Copernicus Sentinel data"


def tilejson(name: str, tile_format: str, bounds: tuple[float, float, float, float],
             minzoom: int, maxzoom: int, center_zoom: int, *, description: str | None = None,
             attribution: str | None = None) -> dict:
    """TileJSON for ``tiles/{z}/{x}/{y}.<ext>`` beside it (template relative to its folder).

    Args:
        name: the layer's name.
        tile_format: webp, png or jpeg (:data:`basemap.output.media.TILE_FORMATS`).
        bounds: WGS84 (west, south, east, north); west > east crosses the antimeridian.
        minzoom, maxzoom: the zooms written.
        center_zoom: the zoom of ``center``.
        description: with ``version`` (the package's), for a build's own tiles.
        attribution: e.g. :data:`ATTRIBUTION` for tiles made from Sentinel data.
    """
    w, s, e, n = bounds
    cx = (w + e) / 2 if w <= e else ((w + e + 360) / 2 + 180) % 360 - 180
    doc: dict = {"tilejson": "3.0.0", "name": name}
    if description is not None:
        doc.update(description=description, version=__version__)
    if attribution is not None:
        doc["attribution"] = attribution
    doc.update({
        "scheme": "xyz",
        "tiles": [f"tiles/{{z}}/{{x}}/{{y}}.{TILE_FORMATS[tile_format]}"],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [w, s, e, n],
        "center": [cx, (s + n) / 2, center_zoom],
    })
    return doc
