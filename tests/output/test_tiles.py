"""Tile writing and the exact alpha-aware 2x reduction of the pyramid."""

import io

import numpy as np
import pytest
from PIL import Image

from basemap.output.pyramid import write_levels
from basemap.output.storage import LocalStorage
from basemap.output.tiles import TileOutput, assemble, encode, reduce2x


def test_reduce2x_is_the_alpha_weighted_mean():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    rgba[3, :2, :2] = 0  # one fully transparent 2x2 cell
    out = reduce2x(rgba)
    q = rgba.astype(float).reshape(4, 4, 2, 4, 2)
    a = q[3].sum(axis=(1, 3))
    expect = (q[:3] * q[3][None]).sum(axis=(2, 4)) / np.where(a > 0, a, 1)
    # exact up to rounding half up of the true mean: |diff| <= 0.5
    assert np.abs(out[:3] - expect).max() <= 0.5
    assert out[3, 0, 0] == 0 and (out[:3, 0, 0] == 0).all()
    assert np.abs(out[3] - a / 4).max() <= 0.5


def test_transparent_pixels_do_not_darken():
    rgba = np.zeros((4, 2, 2), np.uint8)
    rgba[:3, 0, 0] = 200
    rgba[3, 0, 0] = 255
    out = reduce2x(rgba)
    assert out[:3, 0, 0].tolist() == [200, 200, 200]  # not 50: nodata is alpha, not black
    assert out[3, 0, 0] == 64


def test_levels_equal_reduction_of_children(tmp_path):
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (4, 512, 512), dtype=np.uint8)
    rgba[3] = np.where(rgba[3] > 100, 255, 0)
    out = TileOutput(LocalStorage(str(tmp_path)), "png")
    counts, root = write_levels(rgba, 10, 20, 14, 0, out)
    assert counts == {14: 4, 13: 1}
    kids = tuple(rgba[:, r:r + 256, c:c + 256] for r in (0, 256) for c in (0, 256))
    assert np.array_equal(root, reduce2x(assemble(kids)))
    png = np.asarray(Image.open(tmp_path / "tiles/13/5/10.png"))
    assert np.array_equal(np.moveaxis(png, -1, 0), root)  # PNG is lossless


def test_encode_formats():
    empty = np.zeros((4, 256, 256), np.uint8)
    assert encode(empty, "webp") is None
    opaque = np.full((4, 256, 256), 255, np.uint8)
    assert Image.open(io.BytesIO(encode(opaque, "jpeg"))).format == "JPEG"
    holes = opaque.copy()
    holes[3, :10] = 0
    # JPEG has no alpha: a tile with nodata is stored as PNG (invariant 7)
    assert Image.open(io.BytesIO(encode(holes, "jpeg"))).format == "PNG"
    im = Image.open(io.BytesIO(encode(holes, "webp")))
    assert im.format == "WEBP" and im.mode == "RGBA"
    assert (np.asarray(im)[:10, :, 3] == 0).all()  # alpha is kept exactly (lossless alpha)


def _reduce2x_formula(rgba: np.ndarray) -> np.ndarray:
    """The documented reduction, in int64 and the plainest numpy (the reference)."""
    q = rgba.astype(np.int64).reshape(4, rgba.shape[1] // 2, 2, rgba.shape[2] // 2, 2)
    den = q[3].sum(axis=(1, 3))
    num = (q[:3] * q[3][None]).sum(axis=(2, 4))
    safe = np.where(den > 0, den, 1)
    rgb = np.where(den > 0, (2 * num + safe) // (2 * safe), 0)
    return np.concatenate([rgb, ((den + 2) // 4)[None]]).astype(np.uint8)


@pytest.mark.parametrize("alpha", ["opaque", "holes", "edge", "random", "clear"])
def test_reduce2x_is_exactly_the_integer_formula(alpha):
    """Every kind of 2x2 cell (4 opaque, 4 clear, mixed, partial alpha) gives the formula's
    integers, in the opaque fast path and the general one."""
    rng = np.random.default_rng(len(alpha))
    rgba = rng.integers(0, 256, (4, 64, 96), dtype=np.uint8)
    rgba[3] = {"opaque": 255, "clear": 0, "random": rgba[3],
               "holes": np.where(rgba[3] > 30, 255, 0),
               "edge": np.where(np.arange(96)[None, :] < np.arange(64)[:, None] + 20, 255, 0)
               }[alpha]
    np.testing.assert_array_equal(reduce2x(rgba), _reduce2x_formula(rgba))


@pytest.mark.parametrize("opaque", [True, False])
def test_png_tiles_are_lossless(opaque):
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (4, 256, 256), dtype=np.uint8)
    rgba[3] = 255 if opaque else np.where(rgba[3] > 60, rgba[3], 0)
    with Image.open(io.BytesIO(encode(rgba, "png"))) as im:
        assert im.mode == ("RGB" if opaque else "RGBA")
        got = np.moveaxis(np.asarray(im), -1, 0)
    np.testing.assert_array_equal(got, rgba[:3] if opaque else rgba)
