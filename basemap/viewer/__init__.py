"""The web map viewer: `basemap serve` and its static page."""
