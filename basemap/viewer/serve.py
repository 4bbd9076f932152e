"""`basemap serve`: a hardened static host for a build's files, with a Leaflet web map page.

Routes:

- ``/``: the viewer page (basemap/viewer/static/index.html; Leaflet and pmtiles JS are vendored
  under basemap/viewer/static/vendor/, nothing is loaded from a CDN);
- ``/static/...``: the viewer's assets;
- ``/layers.json``: the layers found in OUT (see basemap/output/layers.py for the convention), with
  their tile URL templates on this server, bounds and zooms;
- ``/tilejson/<n>.json``: layer n's TileJSON with absolute tile URLs on this server (for QGIS or
  any other web map);
- ``/<path>`` and ``/data/<path>``: OUT's files, as a static host serves OUT at ``/`` (so
  ``/tilejson.json`` works and its relative ``tiles/{z}/{x}/{y}`` template resolves; the page loads
  each tile set through its TileJSON there), with HTTP Range support (206), which is how the viewer
  reads ``.pmtiles`` archives (the pmtiles JS library in the browser, no server-side decoding).

Only the files a basemap consists of are served from OUT (`basemap_kind`): tiles, TileJSON, STAC
JSON, build.json and manifest.json, COGs under cogs/, mosaic.vrt and PMTiles archives. Any other
file, and any path with a component starting with '.', answers 404. Only what web maps fetch
(`MAP_KINDS`, and ``/tilejson/<n>.json``) carries ``Access-Control-Allow-Origin: *``. Malformed
paths (NUL or control characters, backslashes, empty components, invalid percent-encoding or
UTF-8) answer 400, over-long ones 414. Connections idle for `IDLE_TIMEOUT_S` are closed.

A tile that does not exist answers **404** with an empty body (the build writes no tile where there
is no data; Leaflet then shows nothing there), so clients and caches can tell "no tile" from a tile.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from basemap.errors import ConfigError
from basemap.output.layers import find_layers
from basemap.output.media import media_type
from basemap.output.pmtiles import read_archive_info
from basemap.viewer.paths import BadPath, basemap_kind, decode_path, file_under

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
#: Seconds a connection may stay silent (idle between requests, or mid-request) before it is closed.
IDLE_TIMEOUT_S = 30.0
#: Connections the kernel queues until the server accepts them (listen backlog).
LISTEN_BACKLOG = 1024
#: Kinds of OUT files web maps fetch from other origins: their answers carry CORS headers.
MAP_KINDS = frozenset({"tile", "tilejson", "stac", "cog", "pmtiles"})

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16
_TILEJSON_ROUTE = re.compile(r"/tilejson/([0-9]{1,6})\.json")
_PRIVATE_KEYS = ("tilejson_doc", "tiles_dir")  # layer entries the server keeps to itself


def describe_layers(out: Path) -> list[dict]:
    """The viewer's layer list: one entry per tile set or archive found under OUT.

    Raises:
        ConfigError: when OUT holds no tile set (see basemap.output.layers.find_layers).
    """
    out = Path(out).resolve()
    tilesets, archives = find_layers(out)
    layers = []
    for ts in tilesets:
        rel = ts.root.relative_to(out).as_posix()
        try:
            tiles_rel = ts.tiles_dir.resolve().relative_to(out).as_posix()
        except ValueError:
            raise ConfigError(
                f"{ts.root}/tilejson.json points at tiles outside {out}; serve their common folder"
            ) from None
        if rel == "." or ts.name == Path(rel).name:
            label = ts.name if rel == "." else rel
        else:
            label = f"{rel} ({ts.name})"
        layers.append(
            {
                "kind": "xyz",
                "name": label,
                "path": rel,
                "url": f"/data/{tiles_rel}/{{z}}/{{x}}/{{y}}.{ts.ext}",
                "tilejson": "/tilejson.json" if rel == "." else f"/{rel}/tilejson.json",
                "format": ts.ext,
                "minzoom": ts.minzoom,
                "maxzoom": ts.maxzoom,
                "bounds": list(ts.bounds),
                "tilejson_doc": json.loads(ts.tilejson),
                "tiles_dir": Path(tiles_rel).parts,
            }
        )
    for path in archives:
        info = read_archive_info(path)
        rel = path.relative_to(out).as_posix()
        layers.append(
            {
                "kind": "pmtiles",
                "name": f"{rel} (PMTiles)",
                "path": rel,
                "url": f"/data/{rel}",
                "format": info.tile_type.lower(),
                "minzoom": info.minzoom,
                "maxzoom": info.maxzoom,
                "bounds": list(info.bounds),
            }
        )
    for i, layer in enumerate(layers):
        layer["id"] = i
    return layers


class _Handler(BaseHTTPRequestHandler):
    """Routes GET/HEAD/OPTIONS; see the module docstring."""

    server_version = "basemap-serve"
    protocol_version = "HTTP/1.1"

    def __init__(self, *args: Any, out: Path, layers: list[dict], **kwargs: Any) -> None:
        self.out = out
        self.layers = layers
        self.tile_dirs = frozenset(la["tiles_dir"] for la in layers if la["kind"] == "xyz")
        self.cors = False  # whether the answer being sent carries CORS headers
        super().__init__(*args, **kwargs)

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # applied to the socket by StreamRequestHandler
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag")
        self.cors = False  # the flag is per answer; a kept-alive connection may ask for anything
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # noqa: N802 (stdlib name)
        if (path := self._request_path()) is None:
            return
        _, self.cors = self._resolve(path)
        self.send_response(HTTPStatus.NO_CONTENT)
        if self.cors:
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Range, If-Match, If-None-Match")
        self.send_header("Allow", "GET, HEAD, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._route(body=True)

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the browser went away (pan/zoom, close)
            self.close_connection = True

    def _request_path(self) -> str | None:
        """The decoded request path, or None once a malformed one has been answered (4xx)."""
        try:
            return decode_path(self.path)
        except BadPath as exc:
            self._send_error(exc.status)
            return None

    def _route(self, body: bool) -> None:
        if (path := self._request_path()) is None:
            return
        send, self.cors = self._resolve(path)
        send(body)

    def _resolve(self, path: str) -> tuple[Callable[[bool], None], bool]:
        """How to answer a GET of path (called with `body`), and whether the answer carries CORS."""
        if path in ("/", "/index.html"):
            return partial(self._send_file, STATIC_DIR / "index.html"), False
        if path == "/layers.json":
            public = [{k: v for k, v in la.items() if k not in _PRIVATE_KEYS} for la in self.layers]
            return partial(self._send_bytes, json.dumps(public).encode(), "application/json"), False
        if m := _TILEJSON_ROUTE.fullmatch(path):
            return partial(self._send_tilejson, int(m.group(1))), True
        if path.startswith("/static/"):
            return partial(self._send_file, file_under(STATIC_DIR, path[len("/static/") :])), False
        rel = path[len("/data/") :] if path.startswith("/data/") else path[1:]
        kind = basemap_kind(tuple(rel.split("/")), self.tile_dirs)
        file = file_under(self.out, rel) if kind else None
        return partial(self._send_file, file), kind in MAP_KINDS

    def _send_tilejson(self, index: int, body: bool) -> None:
        if index >= len(self.layers) or self.layers[index]["kind"] != "xyz":
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        layer = self.layers[index]
        doc = dict(layer["tilejson_doc"])
        host = self.headers.get("Host") or _host_port(self.server)
        doc["tiles"] = [f"http://{host}{layer['url']}"]
        self._send_bytes(json.dumps(doc).encode(), "application/json", body)

    def _send_error(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _send_bytes(self, data: bytes, content_type: str, body: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _send_file(self, path: Path | None, body: bool) -> None:
        try:
            f = open(path, "rb") if path is not None else None
        except OSError:  # gone or unreadable since it was looked up
            f = None
        if f is None:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        with f:
            self._send_open_file(f, path.name, os.fstat(f.fileno()), body)

    def _send_open_file(self, f: BinaryIO, name: str, stat: os.stat_result, body: bool) -> None:
        size = stat.st_size
        etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
        start, end = 0, size - 1
        status = HTTPStatus.OK
        if (rng := self.headers.get("Range")) is not None:
            m = _RANGE.match(rng.strip())
            if m is None or (not m.group(1) and not m.group(2)):
                self._send_range_error(size)
                return
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                self._send_range_error(size)
                return
            status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", media_type(name))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-cache")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        f.seek(start)
        remaining = length
        while remaining > 0:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                break
            self.wfile.write(chunk)
            remaining -= len(chunk)

    def _send_range_error(self, size: int) -> None:
        self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    """A thread per connection, a real listen backlog, and `idle_timeout` on every connection
    (read when a connection is accepted, so it may be changed on a running server)."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    idle_timeout = IDLE_TIMEOUT_S


def _host_port(server: ThreadingHTTPServer) -> str:
    """'host:port' a server listens on."""
    host, port = server.server_address[:2]
    return f"{host}:{port}"


def make_server(out: Path, port: int = 8000, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A ready (bound, not yet serving) HTTP server for OUT; port 0 picks a free port.

    Raises:
        ConfigError: when OUT holds no tiles, or the port is taken.
    """
    out = Path(out).resolve()
    layers = describe_layers(out)
    handler = partial(_Handler, out=out, layers=layers)
    try:
        return _Server((host, port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc}); pick another --port") from exc


def serve(out: Path, port: int = 8000, host: str = "127.0.0.1",
          ready: Callable[[str], None] | None = None) -> None:
    """Serve OUT until interrupted (Ctrl-C).

    Args:
        out: a build's output folder.
        port: TCP port (0 picks a free one).
        host: address to bind; 127.0.0.1 keeps it local.
        ready: called with the page URL once the server listens.
    """
    server = make_server(out, port, host)
    url = f"http://{_host_port(server)}/"
    if ready is not None:
        ready(url)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_in_thread(out: Path, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server for OUT in a daemon thread; returns it and its URL (stop: ``.shutdown()``)."""
    server = make_server(out, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{_host_port(server)}/"
