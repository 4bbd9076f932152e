"""Colour figures for `basemap evaluate`: colourfulness, mean lightness, cross-scene CIEDE2000.

sRGB -> CIELAB and CIEDE2000 come from :mod:`basemap.colour`.
"""

from __future__ import annotations

import numpy as np

from basemap.colour import ciede2000, srgb_to_lab

#: Pairs of scenes sharing fewer observed pixels than this are not compared.
MIN_OVERLAP_PX = 1024


def colourfulness(rgb: np.ndarray, valid: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M3 of the valid pixels of uint8 (3, H, W)."""
    r, g, b = (rgb[i][valid].astype(np.float64) for i in range(3))
    if r.size == 0:
        return 0.0
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def mean_lightness(rgb: np.ndarray, valid: np.ndarray) -> float:
    """Mean CIELAB L* (D65, rgb read as sRGB) of the valid pixels."""
    pixels = rgb[:, valid]
    return float(srgb_to_lab(pixels)[0].mean()) if pixels.shape[1] else 0.0


def cross_scene_delta_e(renders: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, int]:
    """Mean CIEDE2000 between every two single-scene renderings where both observe a pixel.

    Args:
        renders: (rgb uint8 (3, H, W), observed (H, W)) per scene, all on the same pixels.

    Returns:
        (mean CIEDE2000 over all compared pixels of all pairs, number of pairs compared); NaN and 0
        when no two scenes share MIN_OVERLAP_PX observed pixels.
    """
    total, count, pairs = 0.0, 0, 0
    for i in range(len(renders)):
        for j in range(i + 1, len(renders)):
            both = renders[i][1] & renders[j][1]
            n = int(both.sum())
            if n < MIN_OVERLAP_PX:
                continue
            de = ciede2000(srgb_to_lab(renders[i][0][:, both]), srgb_to_lab(renders[j][0][:, both]))
            total += float(de.sum())
            count += n
            pairs += 1
    return (total / count if count else float("nan")), pairs
