"""`basemap serve`: HTTP behaviour, then the viewer page in real headless Chromium (Playwright).

The browser is Debian's chromium (scripts/install-system-deps.sh installs it); Playwright only
drives it (no browser download). Screenshots go to test-artifacts/ at the repo root.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from basemap.output.layers import read_tileset
from basemap.output.pmtiles import write_pmtiles
from basemap.viewer.serve import serve_in_thread

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BASEMAP = str(Path(sys.executable).with_name("basemap"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def served_out(xyz_build, tmp_path_factory):
    """The two-renderer fixture build plus a PMTiles archive of the unet set."""
    out = tmp_path_factory.mktemp("serve") / "out"
    shutil.copytree(xyz_build, out)
    write_pmtiles(read_tileset(out / "unet" / "tilejson.json"), out / "unet.pmtiles")
    return out


@pytest.fixture(scope="module")
def server(served_out):
    server, url = serve_in_thread(served_out)
    yield url
    server.shutdown()
    server.server_close()


def test_layers_and_content_types(server, served_out):
    layers = requests.get(server + "layers.json", timeout=5).json()
    assert [(la["name"], la["kind"], la["format"]) for la in layers] == [
        ("linear", "xyz", "webp"),
        ("unet", "xyz", "png"),
        ("unet.pmtiles (PMTiles)", "pmtiles", "png"),
    ]
    assert layers[0]["url"] == "/data/linear/tiles/{z}/{x}/{y}.webp"
    assert layers[0]["tilejson"] == "/linear/tilejson.json"  # the page loads the layer from it
    assert layers[0]["bounds"] == pytest.approx([5.95, 45.95, 6.25, 46.15])
    # CORS only on what web maps fetch from other origins, not on the page and its own files.
    cases = {
        "data/linear/tiles/10/528/363.webp": ("image/webp", True),
        "data/unet/tiles/10/528/363.png": ("image/png", True),
        "data/unet/tilejson.json": ("application/json", True),
        "tilejson/0.json": ("application/json", True),
        "layers.json": ("application/json", False),
        "": ("text/html; charset=utf-8", False),
        "static/vendor/leaflet/leaflet.js": ("text/javascript; charset=utf-8", False),
    }
    for path, (ctype, cors) in cases.items():
        r = requests.get(server + path, timeout=5)
        assert r.status_code == 200, path
        assert r.headers["Content-Type"] == ctype, path
        assert r.headers.get("Access-Control-Allow-Origin") == ("*" if cors else None), path
    tile = served_out / "linear/tiles/10/528/363.webp"
    got = requests.get(server + "data/linear/tiles/10/528/363.webp", timeout=5).content
    assert got == tile.read_bytes()
    # A TileJSON with absolute URLs on this server, for other clients.
    doc = requests.get(server + "tilejson/1.json", timeout=5).json()
    assert doc["tiles"] == [server.rstrip("/") + "/data/unet/tiles/{z}/{x}/{y}.png"]


def test_out_is_also_served_at_the_root_as_on_a_static_host(served_out, tmp_path):
    """Issue 13: `/tilejson.json` of `basemap serve OUT` answered 404 (only /data/... and
    /tilejson/<n>.json existed); a static host serves OUT at /, and so does the server now."""
    out = tmp_path / "out"
    shutil.copytree(served_out / "linear", out)  # one tile set at the top, as a build writes it
    server, url = serve_in_thread(out)
    try:
        r = requests.get(url + "tilejson.json", timeout=5)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        template = r.json()["tiles"][0]
        assert not template.startswith(("/", "http"))  # relative: resolves against the TileJSON
        tile = requests.get(url + template.format(z=10, x=528, y=363), timeout=5)
        assert tile.status_code == 200
        assert tile.content == (out / "tiles/10/528/363.webp").read_bytes()
        layers = requests.get(url + "layers.json", timeout=5).json()
        assert layers[0]["tilejson"] == "/tilejson.json"
        # The old paths keep working; the page itself stays at /.
        assert requests.get(url + "data/tilejson.json", timeout=5).status_code == 200
        assert requests.get(url + "tilejson/0.json", timeout=5).status_code == 200
        assert "text/html" in requests.get(url, timeout=5).headers["Content-Type"]
        for path in ("tiles/10/0/0.webp", "%2e%2e/%2e%2e/etc/passwd", "../../etc/passwd"):
            assert requests.get(url + path, timeout=5).status_code == 404, path
    finally:
        server.shutdown()
        server.server_close()


def test_missing_tiles_and_escapes_are_404(server):
    # A missing tile keeps its CORS header (a web map sees a clean 404); the rest carry none.
    for path, cors in (("data/linear/tiles/10/0/0.webp", True), ("tilejson/9.json", True),
                       ("data/../../etc/passwd", False), ("data/%2e%2e/%2e%2e/etc/passwd", False),
                       ("nothing", False)):
        r = requests.get(server + path, timeout=5)
        assert r.status_code == 404, path
        assert r.content == b""
        assert r.headers.get("Access-Control-Allow-Origin") == ("*" if cors else None), path


def test_range_requests(server, served_out):
    data = (served_out / "unet.pmtiles").read_bytes()
    url = server + "data/unet.pmtiles"
    r = requests.get(url, headers={"Range": "bytes=0-126"}, timeout=5)
    assert r.status_code == 206 and r.content == data[:127]
    assert r.headers["Content-Range"] == f"bytes 0-126/{len(data)}"
    assert r.headers["Content-Type"] == "application/vnd.pmtiles"
    r = requests.get(url, headers={"Range": "bytes=-10"}, timeout=5)
    assert r.status_code == 206 and r.content == data[-10:]
    r = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=5)
    assert r.status_code == 416
    r = requests.options(url, headers={"Origin": "http://example.test"}, timeout=5)
    assert r.status_code == 204 and "Range" in r.headers["Access-Control-Allow-Headers"]


@pytest.fixture(scope="module")
def cli_server(served_out):
    """`basemap serve OUT --port 0` as a real subprocess; yields its page URL."""
    proc = subprocess.Popen([BASEMAP, "serve", str(served_out), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert m, f"no URL in {line!r} (exit code {proc.poll()})"
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not found: run `bash scripts/install-system-deps.sh` (Debian)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url):
    """Open the viewer; returns (page, console errors, tile responses)."""
    context = browser.new_context(viewport={"width": 800, "height": 600})
    page = context.new_page()
    errors, tiles = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: tiles.append((r.status, r.url))
            if "/tiles/" in r.url or r.url.endswith(".pmtiles") else None)
    page.goto(url)
    # Predicates are functions: the page's CSP forbids eval, which string expressions need.
    page.wait_for_function("() => window.basemapViewer && basemapViewer.ready", timeout=20000)
    page.wait_for_timeout(200)  # let the last tiles paint
    return page, errors, tiles


def _screenshot(page, name):
    """Save a screenshot under test-artifacts/; returns it as a grey-level float array."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"serve-{name}.png"
    page.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


@pytest.mark.parametrize("layer, name", [(0, "xyz"), (2, "pmtiles")])
def test_viewer_in_chromium(browser, cli_server, layer, name):
    page, errors, tiles = _open(browser, f"{cli_server}?layer={layer}")
    assert errors == []
    assert tiles, "no tile was requested"
    # XYZ tiles answer 200; the PMTiles archive is read with Range requests (206).
    ok = {"xyz": {200}, "pmtiles": {206}}[name]
    assert {status for status, _ in tiles} <= ok, tiles
    if name == "xyz":  # loaded through the layer's TileJSON, from OUT served at /
        assert all("/data/" not in url and "/linear/tiles/" in url for _, url in tiles), tiles
    state = page.evaluate("({n: basemapViewer.tilesLoaded, e: basemapViewer.tileErrors})")
    assert state["n"] >= 4 and state["e"] == 0  # 4 native z10 tiles cover the view (fitted bounds)
    # The centre 400x300 px (the controls sit in the corners) is the tiles only. With blank
    # (transparent) tiles it is one grey, variance 0.0 (measured); the fixture's pattern gives
    # ~1900. Above 100: clearly not blank, whatever the anti-aliasing.
    centre = _screenshot(page, name)[150:450, 200:600]
    assert centre.var() > 100
    page.context.close()


def test_viewer_toggles_renderers_and_boundaries(browser, cli_server):
    page, errors, tiles = _open(browser, cli_server)
    assert all("/linear/" in url for _, url in tiles)
    assert page.locator(".tile-boundary").count() == 0
    page.get_by_label("unet", exact=True).check()
    page.wait_for_function("() => basemapViewer.layer === 'unet'", timeout=10000)
    page.wait_for_function("() => basemapViewer.tilesLoaded >= 8", timeout=10000)
    assert any("/unet/tiles/" in url and status == 200 for status, url in tiles)
    page.get_by_label("Tile boundaries").check()
    page.wait_for_function("() => basemapViewer.gridReady", timeout=10000)
    page.wait_for_timeout(400)  # Leaflet fades tiles in over 250 ms
    # Boundaries of the stored z10 tiles (the view is z11, overzoomed): labels name real files.
    labels = page.locator(".tile-boundary").all_text_contents()
    assert "10/528/363" in labels and all(t.startswith("10/") for t in labels)
    _screenshot(page, "unet-boundaries")
    assert errors == []
    page.context.close()


def test_viewer_side_by_side(browser, cli_server):
    page, errors, tiles = _open(browser, cli_server)
    page.get_by_text("side by side").click()  # linear | unet
    page.wait_for_url("**/?compare=0,1")
    page.wait_for_function("() => window.basemapViewer && basemapViewer.maps"
                           " && basemapViewer.ready", timeout=20000)
    page.wait_for_timeout(500)  # Leaflet fades tiles in over 250 ms
    assert errors == []
    assert any("/linear/" in u for _, u in tiles) and any("/unet/" in u for _, u in tiles)
    _screenshot(page, "side-by-side")
    # Each half shows its own renderer: the fixture's linear set has blue 40, the unet set blue
    # 200 (tests/support/xyz_build.py); the centres of the two halves must differ by most of that.
    rgb = np.asarray(Image.open(ARTIFACTS / "serve-side-by-side.png").convert("RGB"), float)
    left, right = rgb[280:320, 180:220, 2].mean(), rgb[280:320, 580:620, 2].mean()
    assert right - left > 120, (left, right)
    views = page.evaluate("basemapViewer.maps.map(m => [m.getCenter().lat, m.getCenter().lng,"
                          " m.getZoom()])")
    assert views[0] == views[1]  # the two maps show the same place
    page.evaluate("basemapViewer.maps[1].setZoom(basemapViewer.maps[1].getZoom() - 1,"
                  " {animate: false})")
    assert page.evaluate("basemapViewer.maps[0].getZoom() === basemapViewer.maps[1].getZoom()")
    page.context.close()


#: A TileJSON name that is markup: an inline handler and an element of its own.
HTML_NAME = '<img src="x" onerror="window.injected = 1"><b id="injected">bold</b>'


@pytest.fixture
def html_named_out(served_out, tmp_path):
    """One tile set whose TileJSON name is HTML."""
    out = tmp_path / "out"
    shutil.copytree(served_out / "linear", out / "linear")
    tilejson = out / "linear" / "tilejson.json"
    tilejson.write_text(json.dumps({**json.loads(tilejson.read_text()), "name": HTML_NAME}))
    return out


def test_names_from_tilejson_are_text_in_the_page(browser, html_named_out):
    """A TileJSON name went into the layers control as markup (Leaflet writes labels with
    innerHTML): its <img onerror> ran. Now it is escaped and shown as text."""
    server, url = serve_in_thread(html_named_out)
    try:
        page, errors, _ = _open(browser, url)
        assert page.evaluate("document.querySelectorAll('img[src=\"x\"], #injected').length") == 0
        assert page.evaluate("window.injected") is None
        label = page.locator(".leaflet-control-layers-base label").inner_text()
        assert label.strip() == f"linear ({HTML_NAME})"
        assert errors == []
        # Defence in depth: the page's Content-Security-Policy blocks inline handlers, so markup
        # that got in some other way would not run either.
        blocked = page.evaluate("""() => new Promise((resolve) => {
            const box = document.createElement("div");
            box.innerHTML = '<img src="x" onerror="window.injected = 2">';
            box.firstChild.addEventListener("error", () => setTimeout(
                () => resolve(window.injected === undefined), 0));
            document.body.appendChild(box);
        })""")
        assert blocked
        page.context.close()
    finally:
        server.shutdown()
        server.server_close()
