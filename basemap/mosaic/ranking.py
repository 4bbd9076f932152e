"""How the accepted views of a pixel rank against each other: ``best``'s agreement and haze
rank (:mod:`basemap.mosaic.composite`'s docstring says what they mean), each view on its own part of
the composite. The per-pixel work is compiled (numba); ``exp`` and ``log`` stay numpy's, so the
ranks are the same bits as numpy's vectorised formulas.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from numba import njit

from basemap.mosaic.observation_quality import hot

#: Log-ratio disagreement (about 10 % in brightness) at which ``best``'s agreement is 1/e.
AGREEMENT_TAU = 0.1
#: HOT excess over the pixel's least hazy view at which ``best``'s haze ranking is 1/e.
HOT_TAU = 0.02


class View(NamedTuple):
    """One observation on its own part of a composite: reflectance (3, h, w), accepted mask and
    quality (h, w), and the (rows, cols) slices of the composite it covers."""

    reflectance: np.ndarray
    mask: np.ndarray
    quality: np.ndarray
    at: tuple[slice, slice]


def _overlap(a: tuple[slice, slice],
             b: tuple[slice, slice]) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """The common pixels of two parts, as slices into each, or None."""
    (ar, ac), (br, bc) = a, b
    r0, r1 = max(ar.start, br.start), min(ar.stop, br.stop)
    c0, c1 = max(ac.start, bc.start), min(ac.stop, bc.stop)
    if r0 >= r1 or c0 >= c1:
        return None
    return ((slice(r0 - ar.start, r1 - ar.start), slice(c0 - ac.start, c1 - ac.start)),
            (slice(r0 - br.start, r1 - br.start), slice(c0 - bc.start, c1 - bc.start)))


def _excess_rank(scores: list[np.ndarray], views: list[View], shape: tuple[int, int],
                 tau: float) -> list[np.ndarray]:
    """Per view, ``exp(-((score - min) / tau) ** 2)`` where accepted (0 elsewhere), ``min`` the
    pixel's smallest score over its accepted views."""
    least = np.full(shape, np.inf, np.float32)
    for score, v in zip(scores, views, strict=True):
        _fold_least(score, v.mask, least[v.at])
    ranks = []
    for score, v in zip(scores, views, strict=True):
        rank = np.empty(v.mask.shape, np.float32)
        _rank_exponent(score, v.mask, least[v.at], np.float32(tau), rank)
        ranks.append(np.exp(rank, out=rank))  # numpy's exp (exp(-inf) = 0 where not accepted)
    return ranks


@njit(cache=True, nogil=True)
def _fold_least(score: np.ndarray, mask: np.ndarray,  # pragma: no cover (compiled)
                least: np.ndarray) -> None:
    """``least`` lowered (in place) to ``score`` where accepted."""
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            if mask[y, x] and score[y, x] < least[y, x]:
                least[y, x] = score[y, x]


@njit(cache=True, nogil=True)
def _rank_exponent(score: np.ndarray, mask: np.ndarray,  # pragma: no cover (compiled)
                   least: np.ndarray, tau: float, out: np.ndarray) -> None:
    """``-(max(score - least, 0) / tau) ** 2`` where accepted, ``-inf`` elsewhere (float32)."""
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            if mask[y, x]:
                t = max(score[y, x] - least[y, x], np.float32(0)) / tau
                out[y, x] = -(t * t)
            else:
                out[y, x] = -np.inf


def agreement(views: list[View], shape: tuple[int, int]) -> list[np.ndarray]:
    """Per view, its agreement in (0, 1] with the other accepted views (see above); each pair
    of views is compared on the pixels they share only."""
    logs = [np.maximum(v.reflectance, np.float32(1e-3)) for v in views]
    for x in logs:
        np.log(x, out=x)
    dis = [np.full(v.mask.shape, np.inf, np.float32) for v in views]
    for i, j in itertools.combinations(range(len(views)), 2):
        box = _overlap(views[i].at, views[j].at)
        if box is None:
            continue
        bi, bj = box
        _pair_disagreement(logs[i][(slice(None), *bi)], logs[j][(slice(None), *bj)],
                           views[i].mask[bi], views[j].mask[bj], dis[i][bi], dis[j][bj])
    for d in dis:  # no other accepted view to compare with
        d[~np.isfinite(d)] = 0.0
    return _excess_rank(dis, views, shape, AGREEMENT_TAU)


@njit(cache=True, nogil=True)
def _pair_disagreement(log_i: np.ndarray, log_j: np.ndarray,  # pragma: no cover
                       mask_i: np.ndarray, mask_j: np.ndarray, dis_i: np.ndarray,
                       dis_j: np.ndarray) -> None:
    """Where both views are accepted: their mean absolute log-ratio over the bands, folded into
    each one's smallest so far (``dis_i``, ``dis_j`` updated in place)."""
    bands = np.float32(log_i.shape[0])
    for y in range(mask_i.shape[0]):
        for x in range(mask_i.shape[1]):
            if mask_i[y, x] and mask_j[y, x]:
                d = abs(log_i[0, y, x] - log_j[0, y, x])
                for b in range(1, log_i.shape[0]):
                    d += abs(log_i[b, y, x] - log_j[b, y, x])
                d /= bands
                dis_i[y, x] = min(dis_i[y, x], d)
                dis_j[y, x] = min(dis_j[y, x], d)


def haze_rank(views: list[View], shape: tuple[int, int]) -> list[np.ndarray]:
    """Per view, its haze ranking in (0, 1] against the pixel's least hazy accepted view."""
    return _excess_rank([hot(v.reflectance) for v in views], views, shape, HOT_TAU)
