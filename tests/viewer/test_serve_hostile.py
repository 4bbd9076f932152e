"""`basemap serve OUT` against hostile or careless clients, on a real server on 127.0.0.1.

OUT holds a basemap's files and, beside them, files no basemap holds (dotfiles, notes, secrets);
requests come over raw sockets where a client library would normalise or refuse the path.
"""

import shutil
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from basemap.output.layers import read_tileset
from basemap.output.pmtiles import write_pmtiles
from basemap.viewer import serve as serve_module
from basemap.viewer.serve import serve_in_thread

SECRET = b"aws_secret_access_key = do-not-serve"
TILE = "linear/tiles/10/528/363.webp"
#: What a basemap holds beside the fixture's tile sets (all served).
BASEMAP_FILES = {
    "build.json": b'{"renderer": "linear"}',
    "manifest.json": b'{"scenes": []}',
    "stac/catalog.json": b"{}",
    "stac/collection.json": b"{}",
    "stac/items/basemap-0-0.json": b"{}",
    "cogs/0_0.tif": b"II*\x00",
    "mosaic.vrt": b"<VRTDataset/>",
}
DOTFILES = [".env", ".aws/credentials", ".git/config", "linear/.env", "linear/tiles/.DS_Store",
            ".hidden/tiles/10/528/363.webp", "linear/tiles/10/528/.363.webp"]
OTHER_FILES = ["notes.txt", "secrets.yaml", "id_rsa", "linear/secrets.json", "linear/notes.txt",
               "linear/tiles/notes.txt", "cogs/readme.txt", "stac/notes.txt", "report.html"]


@pytest.fixture(scope="module")
def hostile_out(xyz_build, tmp_path_factory):
    """The fixture build plus a basemap's other files, files no basemap holds, an archive, a
    'build.json' outside OUT and symlinks out of OUT and into a dotfile."""
    root = tmp_path_factory.mktemp("hostile")
    out = root / "out"
    shutil.copytree(xyz_build, out)
    write_pmtiles(read_tileset(out / "unet" / "tilejson.json"), out / "unet.pmtiles")
    for rel, data in BASEMAP_FILES.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    for rel in DOTFILES + OTHER_FILES:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(SECRET)
    outside = root / "outside"
    (outside / "tiles/10/528").mkdir(parents=True)
    (outside / "build.json").write_bytes(SECRET)
    (outside / "tiles/10/528/363.webp").write_bytes(SECRET)
    (out / "escape").symlink_to(outside)
    (out / "cogs/leak.tif").symlink_to(out / ".env")
    return out


@pytest.fixture(scope="module")
def hostile_server(hostile_out):
    server, url = serve_in_thread(hostile_out)
    yield server, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def url(hostile_server):
    return hostile_server[1]


def _raw_get(url: str, target: bytes, timeout: float = 5.0) -> tuple[int | None, bytes]:
    """Send `GET <target>` as raw bytes; (status, body), status None when no answer came."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _still_serves(url: str) -> None:
    r = requests.get(url + TILE, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/webp"


def test_the_files_of_a_basemap_are_served(url, hostile_out):
    paths = [TILE, "unet/tiles/10/528/363.png", "linear/tilejson.json", "unet.pmtiles",
             *BASEMAP_FILES]
    for path in paths:
        for prefix in ("", "data/"):
            r = requests.get(url + prefix + path, timeout=5)
            assert r.status_code == 200, prefix + path
            assert r.content == (hostile_out / path).read_bytes(), prefix + path


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_dotfiles_are_404(url, method):
    for path in DOTFILES + ["%2eenv", ".aws%2fcredentials", "data/.git/config", "cogs/leak.tif"]:
        r = requests.request(method, url + path, timeout=5)
        assert r.status_code == 404, path
        assert SECRET not in r.content, path


def test_files_no_basemap_holds_are_404(url):
    for path in OTHER_FILES + ["data/notes.txt", "data/secrets.yaml"]:
        r = requests.get(url + path, timeout=5)
        assert r.status_code == 404, path
        assert r.content == b"", path


def test_cors_only_on_what_web_maps_fetch(url):
    """Tiles, TileJSON, STAC JSON, COGs and archives carry CORS; the page, its own files, the
    records, the VRT and 404s of other files do not."""
    cors = [TILE, "data/" + TILE, "linear/tilejson.json", "tilejson/0.json",
            "stac/collection.json", "stac/items/basemap-0-0.json", "cogs/0_0.tif", "unet.pmtiles"]
    plain = ["", "index.html", "static/viewer.js", "layers.json", "build.json", "manifest.json",
             "mosaic.vrt", "notes.txt", ".env"]
    for path in cors + plain:
        r = requests.get(url + path, timeout=5)
        assert r.status_code in (200, 404), path
        assert r.headers.get("Access-Control-Allow-Origin") == ("*" if path in cors else None), path
    # Preflight: allowed for a tile, not offered for the page.
    origin = {"Origin": "http://elsewhere.test", "Access-Control-Request-Headers": "range"}
    r = requests.options(url + TILE, headers=origin, timeout=5)
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = requests.options(url, headers=origin, timeout=5)
    assert r.status_code == 204 and "Access-Control-Allow-Origin" not in r.headers


MALFORMED = [
    b"/%00", b"/data/%00", b"/linear/tilejson.json%00.png", b"/a\x00b",
    b"/" + b"a" * 300, b"/data/linear/" + b"a" * 300 + b".webp", b"/" + b"%41" * 300,
    b"/" + b"/".join([b"tiles"] * 200),
    b"/%zz", b"/%", b"/data/%4", b"/%e2%28%a1", b"/%c0%ae%c0%ae/build.json",
    b"/data//etc/passwd", b"/%2Fetc%2Fpasswd", b"//etc/passwd",
    b"/..\\..\\etc\\passwd", b"/data/%5c..%5cbuild.json", b"/caf\xc3\xa9",
]


def test_malformed_paths_get_a_4xx_and_the_server_keeps_answering(url, capfd):
    for target in MALFORMED:
        status, _ = _raw_get(url, target)
        assert status is not None and 400 <= status < 500, target
        _still_serves(url)
    assert "Traceback" not in capfd.readouterr().err


def test_traversal_is_refused_in_24_forms(url, hostile_out):
    """Each names a file outside OUT (OUT/../outside/build.json, named like a basemap's file)."""
    outside = str(hostile_out.parent / "outside").encode()
    forms = [
        b"/../outside/build.json", b"/data/../outside/build.json", b"/%2e%2e/outside/build.json",
        b"/data/%2e%2e/outside/build.json", b"/%2E%2E/outside/build.json",
        b"/.%2e/outside/build.json", b"/%2e./outside/build.json", b"/..%2foutside%2fbuild.json",
        b"/data/..%2Foutside/build.json", b"/%2e%2e%2foutside%2fbuild.json",
        b"/linear/../../outside/build.json", b"/linear/%2e%2e/%2e%2e/outside/build.json",
        b"/..%5coutside%5cbuild.json", b"/..\\outside\\build.json",
        b"/%252e%252e/outside/build.json", b"/..;/outside/build.json",
        b"/%2F" + outside + b"/build.json", b"/data/%2f" + outside + b"/build.json",
        b"/" + outside + b"/build.json", b"/escape/build.json", b"/data/escape/build.json",
        b"/escape/tiles/10/528/363.webp", b"/../outside/tiles/10/528/363.webp",
        b"/file:" + outside + b"/build.json",
    ]
    assert len(forms) == 24
    for target in forms:
        status, body = _raw_get(url, target)
        assert status is not None and 400 <= status < 500, target
        assert SECRET not in body, target
    _still_serves(url)


def test_200_concurrent_connections_none_stalls(url):
    """Old listen backlog 5: ~7 % of 200 simultaneous connections waited for a SYN retransmit
    (>= 1 s). Each request here takes milliseconds; none may take a second."""
    n = 200
    parts = urlsplit(url)
    request = f"GET /{TILE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    start = threading.Barrier(n)
    results: list[tuple[bytes, float]] = []

    def fetch() -> None:
        start.wait(timeout=30)
        t0 = time.perf_counter()
        data = b""
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
                sock.sendall(request)
                while chunk := sock.recv(65536):
                    data += chunk
        except OSError as exc:  # refused, reset or timed out: the status check below fails
            data = type(exc).__name__.encode()
        results.append((data[:12], time.perf_counter() - t0))

    threads = [threading.Thread(target=fetch) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == n
    slow = sorted(round(seconds, 2) for _, seconds in results if seconds >= 1.0)
    assert slow == [], f"{len(slow)} of {n} concurrent requests took >= 1 s: {slow}"
    assert {head for head, _ in results} == {b"HTTP/1.1 200"}


def test_limits_are_set_on_the_server(hostile_server):
    server, _ = hostile_server
    assert server.idle_timeout == serve_module.IDLE_TIMEOUT_S == 30.0
    assert server.request_queue_size == serve_module.LISTEN_BACKLOG >= 128


def test_idle_connections_are_closed_after_the_timeout(hostile_server):
    server, url = hostile_server
    parts = urlsplit(url)
    server.idle_timeout = 0.5  # read per connection
    try:
        for first in (b"", f"GET /{TILE} HTTP/1.1\r\nHost: x\r\n\r\n".encode()):
            # silent from the start, or idle after one kept-alive request
            with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
                sock.sendall(first)
                t0 = time.perf_counter()
                try:
                    while sock.recv(65536):
                        pass
                except TimeoutError:
                    pytest.fail(f"an idle connection was still open after 5 s ({first[:20]!r})")
                waited = time.perf_counter() - t0
            assert 0.4 < waited < 2.0, waited  # 0.5 s, with room for a loaded machine
    finally:
        server.idle_timeout = serve_module.IDLE_TIMEOUT_S
    _still_serves(url)
