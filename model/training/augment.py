"""Atmosphere augmentation: what real scenes of the same ground vary in, and the target must not.

Each training input is perturbed, its target stays the grading of the clean image, so the model
learns to render the ground, not the day. Ranges (reflectance units, per crop, independent):

- **path radiance** (haze, thin aerosol, residual Rayleigh): additive ``h * (490 / lambda)^k`` for
  B04, B03, B02 (665, 560, 490 nm), blue ``h`` uniform in [0, ``HAZE_MAX``] and ``k`` in
  ``HAZE_EXPONENT`` (aerosol ~1-1.5, Rayleigh 4). 0.08 in blue is a visibly hazy L2A scene or a
  clear L1C one (TOA blue path radiance 0.05-0.1); with it comes a transmission loss
  ``1 - TRANSMISSION_LOSS * h`` that flattens contrast as real haze does;
- **illumination / exposure gain**: one factor for all bands, log-uniform in ``GAIN`` (sun
  elevation and BRDF residuals after L2A correction, sub-pixel slopes: +-20 %);
- **reflectance offsets**: per band, normal with sigma ``OFFSET_SIGMA`` (Sen2Cor's residual AOT
  error, about 0.005 in the visible);
- **noise**: gaussian, sigma ``NOISE_FLOOR + NOISE_SLOPE * r`` (about SNR 100-150 at 0.1).

A fraction ``CLEAN_FRACTION`` of crops is left as it is, so the clean mapping stays exact, and a
fraction ``HAZE_FREE`` of the others gets no path radiance (the rest of its atmosphere stays; 0 in
the recipe, and the model card's haze prior experiment says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WAVELENGTHS_NM = (665.0, 560.0, 490.0)
HAZE_MAX = 0.08
HAZE_EXPONENT = (1.0, 4.0)
TRANSMISSION_LOSS = 1.5
GAIN = (0.8, 1.25)
OFFSET_SIGMA = 0.005
NOISE_FLOOR, NOISE_SLOPE = 0.001, 0.008
CLEAN_FRACTION = 0.25
HAZE_FREE = 0.0


@dataclass(frozen=True)
class Atmosphere:
    """One simulated atmosphere and illumination."""

    haze: float = 0.0
    exponent: float = 2.0
    gain: float = 1.0
    offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)
    noise: bool = False

    def path_radiance(self) -> np.ndarray:
        """(3,) additive reflectance of B04, B03, B02."""
        lam = np.asarray(WAVELENGTHS_NM)
        return self.haze * (WAVELENGTHS_NM[2] / lam) ** self.exponent

    def apply(self, reflectance: np.ndarray, valid: np.ndarray,
              rng: np.random.Generator | None = None) -> np.ndarray:
        """Reflectance (3, H, W) as seen through this atmosphere (invalid pixels stay 0)."""
        r = reflectance.astype(np.float32)
        t = 1.0 - TRANSMISSION_LOSS * self.haze
        out = r * np.float32(self.gain * t)
        out += (self.path_radiance() + np.asarray(self.offsets)).astype(np.float32)[:, None, None]
        if self.noise and rng is not None:
            sigma = NOISE_FLOOR + NOISE_SLOPE * np.abs(r)
            out += (rng.standard_normal(r.shape) * sigma).astype(np.float32)
        out = np.maximum(out, 1e-4)
        return np.where(valid[None], out, 0.0).astype(np.float32)


def random_atmosphere(rng: np.random.Generator) -> Atmosphere:
    """An atmosphere drawn from the ranges above (the clean one with CLEAN_FRACTION; no haze with
    HAZE_FREE)."""
    if rng.random() < CLEAN_FRACTION:
        return Atmosphere()
    haze = float(rng.uniform(0, HAZE_MAX))
    if HAZE_FREE and rng.random() < HAZE_FREE:  # drawn only when set: the recipe's draws stay
        haze = 0.0
    return Atmosphere(
        haze=haze,
        exponent=float(rng.uniform(*HAZE_EXPONENT)),
        gain=float(np.exp(rng.uniform(np.log(GAIN[0]), np.log(GAIN[1])))),
        offsets=tuple(float(v) for v in rng.normal(0, OFFSET_SIGMA, 3)),
        noise=True,
    )


def evaluation_atmospheres() -> list[Atmosphere]:
    """Eight fixed atmospheres spanning the training ranges (the consistency check)."""
    return [
        Atmosphere(),
        Atmosphere(gain=0.85),
        Atmosphere(gain=1.2),
        Atmosphere(haze=0.02, exponent=1.3),
        Atmosphere(haze=0.04, exponent=2.0, gain=0.9),
        Atmosphere(haze=0.06, exponent=4.0),
        Atmosphere(haze=0.03, exponent=3.0, gain=1.15, offsets=(0.004, -0.003, 0.002)),
        Atmosphere(haze=0.07, exponent=1.5, gain=1.1, offsets=(-0.004, 0.0, 0.005)),
    ]
