"""`basemap serve`: a small threaded HTTP server for a build's tiles and a Leaflet web map page.

Routes (all answers carry ``Access-Control-Allow-Origin: *``):

- ``/``: the viewer page (basemap/viewer/static/index.html; Leaflet and pmtiles JS are vendored
  under basemap/viewer/static/vendor/, nothing is loaded from a CDN);
- ``/static/...``: the viewer's assets;
- ``/layers.json``: the layers found in OUT (see basemap/output/layers.py for the convention), with
  their tile URL templates on this server, bounds and zooms;
- ``/tilejson/<n>.json``: layer n's TileJSON with absolute tile URLs on this server (for QGIS or
  any other web map);
- ``/data/<path>``: any file under OUT, with HTTP Range support (206), which is how the viewer
  reads ``.pmtiles`` archives (the pmtiles JS library in the browser, no server-side decoding);
- ``/<path>``: any other path is OUT's file too, as a static host serves OUT at ``/``: so
  ``/tilejson.json`` (a build's TileJSON) works and its relative ``tiles/{z}/{x}/{y}`` template
  resolves. The page loads each tile set through its TileJSON there (``tilejson`` in
  ``/layers.json``).

A tile that does not exist answers **404** with an empty body (the build writes no tile where there
is no data; Leaflet then shows nothing there), so clients and caches can tell "no tile" from a tile.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from basemap.errors import ConfigError
from basemap.output.layers import find_layers
from basemap.output.media import media_type
from basemap.output.pmtiles import read_archive_info

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16


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

    def __init__(self, *args, out: Path, layers: list[dict], **kwargs):
        self.out = out
        self.layers = layers
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # noqa: N802 (stdlib name)
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Range, If-Match, If-None-Match")
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

    def _route(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path in ("/", "/index.html"):
            self._send_file(STATIC_DIR / "index.html", body)
        elif path == "/layers.json":
            public = [{k: v for k, v in la.items() if k != "tilejson_doc"} for la in self.layers]
            self._send_bytes(json.dumps(public).encode(), "application/json", body)
        elif m := re.fullmatch(r"/tilejson/(\d+)\.json", path):
            self._send_tilejson(int(m.group(1)), body)
        elif path.startswith("/static/"):
            self._send_file(_safe_join(STATIC_DIR, path[len("/static/") :]), body)
        elif path.startswith("/data/"):
            self._send_file(_safe_join(self.out, path[len("/data/") :]), body)
        else:  # OUT at / as on a static host (404 when there is no such file)
            self._send_file(_safe_join(self.out, path), body)

    def _send_tilejson(self, index: int, body: bool) -> None:
        if index >= len(self.layers) or self.layers[index]["kind"] != "xyz":
            self._send_error(HTTPStatus.NOT_FOUND, body)
            return
        layer = self.layers[index]
        doc = dict(layer["tilejson_doc"])
        host = self.headers.get("Host") or _host_port(self.server)
        doc["tiles"] = [f"http://{host}{layer['url']}"]
        self._send_bytes(json.dumps(doc).encode(), "application/json", body)

    def _send_error(self, status: HTTPStatus, body: bool) -> None:
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
        if path is None or not path.is_file():
            self._send_error(HTTPStatus.NOT_FOUND, body)
            return
        stat = path.stat()
        size = stat.st_size
        etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
        start, end = 0, size - 1
        status = HTTPStatus.OK
        if (rng := self.headers.get("Range")) is not None:
            m = _RANGE.match(rng.strip())
            if m is None or (not m.group(1) and not m.group(2)):
                self._send_range_error(size, body)
                return
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                self._send_range_error(size, body)
                return
            status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", media_type(path.name))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-cache")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        with open(path, "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _send_range_error(self, size: int, body: bool) -> None:
        self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _safe_join(root: Path, rel: str) -> Path | None:
    """root/rel, or None when rel climbs out of root (../, absolute paths, symlinks out)."""
    candidate = (root / rel.lstrip("/")).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate


def _host_port(server) -> str:
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
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc}); pick another --port") from exc
    server.daemon_threads = True
    return server


def serve(out: Path, port: int = 8000, host: str = "127.0.0.1", ready=None) -> None:
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
