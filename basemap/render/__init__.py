"""Rendering: reflectance -> 8-bit RGB (the registry in base, the classic methods, the U-Net)."""
