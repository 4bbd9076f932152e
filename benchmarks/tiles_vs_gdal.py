"""`basemap tiles` against `gdal2tiles.py --xyz` on the same 8-bit COG, PNG tiles.

    python benchmarks/tiles_vs_gdal.py --real --zoom 0-14 --rounds 3 \
        --json benchmarks/results/tiles_real.json
    python benchmarks/tiles_vs_gdal.py --size 4096 --zoom 0-14 --rounds 3 \
        --json benchmarks/results/tiles.json

Sources: ``--src`` (any 8-bit raster); ``--real`` (the realistic one): the real Sentinel-2 L2A
scene the repository ships (``tests/data/real-s2/29RKH``: B04, B03, B02 of tile 29RKH, 2020-02-19,
1098 px square, resampled to 100 m by its publishers), colorized to 8-bit by `basemap colorize`
(the shipped U-Net unless ``--renderer``), mirrored (``np.pad(..., "symmetric")``) to
``--real-size`` (6144 x 3072 px) and written as a COG at 10 m in the scene's UTM zone from its
corner (61 x 31 km at ~25 N): real pixel statistics, a 10 m grid, no data from outside the
clone (``--real DIR`` takes any folder with B04/B03/B02.tif, e.g. ../shared/data/real-s2/...);
otherwise a synthetic 8-bit RGB COG in UTM 32N at 10 m, ``--size`` px square, textured like
imagery (smooth fields plus per-pixel noise).
Per round, both tools run as subprocesses with the same number of processes (``--processes``);
reported: median wall times and the median of per-round ratios, the tile sets (``z/x/y`` of
every tile with a visible pixel: must be identical) and the bytes written. gdal2tiles writes
some fully transparent tiles at the edges of the bounds (its ``-x`` does not catch all of them);
`basemap tiles` writes none, so the sets are compared over visible tiles and the extra empty
tiles are counted. Without gdal2tiles.py on PATH only `basemap tiles` is timed. ``gdal raster
tile`` (GDAL >= 3.11) is timed too when the ``gdal`` program on PATH has it; the JSON says which
GDAL was found either way.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, header, median, write_json  # noqa: E402

#: The real scene the repository ships (B02, B03, B04, B08 of 29RKH at 100 m; tests use it too).
REAL_SCENE = ROOT / "tests" / "data" / "real-s2" / "29RKH"


def make_source(path: Path, size: int, seed: int = 0) -> Path:
    """A textured 8-bit RGB COG in EPSG:32632 at 10 m (left 300 km, top 5000 km: ~45 N, 4.4 E)."""
    import rasterio
    from rasterio.transform import from_origin
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    n8 = max(size // 8, 4)
    fields = [zoom(gaussian_filter(rng.normal(size=(n8, n8)), 3), size / n8, order=1)[:size, :size]
              for _ in range(3)]
    base = np.stack(fields)
    img = base / (np.abs(base).max() + 1e-9) * 80 + 120 + rng.normal(0, 6, (3, size, size))
    profile = {"driver": "COG", "width": size, "height": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(300000, 5000000, 10, 10),
               "compress": "deflate", "blocksize": 512}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.clip(img, 1, 255).astype(np.uint8))
    return path


def make_real_source(work: Path, scene: Path, renderer: str, size: tuple[int, int]) -> Path:
    """The realistic source: a real scene's R, G, B colorized to 8-bit, mirrored to ``size``
    (width, height) px, as a COG at 10 m in the scene's CRS from its top-left corner."""
    import rasterio
    from rasterio.transform import from_origin

    bands = []
    for name in ("B04", "B03", "B02"):
        with rasterio.open(scene / f"{name}.tif") as ds:
            bands.append(ds.read(1))
            profile, left, top = ds.profile, ds.bounds.left, ds.bounds.top
    profile.update(driver="GTiff", count=3, compress="deflate")
    with rasterio.open(work / "real_l2a.tif", "w", **profile) as ds:
        ds.write(np.stack(bands))
    subprocess.run(basemap_cmd() + ["colorize", "--renderer", renderer, str(work / "real_l2a.tif"),
                                    str(work / "real_8bit.tif")], check=True, capture_output=True)
    with rasterio.open(work / "real_8bit.tif") as ds:
        rgb, crs = ds.read(), ds.crs
    width, height = size
    rgb = np.pad(rgb, ((0, 0), (0, max(0, height - rgb.shape[1])),
                       (0, max(0, width - rgb.shape[2]))), mode="symmetric")[:, :height, :width]
    out = work / "real.tif"
    with rasterio.open(out, "w", driver="COG", width=width, height=height, count=3, dtype="uint8",
                       crs=crs, transform=from_origin(left, top, 10, 10), compress="deflate",
                       blocksize=512) as ds:
        ds.write(rgb)
    return out


def basemap_cmd() -> list[str]:
    """The `basemap` command: the venv's entry point, else PATH's."""
    exe = Path(sys.executable).with_name("basemap")
    return [str(exe)] if exe.is_file() else [shutil.which("basemap") or "basemap"]


def gdal_raster_tile() -> tuple[list[str] | None, str]:
    """(`gdal raster tile` command prefix or None, which GDAL program was found)."""
    gdal = shutil.which("gdal")
    if gdal is None:
        found = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True)
        return None, (f"no `gdal` program (GDAL >= 3.11); gdalinfo says {found.stdout.strip()}"
                      if found.returncode == 0 else "no GDAL on PATH")
    probe = subprocess.run([gdal, "raster", "tile", "--help"], capture_output=True, text=True)
    version = subprocess.run([gdal, "--version"], capture_output=True, text=True).stdout.strip()
    return ([gdal, "raster", "tile"] if probe.returncode == 0 else None), version


def tile_set(root: Path, ext: str = "png") -> tuple[set[str], set[str], int]:
    """(visible tiles "z/x/y", fully transparent tiles, total bytes) under an XYZ folder."""
    from PIL import Image

    visible, empty, size = set(), set(), 0
    for f in root.glob(f"*/*/*.{ext}"):
        key = f"{f.parent.parent.name}/{f.parent.name}/{f.stem}"
        size += f.stat().st_size
        with Image.open(f) as im:
            if im.mode in ("RGBA", "LA") and not np.asarray(im.getchannel("A")).any():
                empty.add(key)
            else:
                visible.add(key)
    return visible, empty, size


def run_timed(cmd: list[str]) -> float:
    """Wall seconds of a command (fails loudly)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=None, help="an 8-bit raster (default: synthetic COG)")
    p.add_argument("--real", nargs="?", const=str(REAL_SCENE), default=None, metavar="DIR",
                   help="the realistic source from a real scene's B04/B03/B02.tif "
                        f"(default folder: {REAL_SCENE.relative_to(ROOT)})")
    p.add_argument("--real-size", default="6144x3072", help="WIDTHxHEIGHT of --real, px")
    p.add_argument("--renderer", default="unet", help="`basemap colorize` renderer of --real")
    p.add_argument("--size", type=int, default=4096, help="synthetic source side, px at 10 m")
    p.add_argument("--zoom", default="0-14")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def commands(args: argparse.Namespace, src: Path, work: Path) -> dict[str, list[str]]:
    """The commands timed per round (tool -> argv), basemap first."""
    zmin, zmax = args.zoom.split("-")
    n = str(args.processes)
    cmds = {"basemap": basemap_cmd() + ["tiles", str(src), str(work / "basemap"), "--zoom",
                                        args.zoom, "--tile-format", "png", "--workers", n, "-q"]}
    gdal2tiles = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")
    if gdal2tiles:
        cmds["gdal2tiles"] = [gdal2tiles, "--xyz", "--processes", n, "-z", args.zoom, "-x", "-q",
                              str(src), str(work / "gdal2tiles")]
    raster_tile, _ = gdal_raster_tile()
    if raster_tile:
        cmds["gdal_raster_tile"] = raster_tile + [
            "--min-zoom", zmin, "--max-zoom", zmax, "--num-threads", n, "--convention", "xyz",
            "-q", str(src), str(work / "gdal_raster_tile")]
    return cmds


def source(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """(the source raster, how it was made)."""
    if args.src:
        return Path(args.src), args.src
    if args.real:
        w, h = (int(v) for v in args.real_size.split("x"))
        scene = Path(args.real).resolve()
        src = make_real_source(work, scene, args.renderer, (w, h))
        name = scene.relative_to(ROOT) if scene.is_relative_to(ROOT) else scene
        return src, (f"real S2 L2A {name} (B04/B03/B02), `basemap colorize --renderer "
                     f"{args.renderer}`, mirrored to {w}x{h} px, COG at 10 m")
    return (make_source(work / "src.tif", args.size),
            f"synthetic {args.size}x{args.size} px RGB COG, EPSG:32632, 10 m")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    args = parse(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-tiles-"))
    work.mkdir(parents=True, exist_ok=True)
    src, described = source(args, work)
    cmds = commands(args, src, work)
    times: dict[str, list[float]] = {tool: [] for tool in cmds}
    for _ in range(args.rounds):  # interleaved: each round runs every tool once
        for tool, cmd in cmds.items():
            shutil.rmtree(work / tool, ignore_errors=True)
            times[tool].append(run_timed(cmd))
    vis_ours, empty_ours, bytes_ours = tile_set(work / "basemap" / "tiles")
    result = header() | {
        "benchmark": "tiles_vs_gdal", "source": described, "zoom": args.zoom,
        "processes": args.processes, "rounds": args.rounds,
        "commands": {tool: " ".join(cmd) for tool, cmd in cmds.items()},
        "gdal_raster_tile_found": gdal_raster_tile()[1],
        "basemap_s": round(median(times["basemap"]), 3),
        "basemap_s_rounds": [round(t, 2) for t in times["basemap"]],
        "basemap_tiles": len(vis_ours) + len(empty_ours),
        "basemap_empty_tiles": len(empty_ours), "basemap_bytes": bytes_ours,
    }
    for tool in cmds.keys() - {"basemap"}:
        result |= compare(tool, times, work / tool, vis_ours)
    if "gdal2tiles" not in cmds:
        result["note"] = "gdal2tiles.py not found (apt-get install gdal-bin): not compared"
    for k in ("basemap_s", "gdal2tiles_s", "speedup", "gdal_raster_tile_s",
              "speedup_vs_gdal_raster_tile", "basemap_tiles", "gdal2tiles_tiles",
              "gdal2tiles_empty_tiles", "same_visible_tile_set", "basemap_bytes",
              "gdal2tiles_bytes", "gdal_raster_tile_found"):
        if k in result:
            print(f"{k:28} {result[k]}")
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def compare(tool: str, times: dict[str, list[float]], out: Path, vis_ours: set[str]) -> dict:
    """The figures of another tool against `basemap tiles` (same rounds, same source)."""
    ratios = [t / b for t, b in zip(times[tool], times["basemap"], strict=True)]
    vis, empty, size = tile_set(out)
    speedup = "speedup" if tool == "gdal2tiles" else f"speedup_vs_{tool}"
    same = "same_visible_tile_set" + ("" if tool == "gdal2tiles" else f"_as_{tool}")
    return {
        f"{tool}_s": round(median(times[tool]), 3),
        f"{tool}_s_rounds": [round(t, 2) for t in times[tool]],
        speedup: round(median(ratios), 3),
        f"{speedup}_rounds": [round(r, 2) for r in ratios],
        f"{tool}_tiles": len(vis) + len(empty),
        f"{tool}_empty_tiles": len(empty),
        f"{tool}_bytes": size,
        same: vis_ours == vis,
        f"only_basemap_not_{tool}": sorted(vis_ours - vis)[:20],
        f"only_{tool}": sorted(vis - vis_ours)[:20],
    }


if __name__ == "__main__":
    main()
