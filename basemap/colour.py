"""Colour maths on numpy arrays: the sRGB transfer, luminance and saturation in linear light,
CIELAB, CIEDE2000 and clipped pixels.

A foundation module (numpy only): the renderers, the quality checks and the model's training all
take their colour maths from here.
"""

from __future__ import annotations

import numpy as np

#: Rec. 709 (sRGB) luminance weights of linear R, G, B.
REC709 = (0.2126, 0.7152, 0.0722)
# sRGB (D65) -> CIE XYZ, IEC 61966-2-1.
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
#: CIELAB's linear-segment threshold and slope (CIE 15).
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1), same dtype."""
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(linear, 1 / 2.4) - 0.055)  # fmt: skip


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of linear RGB (3, ...)."""
    return REC709[0] * rgb[0] + REC709[1] * rgb[1] + REC709[2] * rgb[2]


def saturate(linear: np.ndarray, amount: float) -> np.ndarray:
    """Scale chroma around luminance by `amount` in linear RGB (3, ...), never pushing a channel
    below 0."""
    y = luminance(linear)
    d = linear - y[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d < 0, y[None] / -d, np.inf).min(axis=0)
    s = np.minimum(amount, np.maximum(room, 1.0))
    return y[None] + s[None] * d


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (3, ...) -> CIELAB (3, ...) float64, D65 white."""
    lin = srgb_decode(np.asarray(rgb, dtype=np.float64) / 255.0)
    xyz = np.tensordot(_SRGB_TO_XYZ, lin, axes=1) / _WHITE_D65.reshape((3,) + (1,) * (lin.ndim - 1))
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (3, ...) D65 -> sRGB in [0, 1] (3, ...) float64, clipped to the gamut."""
    L, a, b = (np.asarray(v, dtype=np.float64) for v in lab)
    fy = (L + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200])
    xyz = np.where(f**3 > _EPS, f**3, (116 * f - 16) / _KAPPA)
    xyz = xyz * _WHITE_D65.reshape((3,) + (1,) * (xyz.ndim - 1))
    return srgb_encode(np.clip(np.tensordot(np.linalg.inv(_SRGB_TO_XYZ), xyz, axes=1), 0, 1))


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


def clipped_pct(rgb: np.ndarray, valid: np.ndarray) -> float:
    """% of valid pixels of uint8 (3, H, W) with any channel at 0 or 255 (crushed shadows or
    blown highlights)."""
    v = rgb[:, valid]
    if v.shape[1] == 0:
        return 0.0
    return float(100.0 * ((v == 0) | (v == 255)).any(axis=0).mean())
