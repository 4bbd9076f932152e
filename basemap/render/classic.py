"""The classic renderings (docs/s2-l2a.md, "classic renderings"): baselines for the U-Net.

- ``linear``: reflectance 0-0.25 -> 0-255 (the TCI / sen2r look; clips deserts and snow).
- ``sh-l2a-optimized``: Sentinel Hub "L2A Optimized" (also the CDSE cloudless mosaics).
- ``stretch-clahe``: EOX Sentinel-2 cloudless's recipe (mapchete-eo): linear stretch, HSV
  saturation, gamma, CLAHE on L* over 32-px tiles of the global grid.
- ``per-tile-stretch``: a 2-98 % percentile stretch per 512-px tile of the global grid: adapts to
  content and is exactly what makes mosaics patchy (the paper's Figure 1).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from basemap.colour import lab_to_srgb, srgb_encode, srgb_to_lab
from basemap.grid import Region


def to_uint8(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scale [0, 1] floats to uint8 (round half up), zero where not valid."""
    out = np.clip(np.floor(values * 255.0 + 0.5), 0, 255).astype(np.uint8)
    out[:, ~valid] = 0
    return out


class PixelwiseRenderer:
    """Base for renderers whose output pixel depends only on the same input pixel."""

    name: ClassVar[str]
    grid: ClassVar[None] = None
    weights: ClassVar[None] = None
    wants_gpu: ClassVar[bool] = False

    def input_region(self, region: Region) -> Region:
        """Pixel-wise: the region itself."""
        return region

    def render(
        self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int], region: Region
    ) -> np.ndarray:
        """Apply `transfer` to the pixels of `region`."""
        rows, cols = region.slices(origin)
        refl = reflectance[:, rows, cols].astype(np.float32, copy=False)
        mask = valid[rows, cols]
        return to_uint8(self.transfer(refl), mask)

    def transfer(self, reflectance: np.ndarray) -> np.ndarray:
        """Reflectance (3, h, w) -> display values in [0, 1]."""
        raise NotImplementedError


class LinearRenderer(PixelwiseRenderer):
    """Reflectance 0-0.25 -> 0-255, clipped (TCI / sen2r)."""

    name = "linear"
    white = 0.25

    def transfer(self, reflectance: np.ndarray) -> np.ndarray:
        """Linear scaling to the white point."""
        return reflectance / self.white


#: Sentinel Hub L2A-Optimized's highlight compression (max and mid reflectance) and gamma.
L2A_MAX_R, L2A_MID_R, L2A_GAMMA, L2A_GAMMA_OFFSET = 3.0, 0.13, 1.8, 0.01


def l2a_optimized_curve(reflectance: np.ndarray) -> np.ndarray:
    """L2A-Optimized's adj -> adjGamma chain, per channel: reflectance -> linear display [0, 1]."""
    t = L2A_MID_R / L2A_MAX_R
    ar = np.clip(reflectance / L2A_MAX_R, 0.0, 1.0)
    adj = ar * (ar * t - 1.0) / (ar * (2.0 * t - 1.0) - t)
    off, gamma = L2A_GAMMA_OFFSET, L2A_GAMMA
    return ((adj + off) ** gamma - off**gamma) / ((1.0 + off) ** gamma - off**gamma)


class SentinelHubL2AOptimized(PixelwiseRenderer):
    """Sentinel Hub "L2A Optimized": highlight compression, gamma, saturation, sRGB."""

    name = "sh-l2a-optimized"
    sat = 1.2

    def transfer(self, reflectance: np.ndarray) -> np.ndarray:
        """The script's adj -> adjGamma -> saturation -> sRGB chain, vectorised."""
        lin = l2a_optimized_curve(reflectance)
        avg = lin.mean(axis=0, keepdims=True) * (1.0 - self.sat)
        lin = np.clip(avg + lin * self.sat, 0.0, 1.0)
        return srgb_encode(lin).astype(np.float32)


class PerTileStretch:
    """A 2-98 % percentile stretch per channel, computed separately in each 512-px global tile."""

    name = "per-tile-stretch"
    grid = None
    weights = None
    wants_gpu = False
    tile = 512
    low, high = 2.0, 98.0

    def input_region(self, region: Region) -> Region:
        """Whole tiles of the global 512-px grid covering the region."""
        return region.aligned_out(self.tile)

    def render(
        self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int], region: Region
    ) -> np.ndarray:
        """Stretch each global tile by its own percentiles, then cut out `region`."""
        full = self.input_region(region)
        out = np.zeros((3, full.height, full.width), dtype=np.uint8)
        for ty in range(full.y0, full.y1, self.tile):
            for tx in range(full.x0, full.x1, self.tile):
                tile = Region(tx, ty, tx + self.tile, ty + self.tile)
                rows, cols = tile.slices(origin)
                mask = valid[rows, cols]
                if not mask.any():
                    continue
                refl = reflectance[:, rows, cols]
                pixels = refl[:, mask]
                lo = np.percentile(pixels, self.low, axis=1)[:, None, None]
                hi = np.percentile(pixels, self.high, axis=1)[:, None, None]
                scaled = (refl - lo) / np.maximum(hi - lo, 1e-6)
                out_rows, out_cols = tile.slices((full.x0, full.y0))
                out[:, out_rows, out_cols] = to_uint8(scaled, mask)
        rows, cols = region.slices((full.x0, full.y0))
        return out[:, rows, cols]


class StretchClahe:
    """EOX cloudless's colour recipe (mapchete-eo ``color_correction``, its process defaults).

    Linear stretch 0-2300 DN -> 1-255 per band, HSV saturation x1.3, gamma 1.15, then CLAHE
    (clip limit 3.2) on L* of CIELAB. CLAHE's tiles are TILE px squares of the global grid (not
    of each image), interpolated bilinearly between tile centres, so a pixel's value does not
    depend on how the work was split.
    """

    name = "stretch-clahe"
    grid = None
    weights = None
    wants_gpu = False
    white, saturation, gamma = 0.23, 1.3, 1.15
    tile, clip_limit, bins = 32, 3.2, 256

    def input_region(self, region: Region) -> Region:
        """Whole global tiles around the region, one more on each side (interpolation)."""
        t = self.tile
        a = region.aligned_out(t)
        return Region(a.x0 - t, a.y0 - t, a.x1 + t, a.y1 + t)

    def render(
        self, reflectance: np.ndarray, valid: np.ndarray, origin: tuple[int, int], region: Region
    ) -> np.ndarray:
        """Stretch, saturate, gamma, CLAHE on L*, then cut out `region`."""
        full = self.input_region(region)
        rows, cols = full.slices(origin)
        refl, mask = reflectance[:, rows, cols], valid[rows, cols]
        x = 1.0 + 254.0 * np.clip(refl / self.white, 0.0, 1.0)
        v = x.max(axis=0, keepdims=True)
        x = np.maximum(v - (v - x) * self.saturation, 1.0)  # S * sat, hue and V kept
        x = 255.0 * (x / 255.0) ** (1.0 / self.gamma)
        lab = srgb_to_lab(x)
        lab[0] = self._clahe(lab[0], mask)
        rgb = to_uint8(lab_to_srgb(lab), mask)
        r, c = region.slices((full.x0, full.y0))
        return rgb[:, r, c]

    def _clahe(self, lightness: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Contrast-limited adaptive equalisation of L* in [0, 100] over the tiles."""
        t, nb = self.tile, self.bins
        ny, nx = lightness.shape[0] // t, lightness.shape[1] // t
        q = np.clip((lightness / 100.0 * (nb - 1)).astype(int), 0, nb - 1)
        maps = np.tile(np.linspace(0, 100, nb), (ny, nx, 1))
        for j in range(ny):
            for i in range(nx):
                sub = q[j * t : (j + 1) * t, i * t : (i + 1) * t][mask[j * t : (j + 1) * t,
                                                                       i * t : (i + 1) * t]]
                if sub.size == 0:
                    continue
                hist = np.bincount(sub, minlength=nb).astype(np.float64)
                limit = max(1.0, self.clip_limit * sub.size / nb)
                excess = np.maximum(hist - limit, 0).sum()
                hist = np.minimum(hist, limit) + excess / nb
                maps[j, i] = 100.0 * np.cumsum(hist) / hist.sum()
        # Bilinear interpolation between tile centres (rows/cols measured in tiles).
        yy = (np.arange(lightness.shape[0]) + 0.5) / t - 0.5
        xx = (np.arange(lightness.shape[1]) + 0.5) / t - 0.5
        j0 = np.clip(np.floor(yy).astype(int), 0, ny - 1)
        i0 = np.clip(np.floor(xx).astype(int), 0, nx - 1)
        j1, i1 = np.minimum(j0 + 1, ny - 1), np.minimum(i0 + 1, nx - 1)
        wy = np.clip(yy - j0, 0, 1)[:, None]
        wx = np.clip(xx - i0, 0, 1)[None, :]
        jj0, jj1, ii0, ii1 = j0[:, None], j1[:, None], i0[None, :], i1[None, :]
        top = (1 - wx) * maps[jj0, ii0, q] + wx * maps[jj0, ii1, q]
        bottom = (1 - wx) * maps[jj1, ii0, q] + wx * maps[jj1, ii1, q]
        return (1 - wy) * top + wy * bottom
