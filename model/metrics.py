"""Image-quality numbers for the model card: MAE, CIEDE2000 and clipped pixels (numpy only)."""

from __future__ import annotations

import numpy as np

# sRGB (D65) -> CIE XYZ, IEC 61966-2-1.
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (3, ...) -> CIELAB (3, ...) float64, D65 white."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.tensordot(_SRGB_TO_XYZ, lin, axes=1) / _WHITE_D65.reshape((3,) + (1,) * (c.ndim - 1))
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (3, ...) D65 -> sRGB in [0, 1] (3, ...) float64, clipped to the gamut."""
    L, a, b = (np.asarray(v, dtype=np.float64) for v in lab)
    fy = (L + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200])
    eps, kappa = 216 / 24389, 24389 / 27
    xyz = np.where(f**3 > eps, f**3, (116 * f - 16) / kappa)
    xyz = xyz * _WHITE_D65.reshape((3,) + (1,) * (xyz.ndim - 1))
    lin = np.clip(np.tensordot(np.linalg.inv(_SRGB_TO_XYZ), xyz, axes=1), 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of Lab arrays shaped (3, ...).

    Follows Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation
    notes, supplementary test data, and mathematical observations", and reproduces their test data.
    """
    L1, a1, b1 = (np.asarray(v, dtype=np.float64) for v in lab1)
    L2, a2, b2 = (np.asarray(v, dtype=np.float64) for v in lab2)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, h1p)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, h2p)

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)

    L_bar = (L1 + L2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)
    )
    h_bar = np.where(c1p * c2p == 0, hsum, h_bar)
    t = (
        1
        - 0.17 * np.cos(np.radians(h_bar - 30))
        + 0.24 * np.cos(np.radians(2 * h_bar))
        + 0.32 * np.cos(np.radians(3 * h_bar + 6))
        - 0.20 * np.cos(np.radians(4 * h_bar - 63))
    )
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    sl = 1 + 0.015 * (L_bar - 50) ** 2 / np.sqrt(20 + (L_bar - 50) ** 2)
    sc = 1 + 0.045 * cp_bar
    sh = 1 + 0.015 * cp_bar * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt(
        (dL / sl) ** 2 + (dC / sc) ** 2 + (dH / sh) ** 2 + rt * (dC / sc) * (dH / sh)
    )


def image_metrics(output: np.ndarray, target: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Compare two uint8 (3, H, W) renderings over valid pixels.

    Returns:
        ``mae`` (mean absolute error in 8-bit DN), ``ciede2000`` (mean CIEDE2000, both images
        read as sRGB), ``clipped_pct`` (% of valid pixels of ``output`` with a channel at 0 or 255)
        and ``target_clipped_pct``.
    """
    o = output[:, valid].astype(np.float64)
    t = target[:, valid].astype(np.float64)
    if o.shape[1] == 0:
        raise ValueError("no valid pixels to compare")
    de = ciede2000(srgb_to_lab(o), srgb_to_lab(t))
    return {
        "mae": float(np.abs(o - t).mean()),
        "ciede2000": float(de.mean()),
        "clipped_pct": clipped_pct(output, valid),
        "target_clipped_pct": clipped_pct(target, valid),
    }


def clipped_pct(rgb: np.ndarray, valid: np.ndarray) -> float:
    """% of valid pixels with any channel at 0 or 255 (crushed shadows or blown highlights)."""
    v = rgb[:, valid]
    if v.shape[1] == 0:
        return 0.0
    return float(100.0 * ((v == 0) | (v == 255)).any(axis=0).mean())
