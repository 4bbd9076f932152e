"""Real servers on 127.0.0.1 for the tests: a STAC API (``rustac serve``) and an HTTP Range server.

Nothing here is a mock: the STAC API is the ``rustac`` binary's in-memory backend (conforms to
core + item-search; no query extension), and :class:`RangeServer` is a real
``ThreadingHTTPServer`` that GDAL's ``/vsicurl/`` and pystac-client talk to over TCP.

Typical use (pytest fixtures in ``conftest.py`` wrap these)::

    with RangeServer(root_dir) as srv:
        srv.add_fault("*/B04.tif", "status", status=503, times=2)   # 503, 503, then OK
        url = srv.url_for("item/B04.tif")
        ...
        assert srv.count("/item/B04.tif") == 3

    with StacApiServer(items) as api:        # items: dir of item JSONs, catalog, ItemCollection
        Client.open(api.url).search(bbox=...)

Fault kinds for :meth:`RangeServer.add_fault` (matched with ``fnmatch`` on the URL path, first
matching fault wins, query string ignored):

* ``"status"``: answer ``status`` (500, 503, 429, 404, ...) with an empty body, ``times`` times
  (None: forever), then serve normally. ``retry_after`` adds a Retry-After header.
* ``"truncate"``: send the headers with the full Content-Length but only the first
  ``keep_bytes`` bytes of the body, then close the connection.
* ``"stall"``: accept the request and send nothing for ``seconds`` (default 60; longer than any
  client timeout in the tests), then close without answering. Stalls end early on ``stop()``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

#: GDAL settings for reading COGs from the test Range server: no directory listing, no retries
#: unless a test asks for them, short timeouts so a stall fails fast.
GDAL_TEST_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
    "GDAL_HTTP_TIMEOUT": "5",
    "GDAL_HTTP_CONNECTTIMEOUT": "2",
    "GDAL_HTTP_MAX_RETRY": "0",
    "VSI_CACHE": "FALSE",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- HTTP Range server with switchable faults -------------------------------------------------


@dataclass
class Fault:
    """One switchable fault (see the module docstring for the kinds)."""

    pattern: str
    kind: str
    status: int = 503
    times: int | None = None
    keep_bytes: int = 100
    seconds: float = 60.0
    retry_after: int | None = None
    fired: int = 0

    def active(self) -> bool:
        """True while the fault still fires."""
        return self.times is None or self.fired < self.times


@dataclass(frozen=True)
class RequestRecord:
    """One request seen by the server: method, path (no query), Range header, status sent (None:
    stalled), and the client's TCP port (which process asked: see psutil's net_connections)."""

    method: str
    path: str
    range: str | None
    status: int | None
    port: int | None = None
    sent: int = 0  # body bytes sent


@dataclass
class Route:
    """A handcrafted response for one exact path (GET and POST), e.g. a STAC page."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


class RangeServer(ThreadingHTTPServer):
    """Serves ``root`` over HTTP/1.1 with Range (206), HEAD, Content-Length, Accept-Ranges.

    Attributes:
        root: the directory served.
        url: base URL, e.g. ``http://127.0.0.1:PORT``.
        log: every request as a :class:`RequestRecord`, in arrival order.
        latency: seconds waited before answering each request (a distant server).
        peak_in_flight: the most requests it was answering at once.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: str | os.PathLike, port: int = 0):
        """Bind 127.0.0.1:port (0: any free port); call :meth:`start` (or use ``with``)."""
        super().__init__(("127.0.0.1", port), _RangeHandler)
        self.root = Path(root).resolve()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.log: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.latency = 0.0
        self.peak_in_flight = 0
        self._in_flight = 0

    # -- lifecycle
    def start(self) -> RangeServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End stalls, stop serving and close the socket."""
        self._stopping.set()
        self.shutdown()
        self.server_close()

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- configuration
    def url_for(self, relpath: str | os.PathLike) -> str:
        """URL of a file given relative to ``root`` (or absolute inside it)."""
        p = Path(relpath)
        if p.is_absolute():
            p = p.resolve().relative_to(self.root)
        return f"{self.url}/{p.as_posix()}"

    def add_fault(self, pattern: str, kind: str, **options) -> Fault:
        """Switch a fault on for paths matching ``pattern`` (fnmatch, e.g. ``"*/B04.tif"``).

        Args:
            pattern: glob on the URL path (starts with "/"; query ignored).
            kind: "status", "truncate" or "stall".
            **options: Fault fields: status, times, keep_bytes, seconds, retry_after.

        Returns:
            The Fault; its ``fired`` counts how often it fired.
        """
        if kind not in ("status", "truncate", "stall"):
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(pattern, kind, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self._faults.clear()

    def add_route(self, path: str, body: bytes | str | dict, content_type: str = "application/json",
                  status: int = 200) -> None:
        """Answer GET/POST on exactly ``path`` with ``body`` (a dict is sent as JSON)."""
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self._routes[path] = Route(body, content_type, status)

    def count(self, pattern: str = "*", method: str | None = None) -> int:
        """Number of requests whose path matches ``pattern`` (fnmatch), optionally by method."""
        with self._lock:
            return sum(
                1 for r in self.log
                if fnmatch.fnmatch(r.path, pattern) and (method is None or r.method == method)
            )

    def counts(self) -> Counter:
        """Requests per path."""
        with self._lock:
            return Counter(r.path for r in self.log)

    def reset_log(self) -> None:
        """Forget the requests seen so far."""
        with self._lock:
            self.log.clear()

    # -- used by the handler
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.active() and fnmatch.fnmatch(path, fault.pattern):
                    fault.fired += 1
                    return fault
        return None

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.log.append(rec)

    def _arrived(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RangeServer

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve(head=False)

    def _send(self, status, headers, body=b"", head=False, path=""):
        self.server._record(RequestRecord(self.command, path, self.headers.get("Range"), status,
                                          self.client_address[1], 0 if head else len(body)))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _serve(self, head: bool):
        self.server._arrived(1)
        try:
            if self.server.latency:
                time.sleep(self.server.latency)
            self._answer(head)
        finally:
            self.server._arrived(-1)

    def _answer(self, head: bool):
        path = unquote(urlsplit(self.path).path)
        fault = self.server._take_fault(path)
        if fault is not None and fault.kind == "stall":
            self.server._record(RequestRecord(self.command, path, self.headers.get("Range"), None,
                                              self.client_address[1]))
            self.server._stopping.wait(fault.seconds)
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            headers = {"Content-Length": "0"}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return self._send(fault.status, headers, head=head, path=path)
        route = self.server._routes.get(path)
        if route is not None:
            body, ctype, status = route.body, route.content_type, route.status
            return self._send(status, {"Content-Type": ctype, "Content-Length": str(len(body))},
                              body, head, path)
        file = (self.server.root / path.lstrip("/")).resolve()
        if not file.is_file() or self.server.root not in file.parents:
            return self._send(404, {"Content-Length": "0"}, head=head, path=path)
        data = file.read_bytes()
        size = len(data)
        status, start, end = 200, 0, size - 1
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or start > end:
                return self._send(416, {"Content-Range": f"bytes */{size}",
                                        "Content-Length": "0"}, head=head, path=path)
            status = 206
        body = data[start:end + 1]
        headers = {
            "Content-Type": "application/json" if file.suffix == ".json" else "image/tiff",
            "Content-Length": str(len(body)),
            "Accept-Ranges": "bytes",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if fault is not None and fault.kind == "truncate" and not head:
            self._send(status, headers, path=path)
            self.wfile.write(body[: fault.keep_bytes])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, headers, body, head, path)


# ---- STAC API: rustac serve ------------------------------------------------------------------


def rustac_binary() -> str:
    """Path of the ``rustac`` executable next to this Python (the venv), else on PATH."""
    local = Path(sys.executable).parent / "rustac"
    if local.exists():
        return str(local)
    found = shutil.which("rustac")
    if found is None:
        raise RuntimeError("rustac not found: pip install rustac (the project's test extra)")
    return found


def load_items(source: str | os.PathLike) -> list[dict]:
    """Item dicts, asset hrefs made absolute, from a directory of item JSONs (searched
    recursively), a static catalog/collection, an ItemCollection or one item file."""
    import pystac

    source = Path(source)
    if source.is_dir():
        items = []
        for f in sorted(source.rglob("*.json")):
            d = json.loads(f.read_text())
            if d.get("type") == "Feature":
                items.append(_absolute_assets(d, f.parent))
        return items
    d = json.loads(source.read_text())
    if d.get("type") == "Feature":
        return [_absolute_assets(d, source.parent)]
    if d.get("type") == "FeatureCollection":
        return [_absolute_assets(f, source.parent) for f in d["features"]]
    root = pystac.read_file(str(source))
    root.make_all_asset_hrefs_absolute()
    return [i.to_dict(include_self_link=False) for i in root.get_items(recursive=True)]


def _absolute_assets(item: dict, base: Path) -> dict:
    item = json.loads(json.dumps(item))
    for asset in item.get("assets", {}).values():
        href = asset.get("href", "")
        if href and not re.match(r"^[a-z][a-z0-9+.-]*://", href) and not os.path.isabs(href):
            asset["href"] = str((base / href).resolve())
    return item


class StacApiServer:
    """``rustac serve`` (in-memory backend) loaded with items, on a free 127.0.0.1 port.

    Args:
        items: item dicts, or a path accepted by :func:`load_items`.
        rewrite_href: optional function applied to every asset href before loading (e.g. map
            local files to the Range server's URLs).
        port: port to use (default: a free one).

    Attributes:
        url: the API root, ``http://127.0.0.1:PORT``.
        items: the item dicts as loaded.
    """

    def __init__(self, items, rewrite_href: Callable[[str], str] | None = None,
                 port: int | None = None):
        self.items = items if isinstance(items, list) else load_items(items)
        if rewrite_href is not None:
            self.items = [json.loads(json.dumps(i)) for i in self.items]
            for item in self.items:
                for asset in item.get("assets", {}).values():
                    asset["href"] = rewrite_href(asset["href"])
        for item in self.items:  # rustac must not follow links to files it can't see
            item["links"] = [lk for lk in item.get("links", []) if lk.get("rel") == "license"]
            item.setdefault("collection", "sentinel-2-l2a")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix="stac_api_")
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> StacApiServer:
        """Start rustac and wait until /conformance answers."""
        ic = Path(self._dir) / "items.json"
        ic.write_text(json.dumps({"type": "FeatureCollection", "features": self.items}))
        log = open(Path(self._dir) / "rustac.log", "wb")
        self._proc = subprocess.Popen(
            [rustac_binary(), "serve", "--create-collections", "--addr",
             f"127.0.0.1:{self.port}", str(ic)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"rustac serve exited: {self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "/conformance", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rustac serve not ready after {timeout} s: {self.log_text()}")

    def log_text(self) -> str:
        """What rustac printed."""
        p = Path(self._dir) / "rustac.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        """Kill rustac and remove its temp dir."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> StacApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- a served world: COGs over the Range server, items in rustac ------------------------------


class ServedWorld(NamedTuple):
    """A static catalog served for real: ``(stac_api_url, range_server, catalog_path)``."""

    stac_api_url: str
    range_server: RangeServer
    catalog_path: Path


def serve_catalog(catalog_path: str | os.PathLike):
    """Serve a static catalog: its directory over a RangeServer, its items (asset hrefs
    rewritten to ``http://127.0.0.1:PORT/...``) in rustac.

    Returns:
        (ServedWorld, stop): call ``stop()`` to end both servers.
    """
    catalog_path = Path(catalog_path).resolve()
    rs = RangeServer(catalog_path.parent).start()
    try:
        api = StacApiServer(
            load_items(catalog_path),
            rewrite_href=lambda h: rs.url_for(h) if os.path.isabs(h) else h,
        ).start()
    except BaseException:
        rs.stop()
        raise

    def stop():
        api.stop()
        rs.stop()

    return ServedWorld(api.url, rs, catalog_path), stop
