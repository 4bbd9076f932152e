"""Local stand-ins for the real Sentinel-2 archives, and real items pointed at them.

Servers (all on 127.0.0.1, nothing mocked):

* :class:`TokenServer`: Planetary Computer's SAS token API, ``GET /api/sas/v1/token/{collection}``
  -> ``{"msft:expiry": ..., "token": "st=...&se=...&sp=rl&sv=2021-06-08&sr=c&skoid=...&sig=..."}``
  (the shape PC answers), tokens valid for ``lifetime`` seconds and signed with an HMAC.
* :class:`SasServer`: an Azure Blob-like :class:`~tests.support.servers.RangeServer` that serves
  its folder only to requests whose query carries a valid, unexpired token of that TokenServer;
  otherwise 403 ``AuthenticationFailed`` (Azure's XML body), or ``unsigned_status`` (404, 409) for
  a request with no token at all, as PC's accounts answer.
* :class:`ReadFaultServer`: a RangeServer whose faults start at a file's first pixel read (a
  Range request past its first byte), so a fault starts after a preflight that only opens it.
* S3 like CDSE and Earth Search on one SeaweedFS (:func:`archive_buckets`): a private bucket
  ``eodata`` and a public-read bucket ``sentinel-cogs``.

Items (:func:`write_item`): a real item JSON of ``tests/data/stac-items`` with small rasters of
REAL pixels (a crop of ``tests/data/real-s2/29RKH``, 100 m, upsampled by pixel replication to
each asset's resolution) written at the item's own asset paths, placed on the item's UTM grid at
the crop's position in its tile, in the DN convention the archive uses (``dn_offset`` added to
reflectance x 10000). The item's geometry, bbox and ``proj:*`` fields are set to the rasters'
footprint; :func:`point_hrefs` then points the archive's hrefs at a server or bucket.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_points

from tests.support.servers import RangeServer, _RangeHandler

DATA = Path(__file__).resolve().parents[1] / "data"
ITEMS = DATA / "stac-items"
REAL_S2 = DATA / "real-s2" / "29RKH"
#: Resolution (m) of the real pixels; SCL is at twice that.
REAL_RES = 100

#: Asset key (Earth Search, Planetary Computer, CDSE) -> (real band file, resolution in m).
PRODUCED = {
    "red": ("B04", 10), "green": ("B03", 10), "blue": ("B02", 10), "nir": ("B08", 10),
    "scl": ("SCL", 20),
    "B04": ("B04", 10), "B03": ("B03", 10), "B02": ("B02", 10), "B08": ("B08", 10),
    "SCL": ("SCL", 20),
    "B04_10m": ("B04", 10), "B03_10m": ("B03", 10), "B02_10m": ("B02", 10),
    "B04_20m": ("B04", 20), "SCL_20m": ("SCL", 20),
}
#: The red asset of each archive's naming: its 10 m grid places the rasters.
RED_KEYS = ("red", "B04", "B04_10m")


# ---- items ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    """A square of the real tile 29RKH in its 100 m pixels (row, col of the top-left, side).

    The default is rough desert with dark outcrops: 58 % of its blue pixels are below 0.1
    reflectance, so shifted and unshifted DN (+1000) can be told apart; SCL is all class 5.
    """

    row: int = 16
    col: int = 800
    size: int = 32


#: Real vegetation: Sen2Cor L2A tile T29UNU of 2022-10-05 (western Ireland, baseline 04.00), at
#: 60 m, its DN carrying ESA's +1000 (model/data/real-s2-train/stactools-packages_sentinel2/):
#: a 32-px square of pasture, all SCL class 4, in its pixels (row, col).
IRELAND = DATA.parents[1] / "model" / "data" / "real-s2-train" / "stactools-packages_sentinel2"
PASTURE = (1792, 416, 32)


def pasture_pixels(band: str, res: int) -> np.ndarray:
    """The pasture square of the real Irish tile as reflectance x 10000 (the +1000 taken off),
    or SCL classes, at ``res`` metres by pixel replication."""
    r0, c0, n = PASTURE
    if band == "SCL":
        with rasterio.open(IRELAND / "T29UNU_20221005_L2A_SCL_60m.tif") as ds:
            data = ds.read(1)[r0:r0 + n, c0:c0 + n]
    else:
        with rasterio.open(IRELAND / "T29UNU_20221005_L2A_RGB_60m.tif") as ds:
            # the file has no NIR: B08 repeats B04 (the pipeline never reads it)
            raw = ds.read(("B04", "B03", "B02").index(band.replace("B08", "B04")) + 1)[
                r0:r0 + n, c0:c0 + n]
        data = np.where(raw > 1000, raw - 1000, 1).astype(np.uint16)  # 0 stays nodata-free
    up = 60 // res
    return np.repeat(np.repeat(data, up, axis=0), up, axis=1)


def real_item(name: str) -> dict:
    """A real item of ``tests/data/stac-items`` by file name (with or without ``.json``)."""
    return json.loads((ITEMS / (name.removesuffix(".json") + ".json")).read_text())


def real_pixels(band: str, crop: Crop, res: int) -> np.ndarray:
    """The crop of a real band (reflectance x 10000, or SCL classes) at ``res`` metres, by
    pixel replication (SCL is read from its 200 m grid: crop row, col and size must be even)."""
    source = 2 * REAL_RES if band == "SCL" else REAL_RES
    r0, c0 = crop.row * REAL_RES // source, crop.col * REAL_RES // source
    n = crop.size * REAL_RES // source
    with rasterio.open(REAL_S2 / f"{band}.tif") as ds:
        data = ds.read(1)[r0:r0 + n, c0:c0 + n]
    up = source // res
    return np.repeat(np.repeat(data, up, axis=0), up, axis=1)


def item_grid(item: dict) -> tuple[int, float, float]:
    """(EPSG, x, y of the top-left corner) of the item's 10 m red asset."""
    red = next(item["assets"][k] for k in RED_KEYS if k in item["assets"])
    code = item["properties"].get("proj:epsg") or red.get("proj:epsg") or red["proj:code"]
    t = red["proj:transform"]
    return int(str(code).rsplit(":", 1)[-1]), float(t[2]), float(t[5])


def archive_path(href: str) -> str:
    """An asset's key in its archive: the URL path without the bucket or host
    (``s3://eodata/Sentinel-2/...`` -> ``Sentinel-2/...``; ``https://host/a/b.tif`` -> ``a/b.tif``).
    """
    return unquote(urlsplit(href).path).lstrip("/")


def _storage_host(href: str) -> str:
    parts = urlsplit(href)
    return f"{parts.scheme}://{parts.netloc}"


def write_item(source: str | dict, root: Path, *, dn_offset: int = 0, crop: Crop = Crop(),
               grid: tuple[int, float, float] | None = None, properties: dict | None = None,
               rasters: bool = True, pasture: bool = False) -> dict:
    """A copy of a real item with rasters of real pixels written under ``root``.

    Args:
        source: a real item (dict) or its file name in ``tests/data/stac-items``.
        root: folder the rasters are written to, each at its asset's archive path.
        dn_offset: added to every valid DN of the reflectance bands (1000 for ESA's raw DN of
            baseline >= 04.00; 0 for older baselines and for pixels already shifted).
        crop: which real pixels of 29RKH.
        pasture: the real Irish pasture instead (:func:`pasture_pixels`; ``crop`` unused).
        grid: (EPSG, x0, y0) of the tile whose grid the crop is placed on (default: the item's
            own, from its red asset's ``proj:transform``).
        properties: merged into the item's properties.
        rasters: False: set the footprint only, write no file (an item the build must skip).

    Returns:
        The item; the hrefs of its archive's assets (those on the red asset's host or bucket)
        are archive paths relative to ``root``: :func:`point_hrefs` makes them URLs. Assets
        without a raster here (thumbnails, metadata, other bands) keep their paths and answer
        404 where they are pointed.
    """
    item = copy.deepcopy(real_item(source) if isinstance(source, str) else source)
    epsg, tile_x, tile_y = grid or item_grid(item)
    x0 = tile_x + (0 if pasture else crop.col * REAL_RES)
    y0 = tile_y - (0 if pasture else crop.row * REAL_RES)
    side = PASTURE[2] * 60 if pasture else crop.size * REAL_RES
    red_key = next(k for k in RED_KEYS if k in item["assets"])
    host = _storage_host(item["assets"][red_key]["href"])
    for key, asset in item["assets"].items():
        if _storage_host(asset.get("href", "")) != host:
            continue
        asset["href"] = archive_path(asset["href"])
        if key not in PRODUCED or not rasters:
            continue
        band, res = PRODUCED[key]
        data = pasture_pixels(band, res) if pasture else real_pixels(band, crop, res)
        if band != "SCL":
            data = np.where(data > 0, data.astype(np.int32) + dn_offset, 0).astype(np.uint16)
        _write_raster(root / asset["href"], data, epsg, Affine(res, 0, x0, 0, -res, y0))
        asset["proj:transform"] = [res, 0, x0, 0, -res, y0]
        asset["proj:shape"] = list(data.shape)
        if "proj:bbox" in asset:
            asset["proj:bbox"] = [x0, y0 - side, x0 + side, y0]
        if "proj:code" in asset:
            asset["proj:code"] = f"EPSG:{epsg}"
    props = item["properties"]
    if "proj:epsg" in props:
        props["proj:epsg"] = epsg
    lons, lats = warp_points(f"EPSG:{epsg}", "EPSG:4326", [x0, x0, x0 + side, x0 + side],
                             [y0, y0 - side, y0 - side, y0])  # counterclockwise
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats, strict=True)]
    item["geometry"] = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    item["bbox"] = [min(lons), min(lats), max(lons), max(lats)]
    if "proj:centroid" in props:
        props["proj:centroid"] = {"lat": round(sum(lats) / 4, 5), "lon": round(sum(lons) / 4, 5)}
    props.update(properties or {})
    return item


def revisit(item: dict, days: int) -> dict:
    """The item as another acquisition of its tile ``days`` later: every date in its id,
    properties and hrefs moved (so its files are other files). Call before :func:`write_item`."""
    then = datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    later = then + timedelta(days=days)
    text = json.dumps(item)
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        text = text.replace(then.strftime(fmt), later.strftime(fmt))
    return json.loads(text)


def _write_raster(path: Path, data: np.ndarray, epsg: int, transform: Affine) -> None:
    """One band: a JPEG 2000 (lossless, as in a SAFE) or an uncompressed COG (so that pixel
    reads are separate Range requests after the header), nodata 0, no sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "nodata": 0, "crs": f"EPSG:{epsg}",
               "transform": transform}
    if path.suffix == ".jp2":
        profile.update(driver="JP2OpenJPEG", quality=100, reversible=True)
    else:
        profile.update(driver="COG", compress="NONE", blocksize=128, overviews="NONE")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def point_hrefs(item: dict, prefix: str) -> dict:
    """A copy of a :func:`write_item` item whose archive paths are ``prefix + path`` (e.g.
    ``http://127.0.0.1:PORT/`` or ``s3://eodata/``)."""
    item = copy.deepcopy(item)
    for asset in item["assets"].values():
        href = asset.get("href", "")
        if href and not re.match(r"^[a-z][a-z0-9+.-]*://", href):
            asset["href"] = prefix + href
    return item


def write_item_collection(items: list[dict], path: Path) -> Path:
    """``items`` as an ItemCollection file (a static source for ``--stac``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def item_files(item: dict, root: Path) -> list[str]:
    """Archive paths of the item's assets that have a file under ``root``."""
    return [a["href"] for a in item["assets"].values()
            if a.get("href") and "://" not in a["href"] and (root / a["href"]).is_file()]


def bbox_inside(item: dict, margin: float = 0.2) -> str:
    """A W,S,E,N box inside the item's footprint (``margin`` of its size off each side)."""
    w, s, e, n = item["bbox"]
    dx, dy = (e - w) * margin, (n - s) * margin
    return f"{w + dx:.6f},{s + dy:.6f},{e - dx:.6f},{n - dy:.6f}"


# ---- Planetary Computer: SAS tokens and a blob server that checks them ------------------------

SAS_VERSION = "2021-06-08"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class TokenServer(ThreadingHTTPServer):
    """PC's SAS token API on 127.0.0.1: ``GET {url}/{collection}`` -> a token for that collection.

    Attributes:
        url: ``http://127.0.0.1:PORT/api/sas/v1/token`` (what ``BASEMAP_PC_SAS_URL`` takes).
        lifetime: seconds a token is valid (its ``se`` is rounded up to a whole second).
        issued: the tokens handed out, as ``(collection, token, expiry)``.
        busy: the next this many requests are answered 503 (a token API under load).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, lifetime: float = 3600.0, port: int = 0):
        super().__init__(("127.0.0.1", port), _TokenHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/api/sas/v1/token"
        self.lifetime = lifetime
        self.issued: list[tuple[str, str, str]] = []
        self.busy = 0
        self._key = secrets.token_bytes(32)
        self._skoid = str(uuid.uuid4())
        self._lock = threading.Lock()

    def start(self) -> TokenServer:
        """Serve in a daemon thread; returns self."""
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _sign(self, fields: dict[str, str], collection: str) -> str:
        text = "\n".join([collection] + [fields[k] for k in ("st", "se", "sp", "sv", "sr",
                                                              "skoid")])
        return base64.b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()
                                ).decode()

    def issue(self, collection: str) -> dict:
        """A new token for ``collection``, as PC's API answers it."""
        now = time.time()
        expiry = _iso(math.ceil(now + self.lifetime))
        fields = {"st": _iso(math.floor(now)), "se": expiry, "sp": "rl", "sv": SAS_VERSION,
                  "sr": "c", "skoid": self._skoid, "sktid": str(uuid.UUID(int=0)),
                  "skt": _iso(math.floor(now)), "ske": expiry, "sks": "b", "skv": SAS_VERSION}
        fields["sig"] = self._sign(fields, collection)
        token = urlencode(fields, quote_via=quote)
        with self._lock:
            self.issued.append((collection, token, expiry))
        return {"msft:expiry": expiry, "token": token}

    def refusal(self, query: str, collection: str) -> str | None:
        """Why a request's query is no valid, unexpired token for ``collection`` (None: it is)."""
        fields = dict(parse_qsl(query, keep_blank_values=True))
        if "sig" not in fields:
            return "no SAS token"
        if any(k not in fields for k in ("st", "se", "sp", "sv", "sr", "skoid")):
            return "SAS token incomplete"
        if not hmac.compare_digest(fields["sig"], self._sign(fields, collection)):
            return "Signature did not match"
        try:
            expiry = _parse_iso(fields["se"])
        except ValueError:
            return f"bad signed expiry {fields['se']!r}"
        if time.time() >= expiry:
            return (f"Signed expiry time [{fields['se']}] must be after current time "
                    f"[{_iso(time.time())}]")
        return None


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TokenServer

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        m = re.fullmatch(r"/api/sas/v1/token/([A-Za-z0-9._-]+)", urlsplit(self.path).path)
        if m and self.server.busy > 0:
            self.server.busy -= 1
            status, body = 503, b'{"detail": "busy"}'
        elif m:
            status, body = 200, json.dumps(self.server.issue(m.group(1))).encode()
        else:
            status, body = 404, b'{"detail": "Not Found"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass(frozen=True)
class SasRecord:
    """One request seen by a :class:`SasServer`: path, status sent, its token (or None), and
    when it was answered (``time.monotonic()``)."""

    path: str
    status: int
    token: str | None
    at: float


#: Azure's error codes and messages by status, for requests refused by a SasServer.
AZURE_ERRORS = {
    403: ("AuthenticationFailed", "Server failed to authenticate the request. Make sure the "
          "value of Authorization header is formed correctly including the signature."),
    404: ("ResourceNotFound", "The specified resource does not exist."),
    409: ("PublicAccessNotPermitted", "Public access is not permitted on this storage account."),
}


class SasServer(RangeServer):
    """A RangeServer that serves only requests signed with a token of ``tokens`` for
    ``collection`` (query ``st=...&se=...&sig=...``, checked: HMAC and expiry).

    A request without a token gets ``unsigned_status`` (403, or 404/409 as some PC accounts
    answer); one with a bad or expired token gets 403 ``AuthenticationFailed``; both with
    Azure's XML error body. Each answer waits ``latency`` seconds (a far-away archive).
    ``sas_log`` holds every request as a :class:`SasRecord`.
    """

    def __init__(self, root, tokens: TokenServer, collection: str = "sentinel-2-l2a",
                 unsigned_status: int = 403, latency: float = 0.0, port: int = 0):
        super().__init__(root, port)
        self.RequestHandlerClass = _SasHandler
        self.tokens = tokens
        self.collection = collection
        self.unsigned_status = unsigned_status
        self.latency = latency
        self.sas_log: list[SasRecord] = []

    def answered(self, ok: bool = True) -> list[SasRecord]:
        """The requests answered with data (200/206) when ``ok``, else the refused ones."""
        with self._lock:
            return [r for r in self.sas_log if (r.status in (200, 206)) == ok]


class _SasHandler(_RangeHandler):
    server: SasServer
    token: str | None = None

    def _send(self, status, headers, body=b"", head=False, path=""):
        with self.server._lock:
            self.server.sas_log.append(SasRecord(path, status, self.token, time.monotonic()))
        super()._send(status, headers, body, head, path)

    def _serve(self, head: bool):
        time.sleep(self.server.latency)
        parts = urlsplit(self.path)
        self.token = parts.query or None
        refusal = self.server.tokens.refusal(parts.query, self.server.collection)
        if refusal is None:
            return super()._serve(head)
        status = self.server.unsigned_status if self.token is None else 403
        code, message = AZURE_ERRORS[status]
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>'
                f"{message}\nRequestId:{uuid.uuid4()}\nTime:{_iso(time.time())}</Message>"
                f"<AuthenticationErrorDetail>{refusal}</AuthenticationErrorDetail></Error>"
                ).encode()
        self._send(status, {"Content-Type": "application/xml", "x-ms-error-code": code,
                            "Content-Length": str(len(body))}, body, head,
                   unquote(parts.path))


# ---- a Range server whose faults start mid-run -----------------------------------------------


class ReadFaultServer(RangeServer):
    """A RangeServer whose :meth:`refuse_from_first_read` faults start at a file's first pixel
    read: until then the file opens (HEAD and the header read, ``bytes=0-...``, are served), so
    a preflight that only opens it passes; from its first Range request past byte 0 on, every
    request of it is answered ``status``, as when a token expires or a grant is revoked."""

    def __init__(self, root, port: int = 0):
        super().__init__(root, port)
        self.RequestHandlerClass = _ReadFaultHandler
        self.refused: dict[str, int] = {}
        self.tripped: set[str] = set()

    def refuse_from_first_read(self, pattern: str, status: int = 403) -> None:
        """Answer ``status`` to paths matching ``pattern`` (fnmatch) from their first pixel
        read on."""
        self.refused[pattern] = status

    def clear_faults(self) -> None:
        """Switch every fault off, these included."""
        super().clear_faults()
        with self._lock:
            self.refused.clear()
            self.tripped.clear()


class _ReadFaultHandler(_RangeHandler):
    server: ReadFaultServer

    def _serve(self, head: bool):
        path = unquote(urlsplit(self.path).path)
        m = re.fullmatch(r"bytes=(\d+)-\d*", (self.headers.get("Range") or "").strip())
        with self.server._lock:
            pattern = next((p for p in self.server.refused if fnmatch.fnmatch(path, p)), None)
            if pattern is not None and m and int(m.group(1)) > 0:
                self.server.tripped.add(pattern)
            status = self.server.refused[pattern] if pattern in self.server.tripped else None
        if status is not None:
            return self._send(status, {"Content-Length": "0"}, head=head, path=path)
        return super()._serve(head)


# ---- S3 like CDSE (private eodata) and Earth Search (public sentinel-cogs) --------------------

#: The buckets :func:`archive_buckets` makes: name -> anonymous read allowed.
BUCKETS = {"eodata": False, "sentinel-cogs": True}


def archive_buckets(s3) -> None:
    """Make ``eodata`` (private: anonymous GET is 403) and ``sentinel-cogs`` (public read) on a
    :class:`tests.support.s3server.S3Server`."""
    for bucket, public in BUCKETS.items():
        s3.create_bucket(bucket)
        if public:
            s3.allow_public_read(bucket)


def upload_item(s3, bucket: str, item: dict, root: Path) -> dict:
    """Upload a :func:`write_item` item's files to ``bucket``; the item with ``s3://`` hrefs."""
    fs = s3.filesystem()
    for path in item_files(item, root):
        fs.put_file(str(root / path), f"{bucket}/{path}")
    return point_hrefs(item, f"s3://{bucket}/")
