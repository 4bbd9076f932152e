"""basemap: a seamless 8-bit Sentinel-2 L2A basemap from STAC, colorized by one residual U-Net."""

__version__ = "0.1.0"
