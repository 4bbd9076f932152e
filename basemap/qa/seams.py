"""Seam excess: are the borders of a family of columns (or rows) more visible than others?

Pure numpy; used by the build tests and by ``basemap evaluate``.

For an 8-bit RGB image with alpha, take the luminance L (Rec. 709 weights). For each column
boundary ``x | x+1`` and each segment of ``segment`` rows, average the SIGNED step
``L[y, x+1] - L[y, x]`` over the valid rows of the segment (both pixels alpha > 0); the boundary's
**step** is the mean over segments of the absolute value of that average. Texture averages out of
a signed mean, a seam (a consistent offset along the boundary) does not.

A family of borders is a period ``p`` and a phase ``q`` in global pixels: boundaries between global
columns ``b - 1`` and ``b`` with ``b % p == q``. Its **ratio** is the mean step at the family over
the mean step at every other boundary. Its **excess** is that ratio divided by the 95th percentile
of the ratios of every other phase of the same period. Rows likewise; the worse of the two is
reported. Excess <= 1: the borders are no more visible than columns picked at random.
"""

from __future__ import annotations

import numpy as np

#: Rec. 709 luma weights.
LUMA = np.array([0.2126, 0.7152, 0.0722])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 -> (H, W) float64 luminance."""
    return np.tensordot(LUMA, rgb.astype(np.float64), axes=1)


def boundary_steps(
    lum: np.ndarray, valid: np.ndarray, segment: int = 64, min_valid: int = 16
) -> np.ndarray:
    """Mean |segment-mean signed step| at each column boundary x|x+1; (W-1,), NaN where unknown.

    Args:
        lum: (H, W) luminance.
        valid: (H, W) bool.
        segment: rows per segment.
        min_valid: segments with fewer valid pixel pairs are left out.
    """
    h, w = lum.shape
    step = lum[:, 1:] - lum[:, :-1]
    ok = valid[:, 1:] & valid[:, :-1]
    nseg = h // segment
    if nseg == 0 or w < 2:
        return np.full(max(w - 1, 0), np.nan)
    step = np.where(ok, step, 0.0)[: nseg * segment].reshape(nseg, segment, w - 1)
    count = ok[: nseg * segment].reshape(nseg, segment, w - 1).sum(axis=1)
    sums = step.sum(axis=1)
    use = count >= min_valid
    seg_mean = np.abs(np.divide(sums, count, out=np.zeros_like(sums), where=use))
    n = use.sum(axis=0)
    out = np.full(w - 1, np.nan)
    np.divide((seg_mean * use).sum(axis=0), n, out=out, where=n > 0)
    return out


def family_ratio(steps: np.ndarray, x0: int, period: int, phase: int) -> float:
    """Mean step at boundaries b (between columns b-1 and b, global) with b % period == phase,
    over the mean at all other boundaries; NaN when either is empty."""
    b = x0 + 1 + np.arange(steps.size)  # global column right of each boundary
    fam = (b % period) == (phase % period)
    known = ~np.isnan(steps)
    a, o = steps[fam & known], steps[~fam & known]
    if a.size == 0 or o.size == 0 or o.mean() == 0:
        return float("nan")
    return float(a.mean() / o.mean())


def excess_1d(steps: np.ndarray, x0: int, period: int, phase: int) -> float:
    """The family's ratio over the 95th percentile of the ratios at every other phase."""
    ratio = family_ratio(steps, x0, period, phase)
    others = [family_ratio(steps, x0, period, q) for q in range(period) if q != phase % period]
    others = [r for r in others if not np.isnan(r)]
    if np.isnan(ratio) or not others:
        return float("nan")
    return float(ratio / np.percentile(others, 95))


def seam_excess(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    period: int,
    phase: int = 0,
    origin: tuple[int, int] = (0, 0),
    segment: int = 64,
) -> float:
    """Seam excess of the border family (period, phase) in an image; the worse of columns and rows.

    Args:
        rgb: (3, H, W) uint8.
        alpha: (H, W) alpha or mask (> 0 = valid); None = all valid.
        period, phase: the family, in global pixels.
        origin: global (x, y) of the image's top-left pixel.
        segment: rows (columns) per segment.

    Returns:
        The excess (NaN when the image is too small to measure it).
    """
    lum = luminance(rgb)
    valid = np.ones(lum.shape, bool) if alpha is None else np.asarray(alpha) > 0
    cols = excess_1d(boundary_steps(lum, valid, segment), origin[0], period, phase)
    rows = excess_1d(boundary_steps(lum.T, valid.T, segment), origin[1], period, phase)
    values = [v for v in (cols, rows) if not np.isnan(v)]
    return max(values) if values else float("nan")
