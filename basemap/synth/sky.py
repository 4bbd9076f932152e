"""The synthetic atmosphere of each date: clouds, their shadows, thin cirrus and haze."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from basemap.synth.layout import Layout
from basemap.synth.noise import fbm, smoothstep


@dataclass(frozen=True)
class Sky:
    """The atmosphere of one date at a set of points."""

    cloud: np.ndarray  # opacity 0..1
    shadow: np.ndarray  # darkening strength 0..1
    cirrus: np.ndarray  # thin cirrus opacity 0..~0.3
    haze: np.ndarray  # additive path reflectance in blue

def _cloud_density(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int, k: int) -> np.ndarray:
    f = fbm(wx, wy, lay.cloud_scale_m, 5, seed * 101 + 17 * k + 1)
    thr = (0.60, 0.63, 0.57)[k % 3]
    return smoothstep(thr, thr + 0.07, f)

def swath_outside(wx: np.ndarray, wy: np.ndarray, lay: Layout, k: int) -> np.ndarray:
    """The east edge of the swath of date 0 (a diagonal line); other dates cover everything."""
    if k != 0:
        return np.zeros(np.shape(wx), bool)
    return wx > lay.half_x * (0.80 + 0.25 * (wy / lay.half_y))

def _cirrus(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int, k: int) -> np.ndarray:
    f = fbm(wx * 0.6, wy * 2.0, lay.cloud_scale_m * 1.5, 3, seed * 101 + 17 * k + 2)
    return 0.25 * smoothstep(0.62, 0.75, f)

def _obstructed(wx: np.ndarray, wy: np.ndarray, raw_cloud: np.ndarray, lay: Layout, seed: int,
                k: int) -> np.ndarray:
    """0..1: how much date k hides the ground at (wx, wy): cloud, cirrus or outside the swath."""
    cirrus = _cirrus(wx, wy, lay, seed, k) * 4
    outside = swath_outside(wx, wy, lay, k).astype(np.float32)
    return smoothstep(0.02, 0.2, np.maximum(np.maximum(raw_cloud, cirrus), outside))

def skies(wx: np.ndarray, wy: np.ndarray, lay: Layout, seed: int) -> list[Sky]:
    """The sky of every date at world metres.

    A date's clouds are thinned where every earlier date was cloudy, so the union of the dates
    leaves most ground clear at least once. Shadows are the same (thinned) clouds seen from the
    sun's direction, displaced by `lay.shadow_m`.
    """
    sun = np.array([math.sin(math.radians(150.0)), math.cos(math.radians(150.0))]) * lay.shadow_m
    out = []
    blocked = blocked_sun = None  # how obstructed every earlier date was, at p and at p + sun
    for k in range(len(lay.dates)):
        raw = _cloud_density(wx, wy, lay, seed, k)
        raw_sun = _cloud_density(wx + sun[0], wy + sun[1], lay, seed, k)
        cirrus = _cirrus(wx, wy, lay, seed, k)
        cloud = raw if blocked is None else raw * (1 - blocked)
        shadow = raw_sun if blocked_sun is None else raw_sun * (1 - blocked_sun)
        if blocked is not None:
            cirrus = cirrus * (1 - blocked)
        haze = (0.004 + 0.006 * ((seed + k) % 3)) * (
            0.6 + 0.8 * fbm(wx, wy, lay.half_x, 2, seed * 101 + 17 * k + 3))
        out.append(Sky(cloud.astype(np.float32), (0.7 * shadow).astype(np.float32),
                       cirrus.astype(np.float32), haze.astype(np.float32)))
        now = _obstructed(wx, wy, raw, lay, seed, k)
        now_sun = _obstructed(wx + sun[0], wy + sun[1], raw_sun, lay, seed, k)
        blocked = now if blocked is None else blocked * now
        blocked_sun = now_sun if blocked_sun is None else blocked_sun * now_sun
    return out
