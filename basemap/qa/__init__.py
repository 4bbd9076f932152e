"""Quality: `basemap evaluate` (seams, colour maths, the report)."""
