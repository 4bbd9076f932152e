"""`basemap build` over a slow network vs from disk: the same world, local files and HTTP.

    python benchmarks/network.py --preset demo --latency-ms 40 --mbps 20 \\
        --json benchmarks/results/network.json

Makes the synthetic world (``basemap synth``, kept in ``--work``) and rewrites every COG of it
into the layout of the real Sentinel-2 L2A COGs (docs/s2-l2a.md): 1024 px internal tiles (a
raster under 1024 px: one tile of its own size, rounded up to 16 px), DEFLATE with predictor 2,
internal overviews as deep as the real files' (2-16 for 10 m rasters, 2-8 for the 20 m SCL: both
end at 160 m; overview tiles the largest power of two up to the tile size), COG layout. It then
serves the world's folder from a range server in this process (HTTP/1.1 keep-alive, single
ranges, ``--latency-ms`` before each answer, at most ``--mbps`` megabytes/s per connection)
and writes a copy of the static catalog whose item assets are that server's URLs.

Each round builds the preset's bbox (``basemap demo``'s) from the local catalog, then from the
HTTP one (``basemap build`` subprocesses, each into a fresh folder); the order alternates between
rounds. Reported: both wall times, the median over rounds of the per-round HTTP / local ratio,
the requests and bytes the server answered during the HTTP builds, and per block (when the
build's ``build.json`` has them: ``blocks[i]["reads"]``) requests, bytes, the bytes of the COG
tiles the reads touch, and the seconds compositing waited on reads. The tiles of the two builds
must be byte for byte the same (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, median, table, write_json  # noqa: E402
from pipeline import basemap_exe, build_command, run_build  # noqa: E402

#: Internal tile side of the real Sentinel-2 L2A COGs.
S2_BLOCK = 1024
#: Body chunk of the range server (the bandwidth cap sleeps between chunks).
CHUNK = 64 * 1024


def s2_layout(path: Path) -> None:
    """Rewrite one COG in place into the real Sentinel-2 layout (see the module docstring)."""
    import rasterio

    from basemap.output.cog import write_cog

    with rasterio.open(path) as ds:
        side, res = max(ds.width, ds.height), ds.res[0]
        categorical = path.stem in ("SCL", "landcover")
    block = min(S2_BLOCK, -(-side // 16) * 16)
    ovr_block = min(S2_BLOCK, 2 ** (max(block, 64).bit_length() - 1))
    profile = {"driver": "GTiff", "tiled": True, "blockxsize": block, "blockysize": block,
               "compress": "DEFLATE", "predictor": 2}
    tmp = path.with_suffix(".relayout.tif")
    with rasterio.Env(GDAL_TIFF_OVR_BLOCKSIZE=str(ovr_block)):
        write_cog(path, tmp, profile, overview_level=4 if res < 15 else 3,
                  overview_resampling="nearest" if categorical else "average")
    os.replace(tmp, path)


def layout_facts(path: Path) -> dict:
    """Tile shapes, overview factors and compression of one COG (for the report)."""
    import rasterio

    with rasterio.open(path) as ds:
        facts = {"file": path.name, "shape": list(ds.shape), "block": list(ds.block_shapes[0]),
                 "overviews": ds.overviews(1), "bytes": path.stat().st_size,
                 **{k.lower(): v for k, v in ds.tags(ns="IMAGE_STRUCTURE").items()}}
    with rasterio.open(path, overview_level=0) as ovr:
        facts["overview_block"] = list(ovr.block_shapes[0])
    return facts


def ensure_world(work: Path, preset: str, seed: int) -> Path:
    """The world's folder: ``basemap synth`` then :func:`s2_layout` on every .tif (once)."""
    world = work / f"world-{preset}-{seed}"
    done = world / "s2-layout.done"
    if not done.is_file():
        shutil.rmtree(world, ignore_errors=True)
        subprocess.run([basemap_exe(), "synth", "--preset", preset, "--seed", str(seed),
                        str(world)], check=True, stdout=subprocess.DEVNULL)
        for tif in sorted(world.rglob("*.tif")):
            s2_layout(tif)
        done.write_text("")
    return world


def http_catalog(world: Path, dst: Path, base_url: str) -> Path:
    """A copy of the world's catalog tree (JSON only) in ``dst`` whose item assets are absolute
    URLs under ``base_url`` of the same files; returns its catalog.json."""
    shutil.rmtree(dst, ignore_errors=True)
    for src in world.rglob("*.json"):
        doc = json.loads(src.read_text())
        rel = src.relative_to(world)
        for asset in doc.get("assets", {}).values():
            file = (src.parent / asset["href"]).resolve().relative_to(world.resolve())
            asset["href"] = f"{base_url}/{quote(file.as_posix())}"
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(json.dumps(doc, indent=1))
    return dst / "catalog.json"


class Stats:
    """Requests and body bytes served, in all and per path (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests, self.bytes, self.not_found, self.multi_range = 0, 0, 0, 0
            self.paths: dict[str, list[int]] = {}

    def add(self, path: str, requests: int = 0, nbytes: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.bytes += nbytes
            entry = self.paths.setdefault(path, [0, 0])
            entry[0] += requests
            entry[1] += nbytes

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "bytes": self.bytes, "not_found": self.not_found,
                    "multi_range": self.multi_range,
                    "paths": {p: {"requests": r, "bytes": b}
                              for p, (r, b) in sorted(self.paths.items())}}


class RangeHandler(BaseHTTPRequestHandler):
    """GET/HEAD of the files under ``server.root``: single byte ranges (206), keep-alive, a
    latency before each answer and a bandwidth cap per connection (``server.latency``,
    ``server.rate`` bytes/s). A multi-range request is answered with the whole file (200)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers then body wait on the client's delayed ACK

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
        self.answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self.answer(body=True)

    def log_message(self, *args) -> None:  # quiet
        pass

    def answer(self, body: bool) -> None:
        srv, stats = self.server, self.server.stats
        time.sleep(srv.latency)
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        path = (srv.root / rel).resolve()
        if not path.is_relative_to(srv.root) or not path.is_file():
            with stats.lock:
                stats.not_found += 1
            stats.add(rel, requests=1)
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes=") and "," not in spec:
            first, _, last = spec[6:].strip().partition("-")
            try:
                if first:
                    start, end = int(first), min(int(last), size - 1) if last else size - 1
                else:  # a suffix: the last N bytes
                    start = max(0, size - int(last))
                status = 206 if start <= end else 416
            except ValueError:  # a malformed range is ignored: the whole file
                start, end = 0, size - 1
        elif spec:
            with stats.lock:
                stats.multi_range += 1
        stats.add(rel, requests=1)
        if status == 416:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff" if path.suffix == ".tif"
                         else "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self.send_body(path, rel, start, end - start + 1)

    def send_body(self, path: Path, rel: str, start: int, length: int) -> None:
        """``length`` bytes of ``path`` from ``start``, in chunks paced to ``server.rate``."""
        t0, sent = time.perf_counter(), 0
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                while sent < length:
                    chunk = fh.read(min(CHUNK, length - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    ahead = sent / self.server.rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.stats.add(rel, nbytes=sent)


def start_server(root: Path, latency_s: float, rate: float) -> ThreadingHTTPServer:
    """The range server of ``root`` on a free port of 127.0.0.1, serving in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    server.daemon_threads = True
    server.root, server.latency, server.rate = root.resolve(), latency_s, rate
    server.stats = Stats()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tile_hashes(out: Path) -> dict[str, str]:
    """sha256 of every file under OUT/tiles, by relative path."""
    tiles = out / "tiles"
    return {p.relative_to(tiles).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tiles.rglob("*")) if p.is_file()}


def block_reads(out: Path) -> list[dict]:
    """Per block of OUT/build.json: its name, status and ``reads`` figures (None when absent)."""
    record = json.loads((out / "build.json").read_text())
    keys = ("requests", "bytes", "tile_bytes", "wait_s", "read_s")
    rows = []
    for b in record.get("blocks", []):
        reads = b.get("reads") or {}
        row = {"block": b.get("block"), "status": b.get("status")}
        row |= {k: reads.get(k) for k in keys}
        row["bytes/tile_bytes"] = (round(reads["bytes"] / reads["tile_bytes"], 3)
                                   if reads.get("tile_bytes") and "bytes" in reads else None)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    from basemap.synth.tiles import world_bbox

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", choices=("test", "demo", "season"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=40.0, help="wait before each answer")
    p.add_argument("--mbps", type=float, default=20.0, help="megabytes/s per connection")
    p.add_argument("--zoom", default="0-14", help="default: basemap demo's")
    p.add_argument("--renderer", default=None, help="default: the build's (unet); e.g. linear")
    p.add_argument("--workers", type=int, default=None, help="default: the build's")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--old", default=None, help="another checkout (e.g. a git worktree of the "
                   "commit before): its builds, local and HTTP, run in the same rounds")
    p.add_argument("--work", default=None, help="scratch folder, keeps the world between runs")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-network-"))
    work.mkdir(parents=True, exist_ok=True)
    world = ensure_world(work, args.preset, args.seed)
    server = start_server(world, args.latency_ms / 1000, args.mbps * 1e6)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    catalogs = {"local": world / "catalog.json",
                "http": http_catalog(world, work / "catalog-http", url)}
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    options = {k: v for k, v in (("renderer", args.renderer), ("workers", args.workers))
               if v is not None}
    bbox = world_bbox(args.preset)

    kinds = ["local", "http"] + (["old-local", "old-http"] if args.old else [])
    times: dict[str, list[float]] = {k: [] for k in kinds}
    served, outs, old_served = [], {}, []
    for r in range(args.rounds):
        for kind in kinds if r % 2 == 0 else kinds[::-1]:
            outs[kind] = out = work / f"out-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            server.stats.reset()
            env = dict(os.environ)
            if kind.startswith("old-"):  # the old checkout's package first on the path
                os.environ["PYTHONPATH"] = str(Path(args.old).resolve())
            try:
                seconds, _ = run_build(build_command(bbox, out, catalogs[kind.split("-")[-1]],
                                                     args.zoom, **options))
            finally:
                os.environ.clear()
                os.environ.update(env)
            times[kind].append(seconds)
            if kind.endswith("http"):
                (old_served if kind.startswith("old") else served).append(server.stats.snapshot())
    server.shutdown()

    local, http = tile_hashes(outs["local"]), tile_hashes(outs["http"])
    mismatches = sorted(k for k in local.keys() | http.keys() if local.get(k) != http.get(k))
    for kind in kinds[2:]:  # the old code's tiles: the same as the new code's
        other = tile_hashes(outs[kind])
        mismatches += sorted(f"{kind}: {k}" for k in local.keys() | other.keys()
                             if local.get(k) != other.get(k))
    blocks = block_reads(outs["http"])
    tile_bytes = sum(b["tile_bytes"] or 0 for b in blocks)
    last = served[-1]
    ratios = [h / lo for h, lo in zip(times["http"], times["local"], strict=True)]
    result = header() | {
        "benchmark": "network",
        "preset": args.preset, "seed": args.seed, "zoom": args.zoom,
        "renderer": args.renderer or "default", "workers": args.workers, "rounds": args.rounds,
        "bbox": list(bbox.as_tuple()),
        "latency_ms": args.latency_ms, "mbps_per_connection": args.mbps,
        "layout": [layout_facts(next(world.rglob(f"{n}.tif"))) for n in ("B04", "SCL")],
        "local_s": round(median(times["local"]), 2),
        "http_s": round(median(times["http"]), 2),
        "http_over_local": round(median(ratios), 3),
        "seconds_rounds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "ratio_rounds": [round(x, 3) for x in ratios],
        "server": {k: last[k] for k in ("requests", "bytes", "not_found", "multi_range")},
        "server_rounds": [{k: s[k] for k in ("requests", "bytes")} for s in served],
        "server_paths": last["paths"],
        "tile_bytes": tile_bytes or None,
        "server_bytes_over_tile_bytes": round(last["bytes"] / tile_bytes, 3) if tile_bytes
        else None,
        "blocks": blocks,
        **({"old": args.old,
            "old_local_s": round(median(times["old-local"]), 2),
            "old_http_s": round(median(times["old-http"]), 2),
            "old_http_over_local": round(median([h / lo for h, lo in zip(
                times["old-http"], times["old-local"], strict=True)]), 3),
            "new_http_over_old_http": round(median([n / o for n, o in zip(
                times["http"], times["old-http"], strict=True)]), 3),
            "old_server": {k: old_served[-1][k] for k in ("requests", "bytes")}}
           if args.old else {}),
        "tiles": len(local),
        "tile_mismatches": mismatches,
    }
    rows = [{"build": k, "seconds": round(median(times[k]), 2)} for k in kinds]
    rows += [{"build": "http/local", "seconds": result["http_over_local"]}]
    if args.old:
        rows += [{"build": "old http/local", "seconds": result["old_http_over_local"]},
                 {"build": "new http/old http", "seconds": result["new_http_over_old_http"]}]
    print(table(rows, ["build", "seconds"]))
    if args.old:
        print(f"old code's server traffic: {result['old_server']['requests']} requests, "
              f"{result['old_server']['bytes'] / 1e6:.2f} MB")
    print(f"\nserver (last HTTP build): {last['requests']} requests, {last['bytes'] / 1e6:.2f} MB"
          f" ({last['not_found']} not found, {last['multi_range']} multi-range); "
          f"server bytes / tile_bytes: {result['server_bytes_over_tile_bytes'] or 'n/a'}\n")
    print(table([{k: ("n/a" if v is None else v) for k, v in b.items()} for b in blocks],
                ["block", "status", "requests", "bytes", "tile_bytes", "bytes/tile_bytes",
                 "wait_s", "read_s"]))
    print(f"\ntiles: {len(local)} local, {len(http)} http, {len(mismatches)} differ"
          + "".join(f"\n  {m}" for m in mismatches[:20]))
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    if mismatches:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
