"""The few functions of GDAL's C API that rasterio does not wrap, called on the libgdal rasterio
loaded, and GDAL's names of remote hrefs."""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def gdal_function(name: str, argtypes: tuple, restype=None):
    """A function of the libgdal rasterio loaded (None if not found: not Linux, or older)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "libgdal" in ln.rsplit("/", 1)[-1]})
        if paths:
            fn = getattr(ctypes.CDLL(paths[0]), name)
            fn.argtypes, fn.restype = list(argtypes), restype
            return fn
    except (OSError, AttributeError):
        pass
    log.debug("%s not available in this GDAL", name)
    return None


def vsi_path(href: str) -> str:
    """GDAL's name of a remote href (``s3://b/k`` -> ``/vsis3/b/k``, URLs -> ``/vsicurl/...``);
    a local path as it is."""
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("/vsi") or "://" not in href:
        return href
    return "/vsicurl/" + href
