"""Real archives end to end: Earth Search, Planetary Computer and CDSE as they really behave.

Each test takes real STAC items (``tests/data/stac-items``), writes small rasters of real
Sentinel-2 pixels at their asset paths (:mod:`tests.support.archives`), serves them the way the
archive does (public HTTPS, SAS-signed Azure blobs with a token API, a private S3 bucket of JPEG
2000 needing CDSE credentials, a public S3 bucket read anonymously) and runs ``basemap build``
as a subprocess (``--renderer linear --workers 0``, one or a few blocks, short GDAL timeouts, no
retries), checking its exit code, outputs, records and log. Every server is bound to 127.0.0.1
and stopped at the end; nothing is mocked. Image checks compare the output COGs' 8-bit RGB (over
pixels opaque in both builds) with a stated tolerance.

The environment of each build is cleaned of the archives' variables (``AWS_*``, ``CDSE_*``,
``BASEMAP_PC_*``, ``BASEMAP_INPUT_S3_*``) and of any AWS config file; a test sets only what it
checks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.support.archives import (
    Crop,
    ReadFaultServer,
    SasServer,
    TokenServer,
    archive_buckets,
    bbox_inside,
    item_grid,
    point_hrefs,
    real_item,
    revisit,
    upload_item,
    write_item,
    write_item_collection,
)
from tests.support.servers import GDAL_TEST_ENV, free_port

ES_OLD = "es_l2a_old_S2A_29RKH_20200219_0_L2A"  # baseline 02.14, flag false, DN offset 0
ES_NEW = "es_l2a_new_S2A_13TDE_20231008_0_L2A"  # baseline 05.09, flag true
ES_20EPT = "es_l2a_new_S2B_20EPT_20250731_0_L2A"
C1_20EPT = "es_c1_S2B_T20EPT_20250731T131905_L2A"
L1C_20EPT = "other_sentinel-2-l1c_S2B_20EPT_20250731_0_L1C"
LANDSAT = "other_landsat-c2-l2_LC08_L2SP_033032_20231008_02_T1"
PC = "pc_old_S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531"  # baseline 02.12
CDSE = "cdse_S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914"  # 05.11

BASEMAP = str(Path(sys.executable).parent / "basemap")
#: GDAL_TEST_ENV (short timeouts, no retries) without its .tif-only extension filter: JPEG 2000
#: and signed URLs must open.
FAST_GDAL = {k: v for k, v in GDAL_TEST_ENV.items() if k != "CPL_VSIL_CURL_ALLOWED_EXTENSIONS"}
#: Prefixes of the variables no build inherits from the test's environment.
ARCHIVE_VARS = ("AWS_", "CDSE_", "BASEMAP_PC_", "BASEMAP_INPUT_S3_")
ZOOM = "12-13"
#: Every acquisition date of the items (2019-2025), whatever the command's default window.
DATES = "2015-01-01/2030-12-31"
#: Zooms of the two-item builds of row g: 256-px blocks of ~9 km, the items 17 km apart.
SPLIT_ZOOM = "11-12"
TIMEOUT = 120
#: Words of an authentication hint (what to set or sign) in a 403's message.
AUTH_WORDS = ("credentials", "sign", "token")


@dataclass
class Run:
    """A finished ``basemap build``: exit code, output folder, stdout and stderr."""

    code: int
    out: Path
    stdout: str
    stderr: str

    def blocks(self) -> dict[str, dict]:
        """build.json's blocks by name."""
        return {b["block"]: b for b in json.loads((self.out / "build.json").read_text())["blocks"]}

    def scenes(self) -> list[dict]:
        """manifest.json's scenes."""
        return json.loads((self.out / "manifest.json").read_text())["scenes"]

    def tiles(self) -> list[Path]:
        """The XYZ tile files written."""
        return sorted(p for p in (self.out / "tiles").rglob("*") if p.is_file())

    def cogs(self) -> dict[str, np.ndarray]:
        """The block COGs (RGBA) by name."""
        found = {}
        for path in sorted((self.out / "cogs").rglob("*.tif")):
            with rasterio.open(path) as ds:
                found[path.relative_to(self.out).as_posix()] = ds.read()
        return found


def build_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The environment of a build: this one without the archives' variables, an empty AWS
    config (no profile of the user's ~/.aws), fast GDAL settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ARCHIVE_VARS)}
    empty = tmp_path / "empty-aws-config"
    empty.touch()
    env.update(FAST_GDAL, AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty))
    env.update(values)
    return env


def build(stac, bbox: str, out: Path, env: dict, *args: str, zoom: str = ZOOM) -> Run:
    """``basemap build`` in a subprocess over every date and cloud cover of the items (``args``
    added); an uncaught exception fails the test."""
    cmd = [BASEMAP, "build", "--stac", str(stac), "--bbox", bbox, "--zoom", zoom, "--out",
           str(out), "--renderer", "linear", "--workers", "0", "--quiet", "--datetime", DATES,
           "--max-cloud", "100", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert "Traceback (most recent call last)" not in done.stderr, done.stderr[-3000:]
    return Run(done.returncode, out, done.stdout, done.stderr)


def mean_rgb(run: Run) -> float:
    """Mean 8-bit RGB of the output's opaque pixels."""
    pixels = [c[:3][:, c[3] > 0] for c in run.cogs().values()]
    assert pixels and sum(p.size for p in pixels), "no opaque pixel in the output"
    return float(np.concatenate(pixels, axis=1).mean())


def mean_abs_diff(a: Run, b: Run) -> float:
    """Mean |RGB difference| (8-bit) of two builds of the same blocks, over pixels opaque in
    both."""
    ca, cb = a.cogs(), b.cogs()
    assert ca and ca.keys() == cb.keys(), (sorted(ca), sorted(cb))
    diffs = []
    for name, x in ca.items():
        y = cb[name]
        both = (x[3] > 0) & (y[3] > 0)
        assert both.any(), name
        diffs.append(np.abs(x[:3].astype(int) - y[:3].astype(int))[:, both])
    return float(np.concatenate(diffs, axis=1).mean())


# ---- a. Earth Search l2a: a false boa_offset_applied flag on shifted pixels ------------------


def test_earth_search_false_boa_flag_on_shifted_pixels_is_not_darkened(tmp_path, range_server):
    """Row a. An Earth Search ``sentinel-2-l2a`` item of baseline 05.09 whose
    ``earthsearch:boa_offset_applied`` is false although its pixels are already shifted (DN =
    reflectance x 10000; Element84/earth-search issues 66, 71) builds like the same pixels in a
    correctly labelled item (flag true): mean |RGB diff| < 3 (8-bit), and the log says the data
    contradict the metadata (a line naming ``boa_offset_applied``). The pixels are a real
    pasture (vegetation is what the evidence reads: a raw product's has no blue DN below 1000).

    Today: the flag is trusted (false: raw DN, baseline >= 04.00, so -1000), the offset is
    taken off pixels that already had it: mean |diff| 91 (the reference's mean RGB is 139),
    nothing logged."""
    archive = tmp_path / "archive"
    server = range_server(archive)
    quirk = write_item(ES_NEW, archive / "quirk", pasture=True,
                       properties={"earthsearch:boa_offset_applied": False})
    right = write_item(ES_NEW, archive / "right", pasture=True)  # flag true, same pixels
    bbox = bbox_inside(right)
    env = build_env(tmp_path)
    runs = {}
    for name, item in (("quirk", quirk), ("right", right)):
        source = write_item_collection([point_hrefs(item, f"{server.url}/{name}/")],
                                       tmp_path / f"{name}.json")
        runs[name] = build(source, bbox, tmp_path / f"out-{name}", env)
        assert runs[name].code == 0, runs[name].stderr[-3000:]
    assert mean_rgb(runs["right"]) > 20  # the reference is far from black
    diff = mean_abs_diff(runs["quirk"], runs["right"])
    assert diff < 3, f"mean |RGB diff| {diff:.1f} (8-bit) against the correctly labelled item"
    assert "boa_offset_applied" in runs["quirk"].stderr, runs["quirk"].stderr[-3000:]


# ---- b. a search without a collection -------------------------------------------------------


def test_search_without_collection_keeps_one_l2a_collection_one_item_per_acquisition(
        tmp_path, range_server, stac_api):
    """Row b. A STAC API (rustac) holding Earth Search l2a, c1-l2a and L1C items of one
    acquisition and a Landsat item, all over one small box, searched with no --collection:
    exit 0, tiles written, the manifest holds the c1-l2a item only (one collection, one item
    per acquisition), and stderr has exactly one line about skipping the Landsat item.

    Today: every item is taken as a scene; the Landsat item's raster:bands offset (-0.2,
    scale 2.75e-05) aborts the search with a StacError: exit 1."""
    archive = tmp_path / "archive"
    server = range_server(archive)
    grid = item_grid(real_item(C1_20EPT))
    items = {
        "c1": write_item(C1_20EPT, archive / "c1", dn_offset=1000),
        "l2a": write_item(ES_20EPT, archive / "l2a"),
        "l1c": write_item(L1C_20EPT, archive / "l1c", rasters=False),
        "landsat": write_item(LANDSAT, archive / "landsat", grid=grid, rasters=False),
    }
    api = stac_api([point_hrefs(item, f"{server.url}/{name}/") for name, item in items.items()])
    run = build(api, bbox_inside(items["c1"]), tmp_path / "out", build_env(tmp_path))
    assert run.code == 0, run.stderr[-3000:]
    assert run.tiles()
    kept = [(s["collection"], s["id"]) for s in run.scenes()]
    assert kept == [("sentinel-2-c1-l2a", items["c1"]["id"])], kept
    landsat = items["landsat"]
    about = [ln for ln in run.stderr.splitlines()
             if landsat["id"] in ln or landsat["collection"] in ln]
    assert len(about) == 1 and "skip" in about[0].lower(), run.stderr[-3000:]


# ---- c, d. Planetary Computer: SAS tokens -----------------------------------------------------


def test_planetary_computer_hrefs_are_signed_at_read_time(tmp_path):
    """Row c. A Planetary Computer item (baseline 02.12) whose blobs answer only requests signed
    with a token of the SAS token API at ``BASEMAP_PC_SAS_URL``: exit 0, tiles written, every
    request that got data carried a valid token, and the manifest keeps the unsigned hrefs.

    Today: hrefs are read unsigned, every asset answers 403, the block fails: exit 3."""
    root = tmp_path / "blobs"
    item = write_item(PC, root)
    with TokenServer() as tokens, SasServer(root, tokens) as blobs:
        signed_item = point_hrefs(item, f"{blobs.url}/")
        source = write_item_collection([signed_item], tmp_path / "pc.json")
        run = build(source, bbox_inside(item), tmp_path / "out",
                    build_env(tmp_path, BASEMAP_PC_SAS_URL=tokens.url))
        assert run.code == 0, run.stderr[-3000:]
        assert run.tiles()
        answered = blobs.answered()
        assert answered and all(r.token and "sig=" in r.token for r in answered), blobs.sas_log
        assert tokens.issued
    manifest = (run.out / "manifest.json").read_text()
    assert "sig=" not in manifest
    hrefs = set(re.findall(r'"(http://127\.0\.0\.1:\d+/[^"]*)"', manifest))
    assert hrefs and hrefs <= {a["href"] for a in signed_item["assets"].values()}, hrefs


def test_planetary_computer_token_api_down_is_exit_2(tmp_path):
    """Row c, the other half. ``BASEMAP_PC_SAS_URL`` at a closed port: exit 2 before any block,
    no tiles, stderr names Planetary Computer and the variable.

    Today: nothing asks for a token; the unsigned reads get 403 and the block fails: exit 3."""
    root = tmp_path / "blobs"
    item = write_item(PC, root)
    with TokenServer() as tokens, SasServer(root, tokens) as blobs:
        source = write_item_collection([point_hrefs(item, f"{blobs.url}/")], tmp_path / "pc.json")
        closed = f"http://127.0.0.1:{free_port()}/api/sas/v1/token"
        run = build(source, bbox_inside(item), tmp_path / "out",
                    build_env(tmp_path, BASEMAP_PC_SAS_URL=closed))
    assert run.code == 2, run.stderr[-3000:]
    assert not (run.out / "tiles").exists() or not run.tiles()
    assert "Planetary Computer" in run.stderr and "BASEMAP_PC_SAS_URL" in run.stderr, run.stderr


def test_planetary_computer_token_expiring_mid_build_is_renewed(tmp_path):
    """Row d. Tokens live 3 s (up to 4 s: their expiry is rounded up to a second) and the blob
    server answers each request after 0.1 s, so reading the nine blocks of the build (z14,
    256-px blocks; about 60 requests, under a second per block) outlasts any one token: exit 0,
    every block ok, more than one token issued.

    Today: nothing is signed; every read gets 403 and every block fails: exit 3."""
    root = tmp_path / "blobs"
    item = write_item(PC, root)
    with TokenServer(lifetime=3) as tokens, SasServer(root, tokens, latency=0.1) as blobs:
        source = write_item_collection([point_hrefs(item, f"{blobs.url}/")], tmp_path / "pc.json")
        run = build(source, bbox_inside(item, margin=0.15), tmp_path / "out",
                    build_env(tmp_path, BASEMAP_PC_SAS_URL=tokens.url), "--block-size", "256",
                    zoom="14")
        assert run.code == 0, run.stderr[-3000:]
        blocks = run.blocks()
        assert len(blocks) > 1 and {b["status"] for b in blocks.values()} == {"ok"}, blocks
        answered = blobs.answered()
        span = answered[-1].at - answered[0].at
        assert span > tokens.lifetime + 1, f"the reads took {span:.1f} s: one token covered them"
        assert len(tokens.issued) > 1


# ---- e, f. S3: CDSE's private eodata, Earth Search's public sentinel-cogs ---------------------


@pytest.fixture(scope="module")
def buckets(s3_server):
    """The session's SeaweedFS with the buckets ``eodata`` (private) and ``sentinel-cogs``
    (public read)."""
    archive_buckets(s3_server)
    return s3_server


def test_cdse_jp2_in_private_eodata_is_read_with_cdse_credentials(tmp_path, buckets,
                                                                   range_server):
    """Row e. A CDSE item (B04_10m, ..., SCL_20m; processing:version 05.11; raster:offset
    -0.1) with lossless JPEG 2000 (DN = reflectance x 10000 + 1000) in the private ``eodata``
    bucket, read with CDSE_S3_ENDPOINT/ACCESS_KEY/SECRET_KEY: exit 0, tiles written, and the
    colours match the same pixels in an Earth Search item (DN = reflectance x 10000, flag true)
    on the same grid: mean |RGB diff| < 1 (8-bit; same reflectance, so the same bytes but for
    rounding), so the offset was applied once.

    Today: no asset of the item is called red/green/blue, the item is skipped, nothing is
    built (exit 0, no tiles)."""
    cdse = write_item(CDSE, tmp_path / "cdse", dn_offset=1000)
    cdse = upload_item(buckets, "eodata", cdse, tmp_path / "cdse")
    reference = write_item(ES_NEW, tmp_path / "es", grid=item_grid(real_item(CDSE)))
    server = range_server(tmp_path / "es")
    bbox = bbox_inside(cdse)
    credentials = build_env(tmp_path, CDSE_S3_ENDPOINT=buckets.endpoint,
                            CDSE_S3_ACCESS_KEY=buckets.access_key,
                            CDSE_S3_SECRET_KEY=buckets.secret_key)
    source = write_item_collection([cdse], tmp_path / "cdse.json")
    run = build(source, bbox, tmp_path / "out", credentials)
    assert run.code == 0, run.stderr[-3000:]
    assert run.tiles()
    source = write_item_collection([point_hrefs(reference, f"{server.url}/")],
                                   tmp_path / "es.json")
    ref = build(source, bbox, tmp_path / "out-es", build_env(tmp_path))
    assert ref.code == 0, ref.stderr[-3000:]
    diff = mean_abs_diff(run, ref)
    assert diff < 1, f"mean |RGB diff| {diff:.2f} (8-bit) against the Earth Search build"


def test_cdse_without_credentials_is_exit_2_naming_the_variable(tmp_path, buckets):
    """Row e, the other half. The same CDSE item with CDSE_S3_ENDPOINT but no credentials
    (anonymous GET on ``eodata`` is 403): exit 2, no tiles, stderr names CDSE_S3_ACCESS_KEY.

    Today: the item is skipped (no red asset): exit 0."""
    cdse = write_item(CDSE, tmp_path / "cdse", dn_offset=1000)
    cdse = upload_item(buckets, "eodata", cdse, tmp_path / "cdse")
    run = build(write_item_collection([cdse], tmp_path / "cdse.json"), bbox_inside(cdse),
                tmp_path / "out", build_env(tmp_path, CDSE_S3_ENDPOINT=buckets.endpoint))
    assert run.code == 2, run.stderr[-3000:]
    assert not (run.out / "tiles").exists() or not run.tiles()
    assert "CDSE_S3_ACCESS_KEY" in run.stderr, run.stderr[-3000:]


def test_earth_search_s3_hrefs_are_read_anonymously(tmp_path, buckets):
    """Row f. An Earth Search item whose hrefs are ``s3://sentinel-cogs/...`` in a public-read
    bucket, ``BASEMAP_INPUT_S3_ENDPOINT`` set and no AWS credentials anywhere: exit 0, every
    block ok, tiles written.

    Today: GDAL reads s3:// at AWS's endpoint (unreachable here) and looks for credentials:
    the block fails, exit 3."""
    item = write_item(ES_OLD, tmp_path / "es")
    item = upload_item(buckets, "sentinel-cogs", item, tmp_path / "es")
    source = write_item_collection([item], tmp_path / "es.json")
    run = build(source, bbox_inside(item), tmp_path / "out",
                build_env(tmp_path, BASEMAP_INPUT_S3_ENDPOINT=buckets.endpoint))
    assert run.code == 0, run.stderr[-3000:]
    assert {b["status"] for b in run.blocks().values()} == {"ok"}
    assert run.tiles()


# ---- g. 403 on an asset; 404 unchanged --------------------------------------------------------


def test_403_on_every_asset_is_exit_2_before_any_block(tmp_path, range_server):
    """Row g (i). Every asset of the source answers 403: exit 2 at the preflight, no COG
    written, stderr says it is an authentication problem ("403" and a hint: credentials, sign
    or token).

    Today: 403 is an unreadable asset: the block fails, exit 3."""
    server = range_server(tmp_path / "es")
    item = write_item(ES_OLD, tmp_path / "es")
    server.add_fault("*", "status", status=403)
    source = write_item_collection([point_hrefs(item, f"{server.url}/")], tmp_path / "es.json")
    run = build(source, bbox_inside(item), tmp_path / "out", build_env(tmp_path))
    assert run.code == 2, run.stderr[-3000:]
    assert not list(run.out.rglob("*.tif"))
    assert "403" in run.stderr and any(w in run.stderr.lower() for w in AUTH_WORDS), run.stderr


def two_dates_apart(root: Path) -> tuple[dict, dict, str]:
    """Two Earth Search items of tile 29RKH 10 days apart, 17 km apart (blocks of their own at
    SPLIT_ZOOM with 256-px blocks), and a box over both."""
    west = write_item(ES_OLD, root, crop=Crop(16, 800))
    east = write_item(revisit(real_item(ES_OLD), 10), root, crop=Crop(16, 1000))
    box = (west["bbox"][0] + 0.002, max(west["bbox"][1], east["bbox"][1]) + 0.002,
           east["bbox"][2] - 0.002, min(west["bbox"][3], east["bbox"][3]) - 0.002)
    return west, east, ",".join(f"{v:.6f}" for v in box)


def test_403_mid_run_fails_its_block_and_a_rerun_finishes_it(tmp_path):
    """Row g (ii). One item's red band answers 403 from its first pixel read on (opening it
    works until then, so a preflight that opens it passes): that item's block(s) fail with the
    authentication hint and are not recorded done, the other block is built, exit 3; with the
    403 gone, a rerun builds the failed block(s) (exit 0, ok).

    Today: the block fails and a rerun finishes it, but its message has neither "403" nor a
    hint: GDAL reports the refused read as "Read failed ... TIFFReadEncodedTile ... got 0
    bytes", with no HTTP status."""
    root = tmp_path / "es"
    west, east, bbox = two_dates_apart(root)
    with ReadFaultServer(root) as server:
        source = write_item_collection([point_hrefs(i, f"{server.url}/") for i in (west, east)],
                                       tmp_path / "es.json")
        server.refuse_from_first_read(f"*/{east['id']}/B04.tif", 403)
        env = build_env(tmp_path)
        first = build(source, bbox, tmp_path / "out", env, "--block-size", "256", zoom=SPLIT_ZOOM)
        assert first.code == 3, first.stderr[-3000:]
        blocks = first.blocks()
        failed = [n for n, b in blocks.items() if b["status"] == "failed"]
        assert failed and len(failed) < len(blocks), blocks  # the east item's block(s) only
        for name in failed:
            message = blocks[name]["message"]
            assert "403" in message and any(w in message.lower() for w in AUTH_WORDS), message
            assert not (first.out / "ledger" / "blocks" / f"{name}.json").exists()
        assert all(b["status"] == "ok" for n, b in blocks.items() if n not in failed)

        server.clear_faults()
        second = build(source, bbox, tmp_path / "out", env, "--block-size", "256",
                       zoom=SPLIT_ZOOM)
    assert second.code == 0, second.stderr[-3000:]
    assert all(second.blocks()[name]["status"] == "ok" for name in failed)


def test_404_stays_missing_and_degrades_its_block(tmp_path, range_server):
    """Row g, unchanged behaviour: one item's red band answers 404 (to every request, the
    preflight's included): its block is degraded (the item skipped, named), the other is ok,
    exit 0. This passes today too: it guards 404 against the 403 handling."""
    root = tmp_path / "es"
    west, east, bbox = two_dates_apart(root)
    server = range_server(root)
    server.add_fault(f"*/{east['id']}/B04.tif", "status", status=404)
    source = write_item_collection([point_hrefs(i, f"{server.url}/") for i in (west, east)],
                                   tmp_path / "es.json")
    run = build(source, bbox, tmp_path / "out", build_env(tmp_path), "--block-size", "256",
                zoom=SPLIT_ZOOM)
    assert run.code == 0, run.stderr[-3000:]
    blocks = run.blocks().values()
    degraded = [b for b in blocks if b["status"] == "degraded"]
    assert {b["status"] for b in blocks} == {"ok", "degraded"}, blocks
    assert all(east["id"] in b["message"] for b in degraded), degraded


# ---- the stand-ins themselves ----------------------------------------------------------------


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET of the first 100 bytes."""
    request = urllib.request.Request(url, headers={"Range": "bytes=0-99"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_the_stand_ins_answer_as_the_archives_do(tmp_path, buckets):
    """No build (passes today): the token API answers PC's shape; the blob server serves only
    valid, unexpired tokens of its collection (unsigned: 403, or 404/409 as PC's accounts
    answer, with Azure's error codes; a forged, foreign or expired token: 403); anonymous
    reads are refused on ``eodata`` (403) and served on ``sentinel-cogs``."""
    path = write_item(PC, tmp_path)["assets"]["B04"]["href"]
    with TokenServer() as tokens:
        answer = json.loads(urllib.request.urlopen(f"{tokens.url}/sentinel-2-l2a").read())
        assert set(answer) == {"msft:expiry", "token"} and "&sig=" in answer["token"]
        token = answer["token"]
        other = tokens.issue("landsat-c2-l2")["token"]
        tokens.lifetime = 0  # expires at the next whole second
        expiring = tokens.issue("sentinel-2-l2a")["token"]
        for unsigned, code in ((403, "AuthenticationFailed"), (404, "ResourceNotFound"),
                               (409, "PublicAccessNotPermitted")):
            with SasServer(tmp_path, tokens, unsigned_status=unsigned) as blobs:
                url = f"{blobs.url}/{path}"
                status, body = http_get(url)
                assert status == unsigned and f"<Code>{code}</Code>" in body
                assert http_get(f"{url}?{token}")[0] == 206
                assert http_get(f"{url}?{token.replace('sig=', 'sig=x')}")[0] == 403
                assert http_get(f"{url}?{other}")[0] == 403  # another collection's token
        time.sleep(1.05)
        with SasServer(tmp_path, tokens) as blobs:
            status, body = http_get(f"{blobs.url}/{path}?{expiring}")
            assert status == 403 and "Signed expiry time" in body
            assert len(tokens.issued) == 3
    fs = buckets.filesystem()
    for bucket, public in (("eodata", False), ("sentinel-cogs", True)):
        fs.pipe(f"{bucket}/selftest.txt", b"hello")
        status, _ = http_get(f"{buckets.endpoint}/{bucket}/selftest.txt")
        assert status == (206 if public else 403), bucket
