"""`basemap tiles` against `gdal2tiles.py --xyz` on the same 8-bit COG, PNG tiles.

    python benchmarks/tiles_vs_gdal.py --size 4096 --zoom 0-14 --rounds 3 \
        --json benchmarks/results/tiles.json

The source (unless ``--src``) is a synthetic 8-bit RGB COG in UTM 32N at 10 m, ``--size`` px
square, textured like imagery (smooth fields plus per-pixel noise) so PNG sizes are realistic.
Per round, both tools run as subprocesses with the same number of processes (``--processes``);
reported: median wall times and the median of per-round ratios, the tile sets (``z/x/y`` of
every tile with a visible pixel: must be identical) and the bytes written. gdal2tiles writes
some fully transparent tiles at the edges of the bounds (its ``-x`` does not catch all of them);
`basemap tiles` writes none, so the sets are compared over visible tiles and the extra empty
tiles are counted. Without gdal2tiles.py on PATH only `basemap tiles` is timed.
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
from common import header, median, write_json  # noqa: E402


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


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=None, help="an 8-bit raster (default: synthetic COG)")
    p.add_argument("--size", type=int, default=4096, help="synthetic source side, px at 10 m")
    p.add_argument("--zoom", default="0-14")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-tiles-"))
    work.mkdir(parents=True, exist_ok=True)
    src = Path(args.src) if args.src else make_source(work / "src.tif", args.size)
    exe = Path(sys.executable).with_name("basemap")  # the venv's entry point, else PATH's
    basemap = [str(exe)] if exe.is_file() else [shutil.which("basemap") or "basemap"]
    gdal2tiles = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")
    times = {"basemap": [], "gdal2tiles": []}
    ratios = []
    for _ in range(args.rounds):
        ours, theirs = work / "basemap", work / "gdal2tiles"
        for d in (ours, theirs):
            shutil.rmtree(d, ignore_errors=True)
        times["basemap"].append(run_timed(basemap + ["tiles", str(src), str(ours), "--zoom",
                                                     args.zoom, "--tile-format", "png",
                                                     "--workers", str(args.processes), "-q"]))
        if gdal2tiles:
            times["gdal2tiles"].append(run_timed(
                [gdal2tiles, "--xyz", "--processes", str(args.processes), "-z", args.zoom, "-x",
                 "-q", str(src), str(theirs)]))
            ratios.append(times["gdal2tiles"][-1] / times["basemap"][-1])
    vis_ours, empty_ours, bytes_ours = tile_set(work / "basemap" / "tiles")
    result = header() | {
        "benchmark": "tiles_vs_gdal",
        "source": str(src) if args.src else f"synthetic {args.size}x{args.size} px RGB COG, "
                                            "EPSG:32632, 10 m",
        "zoom": args.zoom,
        "processes": args.processes,
        "rounds": args.rounds,
        "basemap_s": round(median(times["basemap"]), 3),
        "basemap_s_rounds": [round(t, 2) for t in times["basemap"]],
        "basemap_tiles": len(vis_ours) + len(empty_ours),
        "basemap_empty_tiles": len(empty_ours),
        "basemap_bytes": bytes_ours,
    }
    if gdal2tiles:
        vis_g, empty_g, bytes_g = tile_set(work / "gdal2tiles")
        result |= {
            "gdal2tiles_s": round(median(times["gdal2tiles"]), 3),
            "gdal2tiles_s_rounds": [round(t, 2) for t in times["gdal2tiles"]],
            "speedup": round(median(ratios), 3),
            "speedup_rounds": [round(r, 2) for r in ratios],
            "gdal2tiles_tiles": len(vis_g) + len(empty_g),
            "gdal2tiles_empty_tiles": len(empty_g),
            "gdal2tiles_bytes": bytes_g,
            "same_visible_tile_set": vis_ours == vis_g,
            "only_basemap": sorted(vis_ours - vis_g)[:20],
            "only_gdal2tiles": sorted(vis_g - vis_ours)[:20],
        }
    else:
        result["gdal2tiles_s"] = None
        result["note"] = "gdal2tiles.py not found (apt-get install gdal-bin): not compared"
    for k in ("basemap_s", "gdal2tiles_s", "speedup", "basemap_tiles", "gdal2tiles_tiles",
              "gdal2tiles_empty_tiles", "same_visible_tile_set", "basemap_bytes",
              "gdal2tiles_bytes"):
        if k in result:
            print(f"{k:24} {result[k]}")
    write_json(result, args.json)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
