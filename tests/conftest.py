"""Shared test fixtures: small rasters, and real servers on 127.0.0.1."""
