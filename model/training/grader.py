"""The `auto` grader (v2): grades each WHOLE image as an editor would, to make training targets.

Sentinel-2 L2A reflectance is already physically white-balanced (a white roof reflects the same in
B04, B03 and B02), so the grade keeps the physics and corrects only what varies between scenes
and should not show in a basemap. Per image, from its valid, cloud-free pixels:

1. **haze** (per-channel black point): a path radiance ``h * HAZE_SHAPE`` (strongest in blue)
   estimated from the darkest pixels and subtracted (:func:`estimate_haze`): bright ground
   without dark objects (desert, snow) is not mistaken for haze, and water keeps
   ``DARK_KEEP``: dark, never black (pixels at the DN floor, e.g. L1C's DN 1 edges, are ignored);
2. **exposure**: one gain for all channels (white balance stays neutral), ``EXPOSURE`` times the
   scene's median luminance pulled a fraction ``NORMALIZE`` of the way (in log) to ``Y_REF``,
   so dark boreal scenes are lifted a little and deserts stay bright;
3. **saturation** ``SATURATION`` around luminance in linear light, limited so no channel goes
   negative;
4. a **filmic highlight roll-off** in linear light (identity to ``KNEE``, then tanh towards 1),
   then the sRGB transfer: farmland lands at L* in the mid 40s, desert near 75, snow and cloud
   near 95 and never at 255;
5. **local contrast** ("clarity"): display lightness minus its Gaussian blur (sigma
   ``CLARITY_SIGMA`` px), added with a fixed strength and faded in highlights. It is
   translation-invariant on purpose (CLAHE's tiles anchored to the image corners are a
   position-dependent effect no window-local model can learn).

Only haze and exposure depend on the image, and both are bounded, so the targets of two images of
the same ground differ far less than per-scene stretches do; the model learns one grading. The
per-pixel constants (``EXPOSURE``, ``SATURATION``, ``KNEE``, ``FLOOR``, ``TOP``) are the network's
tone prior's too, so they live with it, in :mod:`basemap.model.tone`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from basemap.model.tone import EXPOSURE, FLOOR, KNEE, SATURATION, TOP

from basemap.colour import luminance, saturate, srgb_encode

VERSION = 2
#: Relative path radiance of B04, B03, B02 (lambda^-3, between aerosol ~lambda^-1.3 and Rayleigh
#: lambda^-4, scaled to blue).
HAZE_SHAPE = (0.4, 0.67, 1.0)
#: Reflectance the darkest pixels keep in each channel (water dark, not black).
DARK_KEEP = (0.005, 0.010, 0.010)
#: Red reflectance below which the darkest pixels are taken as a dark object (see estimate_haze).
DARK_RED = 0.04
#: The largest blue path radiance removed.
HAZE_MAX = 0.06
#: The reference luminance (typical vegetated land): the gain there is EXPOSURE.
Y_REF = 0.07
#: Fraction (in log) of the way from the scene's median luminance to Y_REF that exposure goes,
#: and the largest gain either way.
NORMALIZE = 0.25
GAIN_LIMIT = 1.5
#: Local contrast: strength and Gaussian sigma (px).
CLARITY = 0.25
CLARITY_SIGMA = 12.0
#: SCL classes excluded from the statistics (nodata, defective, cloud shadow, clouds, cirrus).
SCL_EXCLUDE = (0, 1, 3, 8, 9, 10)


@dataclass(frozen=True)
class GradeParams:
    """The per-image grading parameters (recorded in the pair's grade.json)."""

    haze: float
    gain: float
    version: int = VERSION

    @property
    def black(self) -> tuple[float, float, float]:
        """The per-channel black point (R, G, B reflectance) the haze amounts to."""
        return tuple(float(self.haze * s) for s in HAZE_SHAPE)  # type: ignore[return-value]

    def to_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return asdict(self) | {"black": list(self.black)}


def _sample(values: np.ndarray, limit: int = 1_000_000) -> np.ndarray:
    """A deterministic strided subsample (robust percentiles without sorting everything)."""
    step = max(1, values.shape[-1] // limit)
    return values[..., ::step]


def estimate_haze(px: np.ndarray) -> float:
    """Blue path radiance of pixels (3, N) reflectance, from their darkest pixels.

    The dark-object level above ``DARK_KEEP``, in units of ``HAZE_SHAPE``, is trusted only when
    what remains in red after removing it is dark (vegetation, water, shadow: below
    ``DARK_RED``); it fades to nothing by twice that, so bright ground (desert, snow fields) is
    not mistaken for haze.
    """
    dark = np.percentile(px, 0.5, axis=1)
    shape = np.asarray(HAZE_SHAPE)
    h = float(np.clip(np.min((dark - np.asarray(DARK_KEEP)) / shape), 0.0, HAZE_MAX))
    residual_red = dark[0] - h * shape[0]
    return h * float(np.clip((2 * DARK_RED - residual_red) / DARK_RED, 0.0, 1.0))


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
    stats = (valid if clear is None else (valid & clear)) & (reflectance > 2e-4).all(axis=0)
    if stats.sum() < max(16, 0.01 * valid.sum()):
        stats = valid
    if not stats.any():
        raise ValueError("no valid pixels to grade")
    px = _sample(reflectance[:, stats].astype(np.float64))
    haze = estimate_haze(px)
    dehazed = np.maximum(px - haze * np.asarray(HAZE_SHAPE)[:, None], 0.0)
    median = max(float(np.median(luminance(dehazed))), 1e-3)
    gain = float(np.clip((Y_REF / median) ** NORMALIZE, 1 / GAIN_LIMIT, GAIN_LIMIT))
    return GradeParams(haze=haze, gain=gain)


def tone(linear: np.ndarray) -> np.ndarray:
    """Linear display light (>= 0) -> sRGB-encoded [0, 1): filmic roll-off above KNEE, sRGB."""
    over = KNEE + (1 - KNEE) * np.tanh((linear - KNEE) / (1 - KNEE))
    lin = np.where(linear <= KNEE, linear, over)
    return srgb_encode(np.maximum(lin, 0))


def apply_params(reflectance: np.ndarray, valid: np.ndarray, p: GradeParams) -> np.ndarray:
    """Grade an image with given parameters -> uint8 (3, H, W); invalid pixels are 0."""
    black = np.asarray(p.black, dtype=np.float32)[:, None, None]
    linear = np.maximum(reflectance.astype(np.float32) - black, 0) * np.float32(EXPOSURE * p.gain)
    display = tone(saturate(linear, SATURATION)).astype(np.float32)
    y = luminance(display)
    fade = np.clip((0.92 - y) / 0.25, 0, 1)  # leave highlights to the roll-off
    display = display + (CLARITY * fade * detail(y, valid))[None]
    out = FLOOR + (TOP - FLOOR) * np.clip(display, 0, 1)
    rgb = np.rint(255 * out).clip(0, 255).astype(np.uint8)
    rgb[:, ~valid] = 0
    return rgb


def grade(
    reflectance: np.ndarray, valid: np.ndarray, clear: np.ndarray | None = None
) -> tuple[np.ndarray, GradeParams]:
    """Grade one whole image: (uint8 (3, H, W), its parameters). See :func:`fit_params`."""
    params = fit_params(reflectance, valid, clear)
    return apply_params(reflectance, valid, params), params


def detail(lightness: np.ndarray, valid: np.ndarray, sigma: float = CLARITY_SIGMA) -> np.ndarray:
    """Lightness minus its Gaussian blur over valid pixels (normalised convolution), 0 elsewhere."""
    from scipy.ndimage import gaussian_filter

    w = valid.astype(np.float32)
    num = gaussian_filter(lightness.astype(np.float32) * w, sigma, mode="constant")
    den = gaussian_filter(w, sigma, mode="constant")
    blur = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-3)
    return np.where(valid, lightness - blur, 0.0).astype(np.float32)
