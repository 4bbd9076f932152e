"""Outputs: storage (local, s3), media types, COGs, tiles, pyramid, TileJSON, PMTiles, layers."""
