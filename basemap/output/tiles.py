"""XYZ tiles: keys, encoding, and the exact alpha-aware 2x reduction (docs/design.md, invariant 6).

Tiles are 256 px, keyed ``tiles/{z}/{x}/{y}.{ext}`` (Google/OSM scheme). Every lower zoom comes
from the four children above it, reduced from their lossless uint8 RGBA pixels (never from the
encoded WebP/JPEG, so lossy errors do not compound)::

    alpha  = round(mean(a))                          over the 2x2 children pixels
    rgb    = round(sum(rgb * a) / sum(a))            (0 where sum(a) == 0)

in integer arithmetic (round half up): exact and deterministic, so a tile at z is the same bytes
whether its children were computed in one block or four. A tile whose pixels are all transparent
is not written (a viewer shows nothing there).

Formats: ``webp`` (lossy, quality 90, lossless alpha), ``png`` (lossless) and ``jpeg``. JPEG has
no alpha (invariant 7: nodata is alpha, not black): with ``jpeg``, a tile with any transparent
pixel is stored as PNG under the same ``.jpg`` key (as MapProxy's "mixed" format; browsers, GDAL
and Pillow read the content, not the extension).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from basemap.grid import TILE_SIZE
from basemap.output.media import TILE_FORMATS
from basemap.output.storage import Storage

#: Lossy quality of WebP and JPEG tiles.
QUALITY = 90
#: zlib level of PNG tiles (with the "Up" filter on every row, :func:`png_bytes`): several times
#: faster to encode than Pillow's adaptive filters at level 6, for ~5-15 % more bytes
#: (BENCHMARKS.md).
PNG_LEVEL = 2


def tile_key(z: int, x: int, y: int, ext: str) -> str:
    """The storage key of a tile."""
    return f"tiles/{z}/{x}/{y}.{ext}"


def reduce2x(rgba: np.ndarray) -> np.ndarray:
    """Alpha-aware exact 2x reduction of uint8 RGBA (4, 2h, 2w) -> (4, h, w)."""
    c, h2, w2 = rgba.shape
    if c != 4 or h2 % 2 or w2 % 2:
        raise ValueError(f"expected (4, even, even) RGBA, got {rgba.shape}")
    # Strided views summed one by one: ~5-10x faster than a sum over the axes of a
    # (4, h, 2, w, 2) reshape (the same integers).
    out = np.empty((4, h2 // 2, w2 // 2), dtype=np.uint8)
    if (rgba[3] == 255).all():  # opaque: the formula below is exactly (sum + 2) // 4
        pairs = rgba[:3, 0::2].astype(np.uint16)  # rows first: contiguous, then columns
        pairs += rgba[:3, 1::2]
        total = pairs[:, :, 0::2] + pairs[:, :, 1::2]
        total += 2
        out[:3] = total >> 2
        out[3] = 255
        return out
    quads = [rgba[:, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
    den = quads[0][3].astype(np.uint16)
    total = quads[0][:3].astype(np.uint16)
    for q in quads[1:]:
        den += q[3]
        total += q[:3]
    total += 2
    out[:3] = total >> 2  # exact where the 4 pixels are opaque (den 1020)
    np.copyto(out[:3], 0, where=den == 0)
    ys, xs = np.nonzero((den > 0) & (den < 1020))  # the partly transparent cells: few
    if ys.size:
        a = [q[3, ys, xs].astype(np.uint32) for q in quads]
        num = sum(q[:3, ys, xs] * w for q, w in zip(quads, a, strict=True))
        d = a[0] + a[1] + a[2] + a[3]
        out[:3, ys, xs] = (2 * num + d) // (2 * d)
    out[3] = (den + 2) >> 2
    return out


def assemble(children: tuple[np.ndarray | None, ...]) -> np.ndarray:
    """Four child tiles (top-left, top-right, bottom-left, bottom-right; None = empty) -> one
    (4, 512, 512) RGBA mosaic."""
    t = TILE_SIZE
    out = np.zeros((4, 2 * t, 2 * t), dtype=np.uint8)
    for i, child in enumerate(children):
        if child is not None:
            r, c = divmod(i, 2)
            out[:, r * t : (r + 1) * t, c * t : (c + 1) * t] = child
    return out


def encode(rgba: np.ndarray, fmt: str) -> bytes | None:
    """Encode a (4, 256, 256) uint8 tile; None when it has no visible pixel.

    Fully opaque tiles are stored without an alpha channel.
    """
    alpha = rgba[3]
    if not alpha.any():
        return None

    opaque = bool((alpha == 255).all())
    pixels = np.moveaxis(rgba[:3] if opaque else rgba, 0, -1)
    if fmt == "png" or (fmt == "jpeg" and not opaque):
        return png_bytes(pixels)
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB" if opaque else "RGBA")
    buf = io.BytesIO()
    if fmt == "webp":
        image.save(buf, "WEBP", quality=QUALITY, method=4, alpha_quality=100, exact=False)
    elif fmt == "jpeg":
        image.save(buf, "JPEG", quality=QUALITY, optimize=False)
    else:
        raise ValueError(f"unknown tile format {fmt!r}; one of {', '.join(TILE_FORMATS)}")
    return buf.getvalue()


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of (h, w, 3|4) uint8 pixels: filter "Up" on every row (vectorised), then zlib.

    A fixed filter instead of per-row adaptive choice, numpy instead of a per-row loop: the
    encoding is dominated by zlib alone.
    """
    h, w, c = pixels.shape
    raw = np.ascontiguousarray(pixels).reshape(h, w * c)
    rows = np.empty((h, w * c + 1), dtype=np.uint8)
    rows[:, 0] = 2  # filter type Up: each byte minus the byte above it (mod 256)
    rows[0, 1:] = raw[0]
    np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, {3: 2, 4: 6}[c], 0, 0, 0)  # 8-bit RGB / RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_LEVEL)) + chunk(b"IEND", b""))


@dataclass(frozen=True)
class TileOutput:
    """Where and how tiles are written (frozen: crosses Dask boundaries)."""

    storage: Storage
    fmt: str = "webp"

    @property
    def ext(self) -> str:
        """File extension of the tiles."""
        return TILE_FORMATS[self.fmt]

    def write(self, z: int, x: int, y: int, rgba: np.ndarray) -> bool:
        """Encode and write a tile; False (nothing written) when it is empty."""
        data = encode(rgba, self.fmt)
        if data is None:
            return False
        self.storage.write_bytes(tile_key(z, x, y, self.ext), data)
        return True

    def __dask_tokenize__(self) -> tuple:
        return ("basemap.tiles.TileOutput", self.storage, self.fmt)
