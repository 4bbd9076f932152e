"""What a catalog may make the pipeline read: the read policy of hrefs, and the open-time checks.

Search time (:class:`ReadPolicy`, applied by :mod:`basemap.stac.search` to every link it follows
and every asset href of the scenes it returns):

* a remote catalog (a STAC API, or a catalog fetched over http(s)) may reference remote hrefs
  (http, https, s3) only;
* a local catalog may reference remote hrefs, and local files under the catalog's own folder;
* local files elsewhere only under folders the user names (``read_roots``: ``--read-root DIR``),
  whatever the catalog.

Local hrefs (plain paths and ``file://`` URLs) are resolved (``..`` and symlinks: realpath)
before the check; any other scheme, and GDAL's ``/vsi...`` paths, are refused. A violation is a
:class:`ConfigError` (exit 2) naming the href, the item and the option that allows it.

Open time (:func:`check_openable`, :func:`open_raster`): a local asset must be a regular file
outside /proc, /dev and /sys (checked with ``os.stat``: never blocks on a FIFO), and GDAL may open
it with the drivers of :data:`ALLOWED_DRIVERS` only, so a VRT can't wrap some other file
(``BASEMAP_ALLOW_VRT=1`` allows VRTs: :func:`allowed_drivers`).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import rasterio
from rasterio.io import DatasetReader

from basemap import config
from basemap.errors import ConfigError, UnusableAssetError
from basemap.redact import redact_url

#: URL schemes of the remote hrefs any catalog may reference.
REMOTE_SCHEMES = ("http", "https", "s3")
#: GDAL raster drivers a catalog asset may be opened with (no VRT or other wrapping driver).
ALLOWED_DRIVERS = ("GTiff", "COG", "JP2OpenJPEG")
#: Folders of the kernel's pseudo files: never an asset.
SYSTEM_FOLDERS = ("/proc", "/dev", "/sys")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_KINDS = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}


def scheme(href: str) -> str | None:
    """The lower-case URL scheme of ``href`` (None for a plain path)."""
    match = _SCHEME.match(href)
    return match.group(1).lower() if match else None


def local_path(href: str) -> str:
    """The file system path of a local href (a plain path or a ``file://`` URL)."""
    return unquote(urlsplit(href).path) if scheme(href) == "file" else href


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class ReadPolicy:
    """Where the hrefs of one catalog may point (see the module docstring)."""

    catalog: str
    remote: bool
    roots: tuple[str, ...]

    @classmethod
    def for_catalog(cls, source: str, read_roots: tuple[str, ...] = ()) -> ReadPolicy:
        """The policy of the catalog ``source`` (a STAC API or catalog URL, or a local file),
        with the user's extra folders ``read_roots``."""
        remote = scheme(source) not in (None, "file")
        roots = [os.path.realpath(root) for root in read_roots]
        if not remote:
            roots.insert(0, os.path.dirname(os.path.realpath(local_path(source))))
        return cls(source, remote, tuple(roots))

    def check(self, href: str, what: str) -> None:
        """Raise :class:`ConfigError` when the catalog may not make the pipeline read ``href``.

        Args:
            href: an absolute URL or path (relative ones are taken from the working folder).
            what: what holds the href, for the message, e.g. "asset red of item X".
        """
        kind = scheme(href)
        if kind in REMOTE_SCHEMES:
            return
        if kind not in (None, "file") or href.startswith("/vsi"):
            raise ConfigError(
                f"{what} has the href {redact_url(href)}: basemap reads http(s), s3 and local "
                "files only (no other URL schemes, no GDAL /vsi paths); fix the catalog"
            )
        real = os.path.realpath(local_path(href))
        if any(_is_under(real, root) for root in self.roots):
            return
        shown = href if real == href else f"{href} (really {real})"
        if self.remote:
            where = (f"but the catalog {redact_url(self.catalog)} is remote: it may reference "
                     "http(s) and s3 hrefs only")
        else:
            where = f"outside the catalog's folder {self.roots[0]}"
        raise ConfigError(
            f"{what} points at the local file {shown}, {where}; to allow local files under a "
            "folder, pass --read-root DIR (read_roots)"
        )


def local_file_problem(path: str) -> str | None:
    """Why the local file ``path`` must not be opened (None: a regular file, or no file at all,
    left to the open to report as missing). Uses ``os.stat`` only: never blocks on a FIFO."""
    real = os.path.realpath(path)
    if any(_is_under(real, folder) for folder in SYSTEM_FOLDERS):
        return f"{path} is under {'/'.join(real.split('/')[:2])}, not a data file"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, kind in _KINDS.items():
        if test(mode):
            return f"{path} is {kind}, not a regular file"
    return None


def check_openable(href: str) -> None:
    """Raise :class:`UnusableAssetError` (exit 2) naming ``href`` when it is local and not a
    regular file (a FIFO, device, socket or folder, anything under /proc /dev /sys, a GDAL
    ``/vsi`` path), or when a sidecar GDAL would open beside it is not one either. Remote hrefs
    pass; a missing file passes (its open reports it as missing)."""
    if config.is_remote(href):
        return
    if href.startswith("/vsi"):
        raise UnusableAssetError(f"{href} is a GDAL virtual file system path, not a data file")
    path = local_path(href)
    problem = local_file_problem(path) or _sidecar_problem(path)
    if problem:
        raise UnusableAssetError(f"asset {href} can't be opened: {problem}")


def _sidecar_problem(path: str) -> str | None:
    """The problem of a file beside ``path`` that GDAL may open with it (``B04.tif.aux.xml``,
    ``B04.ovr``, ``B04.tfw``, ...): every entry of its folder named like it."""
    folder, name = os.path.split(path)
    stem = name.split(".", 1)[0]
    try:
        entries = [e.name for e in os.scandir(folder or ".") if e.name.startswith(stem)]
    except OSError:
        return None
    for entry in sorted(entries):
        if entry != name:
            problem = local_file_problem(os.path.join(folder, entry))
            if problem and "a folder" not in problem:
                return f"its sidecar {problem}"
    return None


def allowed_drivers() -> tuple[str, ...]:
    """The GDAL drivers an asset may be opened with: :data:`ALLOWED_DRIVERS`, plus VRT when
    ``BASEMAP_ALLOW_VRT=1`` (a VRT can reference any file the process can read)."""
    return ALLOWED_DRIVERS + (("VRT",) if config.allow_vrt() else ())


def open_raster(href: str) -> DatasetReader:
    """``rasterio.open(href)`` with GDAL restricted to the driver its suffix names (JPEG 2000 for
    ``.jp2``/``.j2k``, GeoTIFF for anything else: COGs are GeoTIFFs), so a VRT or any other
    wrapping format does not open whatever it is named; any driver with ``BASEMAP_ALLOW_VRT=1``.

    Raises:
        rasterio.errors.RasterioIOError: the file is not of its driver (a VRT, say), or it can't
            be opened at all.
    """
    if "VRT" in allowed_drivers():
        return rasterio.open(href)
    suffix = urlsplit(href).path.rsplit(".", 1)[-1].lower()
    return rasterio.open(href, driver="JP2OpenJPEG" if suffix in ("jp2", "j2k") else "GTiff")
