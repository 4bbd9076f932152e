"""The synthetic Sentinel-2 L2A world (`basemap synth`, the demo and the tests), by concern:
layout, noise, ground, sky, tiles, items, world."""
