"""The `auto` grader: grades each WHOLE image the way an editor would, to make training targets.

Per image, from robust statistics of its valid, cloud-free pixels:

1. levels with a per-channel black point (dark-object subtraction: removes the additive blue
   haze that luminance-only levels leave as a blue/purple cast) and a white point per channel
   pulled part-way to neutral (white balance: ``WB_STRENGTH``);
2. a midtone gamma that puts the median lightness at ``MID_TARGET``;
3. local contrast: CLAHE on lightness (numpy), stronger on flat images, faded out in highlights;
4. saturation, stronger on dull images, limited per pixel so no channel leaves the gamut;
5. a highlight roll-off (linear to a knee, then tanh), scaled so the brightest valid pixels
   (snow, desert, cloud) stay below 255 instead of clipping.

Because every parameter comes from the image's own content, two images of the same ground get
different gradings -- exactly the patchiness a single learned model then removes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Fraction of the per-channel white point kept (0 = no white balance, 1 = brightest -> grey).
WB_STRENGTH = 0.5
#: Median lightness after levels and gamma.
MID_TARGET = 0.36
#: Start of the highlight roll-off, and where the 99.5th percentile lands before it.
KNEE = 0.78
EXPOSURE = 0.9
#: Output floor (keeps shadow detail off 0) and the value the brightest valid pixel maps to.
FLOOR = 4 / 255
TOP = 250 / 255
#: SCL classes excluded from the statistics (nodata, defective, cloud shadow, clouds, cirrus).
SCL_EXCLUDE = (0, 1, 3, 8, 9, 10)


@dataclass(frozen=True)
class GradeParams:
    """The per-image grading parameters (recorded in the pair's tags)."""

    black: tuple[float, float, float]
    white: tuple[float, float, float]
    gamma: float
    clahe_amount: float
    saturation: float
    rolloff: float

    def to_dict(self) -> dict:
        """Plain dict (for GeoTIFF tags / JSON)."""
        return asdict(self)


def _sample(values: np.ndarray, limit: int = 1_000_000) -> np.ndarray:
    """A deterministic strided subsample (robust percentiles without sorting everything)."""
    step = max(1, values.shape[-1] // limit)
    return values[..., ::step]


def _lightness(rgb: np.ndarray) -> np.ndarray:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def fit_params(
    reflectance: np.ndarray, valid: np.ndarray, clear: np.ndarray | None = None
) -> GradeParams:
    """Choose the grading parameters of one whole image.

    Args:
        reflectance: float32 (3, H, W) R, G, B reflectance.
        valid: bool (H, W) pixels with data.
        clear: bool (H, W) cloud-free pixels to take statistics from (None: all valid). Falls back
            to ``valid`` when fewer than 1% of the valid pixels are clear.
    """
    stats = valid if clear is None else (valid & clear)
    if stats.sum() < max(16, 0.01 * valid.sum()):
        stats = valid
    if not stats.any():
        raise ValueError("no valid pixels to grade")
    px = _sample(reflectance[:, stats].astype(np.float64))
    black = np.percentile(px, 0.5, axis=1)
    lifted = np.maximum(px - black[:, None], 0.0)
    common = np.percentile(_lightness(lifted), 99.5)
    own = np.percentile(lifted, 99.5, axis=1)
    span = np.maximum(common, 1e-4) ** (1 - WB_STRENGTH) * np.maximum(own, 1e-4) ** WB_STRENGTH
    v = lifted / span[:, None]
    mid = float(np.clip(np.median(_lightness(v)), 1e-3, 0.99))
    gamma = float(np.clip(np.log(MID_TARGET) / np.log(mid), 0.3, 1.2))
    u = np.power(v, gamma)
    y = _lightness(u)
    contrast = float(np.std(np.clip(y, 0, 1)))
    clahe_amount = float(np.clip(0.55 - 1.5 * contrast, 0.1, 0.5))
    chroma = float(np.median(u.max(axis=0) - u.min(axis=0)) / max(np.median(y), 1e-3))
    saturation = float(np.clip(0.35 / max(chroma, 1e-3), 1.0, 1.5))
    # The brightest valid pixel (clouds included) sets the roll-off so that it lands at TOP.
    allpx = _sample(reflectance[:, valid].astype(np.float64))
    brightest = np.percentile(
        (np.maximum(allpx - black[:, None], 0) / span[:, None]) ** gamma, 99.99, axis=1
    ).max()
    z = np.arctanh((TOP - KNEE) / (1 - KNEE))
    rolloff = float(max(1 - KNEE, (EXPOSURE * brightest - KNEE) / z))
    return GradeParams(
        black=tuple(float(b) for b in black),
        white=tuple(float(b + s) for b, s in zip(black, span, strict=True)),
        gamma=gamma,
        clahe_amount=clahe_amount,
        saturation=saturation,
        rolloff=rolloff,
    )


def apply_params(reflectance: np.ndarray, valid: np.ndarray, p: GradeParams) -> np.ndarray:
    """Grade an image with given parameters -> uint8 (3, H, W); invalid pixels are 0."""
    black = np.asarray(p.black, dtype=np.float32)[:, None, None]
    span = np.asarray(p.white, dtype=np.float32)[:, None, None] - black
    u = np.power(np.maximum(reflectance.astype(np.float32) - black, 0) / span, np.float32(p.gamma))
    y = _lightness(u)
    yc = np.clip(y, 0, 1)
    fade = np.clip((1.0 - y) / 0.3, 0, 1)  # leave highlights to the roll-off
    u = u + (p.clahe_amount * fade * (clahe(yc, valid) - yc))[None]
    u = np.maximum(u, 0)
    y = _lightness(u)
    d = u - y[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d < 0, y[None] / -d, np.inf).min(axis=0)  # keep every channel >= 0
    s = np.minimum(p.saturation, np.maximum(room, 1.0))
    u = y[None] + s[None] * d
    out = _rolloff(EXPOSURE * u, p.rolloff)
    rgb = np.rint(255 * (FLOOR + (1 - FLOOR) * out)).clip(0, 255).astype(np.uint8)
    rgb[:, ~valid] = 0
    return rgb


def _rolloff(x: np.ndarray, scale: float) -> np.ndarray:
    """Identity up to KNEE, then ``KNEE + (1-KNEE) tanh((x-KNEE)/scale)``: never reaches 1."""
    over = KNEE + (1 - KNEE) * np.tanh(np.maximum(x - KNEE, 0) / scale)
    return np.where(x <= KNEE, np.maximum(x, 0), over)


def grade(
    reflectance: np.ndarray, valid: np.ndarray, clear: np.ndarray | None = None
) -> tuple[np.ndarray, GradeParams]:
    """Grade one whole image: (uint8 (3, H, W), its parameters). See :func:`fit_params`."""
    params = fit_params(reflectance, valid, clear)
    return apply_params(reflectance, valid, params), params


def clahe(
    lightness: np.ndarray, valid: np.ndarray, clip_limit: float = 2.0, bins: int = 256
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a [0, 1] image (numpy).

    Tiles of about 128 px (1 to 8 per axis, so a whole image gets its own layout); each tile's
    histogram of valid pixels is clipped at ``clip_limit`` times the mean bin count, the excess
    spread evenly, and its CDF is the tile's mapping; pixels interpolate bilinearly between the
    mappings of the four nearest tile centres (Zuiderveld 1994).
    """
    h, w = lightness.shape
    q = np.clip(np.rint(lightness * (bins - 1)), 0, bins - 1).astype(np.intp)
    ny, nx = (int(np.clip(round(n / 128), 1, 8)) for n in (h, w))
    ey = np.linspace(0, h, ny + 1).astype(int)
    ex = np.linspace(0, w, nx + 1).astype(int)
    luts = np.empty((ny, nx, bins), dtype=np.float32)
    identity = np.linspace(0, 1, bins, dtype=np.float32)
    for i in range(ny):
        for j in range(nx):
            rows, cols = slice(ey[i], ey[i + 1]), slice(ex[j], ex[j + 1])
            tile = q[rows, cols][valid[rows, cols]]
            if tile.size == 0:
                luts[i, j] = identity
                continue
            hist = np.bincount(tile, minlength=bins).astype(np.float64)
            limit = clip_limit * tile.size / bins
            excess = np.maximum(hist - limit, 0).sum()
            hist = np.minimum(hist, limit) + excess / bins
            cdf = np.cumsum(hist)
            luts[i, j] = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1e-9)
    iy, wy = _interp_index((ey[:-1] + ey[1:]) / 2, h)
    ix, wx = _interp_index((ex[:-1] + ex[1:]) / 2, w)
    i0, i1 = iy[:, None], np.minimum(iy + 1, ny - 1)[:, None]
    j0, j1 = ix[None, :], np.minimum(ix + 1, nx - 1)[None, :]
    wy, wx = wy[:, None].astype(np.float32), wx[None, :].astype(np.float32)
    top = (1 - wx) * luts[i0, j0, q] + wx * luts[i0, j1, q]
    bottom = (1 - wx) * luts[i1, j0, q] + wx * luts[i1, j1, q]
    return (1 - wy) * top + wy * bottom


def _interp_index(centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For pixels 0..n-1: index of the tile centre at or before each, and the next one's weight."""
    pos = np.arange(n) + 0.5
    idx = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, len(centres) - 1)
    nxt = np.minimum(idx + 1, len(centres) - 1)
    gap = centres[nxt] - centres[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        wgt = np.where(gap > 0, np.clip((pos - centres[idx]) / gap, 0, 1), 0.0)
    return idx, wgt
