"""Procedural fields of the synthetic world: pure numpy functions of world metres."""

from __future__ import annotations

import numpy as np


def hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic pseudo-random float32 in [0, 1) per integer lattice point."""
    h = ix.astype(np.int64).astype(np.uint32) * np.uint32(0x27D4EB2D)
    h ^= iy.astype(np.int64).astype(np.uint32) * np.uint32(0x165667B1)
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))

def _value_noise(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1] with unit lattice spacing."""
    fx, fy = np.floor(x), np.floor(y)
    tx, ty = (x - fx).astype(np.float32), (y - fy).astype(np.float32)
    tx = tx * tx * (3 - 2 * tx)
    ty = ty * ty * (3 - 2 * ty)
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)
    a = hash01(ix, iy, salt)
    b = hash01(ix + 1, iy, salt)
    c = hash01(ix, iy + 1, salt)
    d = hash01(ix + 1, iy + 1, salt)
    top = a + (b - a) * tx
    bottom = c + (d - c) * tx
    return top + (bottom - top) * ty

def fbm(wx: np.ndarray, wy: np.ndarray, scale: float, octaves: int, salt: int) -> np.ndarray:
    """Fractal Brownian motion in [0, 1] (mean ~0.5): `octaves` of value noise from `scale` m."""
    total = np.zeros(np.shape(wx), np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        s = scale / 2**k
        total += np.float32(amp) * _value_noise(wx / s, wy / s, salt * 7919 + k * 104729)
        norm += amp
        amp *= 0.5
    return total / np.float32(norm)

def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)

def voronoi(wx: np.ndarray, wy: np.ndarray, cell: float,
            salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Jittered-grid Voronoi: (cell id hash in [0,1), distance to the cell border in metres)."""
    gx, gy = np.floor(wx / cell).astype(np.int64), np.floor(wy / cell).astype(np.int64)
    best = np.full(np.shape(wx), np.inf, np.float32)
    second = np.full(np.shape(wx), np.inf, np.float32)
    ident = np.zeros(np.shape(wx), np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx, cy = gx + dx, gy + dy
            px = (cx + 0.1 + 0.8 * hash01(cx, cy, salt)) * cell
            py = (cy + 0.1 + 0.8 * hash01(cx, cy, salt + 1)) * cell
            d = np.hypot(wx - px, wy - py).astype(np.float32)
            closer = d < best
            second = np.where(closer, best, np.minimum(second, d))
            ident = np.where(closer, hash01(cx, cy, salt + 2), ident)
            best = np.minimum(best, d)
    return ident, (second - best) * 0.5

def lines(dist: np.ndarray, width: float) -> np.ndarray:
    return np.abs(dist) < width / 2
