"""Opening Sentinel-2 assets: local files as GDAL opens them, remote ones with the remote-only
settings; the errors that name an asset; the checks that an opened asset can be used.

Errors are sorted (docs/reliability.md, rows 7-11): a missing asset (HTTP 404, no such file) raises
:class:`basemap.errors.MissingAssetError` (the block skips the scene and is marked degraded); a
refused one (401, 403, 409, S3 access denied) raises :class:`AuthError` with what to set for its
archive (exit 2 at the preflight, a failed block mid-run); anything else that keeps an asset from
being read (5xx or 429 after GDAL's retries, timeouts, truncated or corrupt files) raises
:class:`AssetError` naming the href, and the block fails. After any failure GDAL's per-process
cache of that URL is dropped, so a later attempt in the same process asks the server again instead
of replaying the cached failure. An asset that opens but can't be used as given (no CRS, several
bands, float or 8-bit data, no driver for its format) raises :class:`UnusableAssetError` (exit 2)
naming the href and the fix; the build checks its local assets, and one remote asset per source,
before any block runs (:func:`check_assets`).
Hrefs are made readable (signed, S3 settings) by :mod:`basemap.read.access` at open time.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Iterable

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from basemap.config import is_remote, open_env
from basemap.errors import AssetError, AuthError, MissingAssetError, UnusableAssetError
from basemap.read.access import forget_token, readable_href, s3_options
from basemap.read.gdal_lib import gdal_function, vsi_path
from basemap.stac.hrefs import check_openable, open_raster
from basemap.stac.scene import Scene
from basemap.stac.sources import profile_named

__all__ = ["asset_error", "check_asset", "check_assets", "forget", "open_asset",
           "open_scene_asset", "read_dn"]

#: What GDAL says when an archive refuses a request (HTTP 401/403/409, S3's error codes).
_REFUSED = re.compile(r"HTTP response code: (401|403|409)\b|Access ?Denied|InvalidAccessKeyId|"
                      r"SignatureDoesNotMatch|AuthenticationFailed|AuthorizationFailure|"
                      r"InvalidToken|ExpiredToken|AWS_SECRET_ACCESS_KEY", re.IGNORECASE)

log = logging.getLogger(__name__)

#: Asset keys checked by :func:`check_assets`.
CHECKED = ("red", "green", "blue", "scl")


def forget(href: str) -> None:
    """Drop GDAL's cached state of a remote file (a failed open is otherwise remembered by the
    process and replayed, as "does not exist", to every later open of the URL)."""
    if "://" not in href:
        return
    fn = gdal_function("VSICurlPartialClearCache", (ctypes.c_char_p,))
    if fn is not None:
        fn(vsi_path(href).encode())


_path_options: set[tuple] = set()


def _use_s3_options(href: str, options: dict[str, str]) -> None:
    """Give GDAL an archive's S3 settings for the bucket of ``href`` only (path-specific
    options: credentials never enter the process environment, where the output's S3 client
    would find them)."""
    bucket = vsi_path(href).split("/")[2]
    prefix = f"/vsis3/{bucket}/"
    if (prefix, tuple(sorted(options.items()))) in _path_options:
        return
    fn = gdal_function("VSISetPathSpecificOption", (ctypes.c_char_p,) * 3)
    if fn is None:
        raise AuthError(f"this GDAL cannot take per-bucket S3 settings for {href}: install a "
                        "rasterio built with GDAL >= 3.6")
    clear = gdal_function("VSIClearPathSpecificOptions", (ctypes.c_char_p,))
    clear(prefix.encode())
    for key, value in options.items():
        fn(prefix.encode(), key.encode(), value.encode())
    _path_options.add((prefix, tuple(sorted(options.items()))))


def asset_error(exc: Exception, href: str, scene_id: str, key: str, doing: str,
                source: str = "generic") -> AssetError:  # fmt: skip
    """The AssetError for a failed open or read of ``href`` (MissingAssetError for a 404,
    AuthError with the archive's hint for a refusal).

    Raise it outside the ``except`` block: GDAL's text is in the message, and rasterio's CPLE
    errors in its ``__context__`` can't cross Dask (tblib can't rebuild them, so Dask would send
    a bare ``Exception`` with the text instead of the AssetError).
    """
    text = str(exc)
    if _REFUSED.search(text):
        return AuthError(f"{doing} asset {key} of scene {scene_id} at {href} was refused "
                         f"(authentication or authorization: {text}). "
                         f"{profile_named(source).auth_hint}")
    if re.search(r"HTTP response code: 404\b|No such file or directory", text):
        return MissingAssetError(f"asset {key} of scene {scene_id} not found (404): {href}")
    hint = ""
    if re.search(r"HTTP response code: (429|5\d\d)|timed out|CURL error", text):
        hint = " (the server kept failing through GDAL's retries; rerun to retry the block)"
    elif re.search(r"TIFF|not recognized|Read error|IReadBlock|corrupt", text, re.IGNORECASE):
        hint = " (truncated or corrupt file?)"
    return AssetError(f"{doing} asset {key} of scene {scene_id} at {href} failed{hint}: {text}")


#: File suffix -> the GDAL driver that reads it (checked when such a file fails to open).
_DRIVERS = {".jp2": "JP2OpenJPEG", ".j2k": "JP2OpenJPEG"}


def _missing_driver(href: str) -> UnusableAssetError | None:
    """The error for a file whose format this GDAL cannot read (None if the driver is there)."""
    suffix = "." + href.rsplit(".", 1)[-1].lower() if "." in href else ""
    driver = _DRIVERS.get(suffix)
    if driver is None or driver in rasterio.drivers.raster_driver_extensions().values():
        return None
    return UnusableAssetError(
        f"{href}: the GDAL of this rasterio has no {driver} driver for {suffix} files; install "
        f"a rasterio/GDAL built with OpenJPEG, or convert the asset (gdal_translate -of COG)"
    )


def _wrapping_format(href: str) -> UnusableAssetError | None:
    """The error for a VRT given as an asset (refused: it can wrap any file; None if not one)."""
    head = b""
    if not is_remote(href):
        try:
            with open(href, "rb") as fh:
                head = fh.read(64)
        except OSError:
            pass
    if not (href.lower().endswith(".vrt") or head.lstrip().startswith(b"<VRTDataset")):
        return None
    return UnusableAssetError(f"{href} is a GDAL VRT, which can wrap any file this process can "
                              "read: refused (set BASEMAP_ALLOW_VRT=1 if you made it yourself)")


def open_asset(href: str, scene_id: str, key: str, source: str = "generic",
               collection: str = "") -> DatasetReader:  # fmt: skip
    """Open an asset: a local file as GDAL opens it (sidecars honoured), a remote one with the
    remote-only settings (:func:`basemap.config.open_env`), signed or with its archive's S3
    settings (:mod:`basemap.read.access`)."""
    check_openable(href)
    if href.startswith(("s3://", "/vsis3/")):
        _use_s3_options(href, s3_options(source))
    try:
        with rasterio.Env(**open_env(href)):
            return open_raster(readable_href(href, source, collection))
    except RasterioIOError as exc:
        error = (_missing_driver(href) or _wrapping_format(href)
                 or asset_error(exc, href, scene_id, key, "opening", source))
    forget(href)
    if isinstance(error, AuthError):
        forget_token(collection)
    raise error


def open_scene_asset(scene: Scene, key: str) -> DatasetReader:
    """:func:`open_asset` of a scene's canonical asset ``key``."""
    return open_asset(scene.href(key), scene.id, key, scene.source, scene.collection)


def check_asset(ds: DatasetReader, href: str, scene_id: str, key: str) -> None:
    """Raise :class:`UnusableAssetError` naming ``href`` and the fix when an open asset can't be
    used: no CRS or geotransform, not one band, not integer DN (reflectance) or classes (SCL)."""
    where = f"asset {key} of scene {scene_id} ({href})"
    if ds.crs is None or ds.transform.is_identity:
        what = "no CRS" if ds.crs is None else "no geotransform"
        raise UnusableAssetError(
            f"{where} has {what}: keep its georeferencing sidecar ({href}.aux.xml) beside it, "
            "or write one into the file (e.g. gdal_edit.py -a_srs EPSG:<code> -a_ullr ...)"
        )
    if ds.count != 1:
        raise UnusableAssetError(
            f"{where} has {ds.count} bands; expected one band per asset (point the item's "
            f"{key} asset at a single-band file, e.g. gdal_translate -b N)"
        )
    if ds.dtypes[0] not in ("uint8", "uint16", "int16", "uint32", "int32") or (
        key != "scl" and ds.dtypes[0] == "uint8"
    ):
        want = "integer classes" if key == "scl" else "integer DN (uint16)"
        raise UnusableAssetError(
            f"{where} is {ds.dtypes[0]}, expected {want}: is it the 8-bit 'visual' asset, or "
            "reflectance already scaled to float? Point the item at the L2A band files"
        )


def check_assets(scenes: Iterable[Scene]) -> None:
    """Preflight (before any block runs): open the local assets of ``scenes`` and check each
    (:func:`check_asset`), and open one remote asset per source (archive profile, collection
    and host), so that an unusable asset or a refusing archive fails the run with exit 2 instead
    of every block. Remote assets that are missing or fail otherwise are left to the blocks."""
    sources_seen: set[tuple] = set()
    for scene in scenes:
        for key, href in scene.assets:
            if key not in CHECKED:
                continue
            if is_remote(href):
                where = (scene.source, scene.collection, href.split("/")[2] if "//" in href
                         else href.split("/")[1:3])
                if where in sources_seen:
                    continue
                sources_seen.add(where)
            try:
                ds = open_asset(href, scene.id, key, scene.source, scene.collection)
            except (UnusableAssetError, AuthError):
                raise
            except AssetError:
                continue
            with ds:
                check_asset(ds, href, scene.id, key)


def read_dn(ds: DatasetReader, window: Window) -> np.ndarray:
    """Band 1 of ``ds`` in ``window`` with every nodata value as 0 (the pipeline's nodata): the
    file's own nodata (e.g. -32768 of an int16 asset) and negative values."""
    data = ds.read(1, window=window)
    if ds.nodata is not None and ds.nodata != 0:
        data[data == ds.nodata] = 0
    if np.issubdtype(data.dtype, np.signedinteger):
        data[data < 0] = 0
    return data
