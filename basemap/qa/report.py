"""The `basemap evaluate` report: report.json, PNG figures (matplotlib, Agg) and a small HTML page.

Files written under the report folder:

- ``report.json``: every figure (see basemap.qa.evaluate);
- ``crops.png``: the same pixels side by side, one panel per rendering (tiles as built first);
- ``block_corner.png``: a zoomed crop across a block corner (dashed: the block borders);
- ``figures.png``: the numbers as bar charts;
- ``index.html``: a table of the figures and the pictures.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import numpy as np

#: Figures shown in the table and charts: key -> label.
FIGURES = {
    "seam_excess_window": "seam excess, window borders (lower = better)",
    "seam_excess_block": "seam excess, block borders (lower = better)",
    "seam_excess_tile": "seam excess, tile borders (lower = better)",
    "clipped_pct": "clipped pixels % (lower = better)",
    "colourfulness": "colourfulness (Hasler-Suesstrunk)",
    "mean_lightness": "mean L*",
    "cross_scene_ciede2000": "cross-scene CIEDE2000 (lower = better)",
}
CROP = 512
ZOOM_CROP = 48


def _rgba(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 for imshow: nodata transparent."""
    return np.dstack([rgb.transpose(1, 2, 0), np.where(valid, 255, 0).astype(np.uint8)])


def _panels(images: dict, crop: int, path: Path, zoom_lines: bool) -> None:
    """One row of panels: the centre crop x crop of each image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(images)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rgb, valid = images[name]
        h, w = valid.shape
        c = min(crop, h, w)
        r0, c0 = (h - c) // 2, (w - c) // 2
        ax.imshow(_rgba(rgb[:, r0 : r0 + c, c0 : c0 + c], valid[r0 : r0 + c, c0 : c0 + c]),
                  interpolation="nearest")
        if zoom_lines:  # the sample region is centred on a block corner
            ax.axvline(c / 2 - 0.5, color="w", ls="--", lw=0.8)
            ax.axhline(c / 2 - 0.5, color="w", ls="--", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_facecolor("#808080")  # nodata (transparent) shows grey
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _charts(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(figures)
    keys = list(FIGURES)
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(keys) / cols), cols, figsize=(4 * cols, 6.5))
    for ax, key in zip(list(axes.flat)[: len(keys)], keys, strict=True):
        values = [figures[n].get(key, float("nan")) for n in names]
        ax.barh(range(len(names)), [0 if math.isnan(v) else v for v in values], color="#4a7ab5")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(FIGURES[key], fontsize=9)
        if key.startswith("seam"):
            ax.axvline(1.0, color="k", lw=0.8, ls=":")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _html(result: dict) -> str:
    names = list(result["figures"])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for key, label in FIGURES.items():
        values = [result["figures"][n].get(key, float("nan")) for n in names]
        cells = "".join(f"<td>{v:.3f}</td>" for v in values)
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    x0, y0, x1, y1 = result["region"]
    b = result["borders"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>basemap evaluation</title>
<style>body{{font:14px sans-serif;margin:1.5em}} td,th{{padding:3px 8px;text-align:right}}
table{{border-collapse:collapse}} tr:nth-child(even){{background:#eee}}
img{{max-width:100%}}</style>
</head><body>
<h1>basemap evaluation</h1>
<p>Build <code>{html.escape(result["build"])}</code>
(renderer <b>{html.escape(result["renderer"])}</b>), sample region x {x0}-{x1}, y {y0}-{y1}
at zoom {result["zoom"]} ({x1 - x0} x {y1 - y0} px, centred on a block corner),
{len(result["scenes"])} scenes. Borders: windows every {b["window"]} px, blocks every
{b["block"]} px, tiles every {b["tile"]} px. Seam excess: about 1 or less means no visible
seam.</p>
<p>Composite: {composite_line(result.get("composite", {}))}.</p>
<p>Reads: {html.escape(reads_line(result.get("reads")))}.</p>
<table><tr><th></th>{head}</tr>
{chr(10).join(rows)}
</table>
<h2>Same pixels, every renderer</h2><img src="crops.png" alt="side-by-side crops">
<h2>Across a block corner (zoomed; dashed lines: block borders)</h2>
<img src="block_corner.png" alt="zoomed block corner">
<h2>Figures</h2><img src="figures.png" alt="bar charts">
<p>Numbers: <a href="report.json">report.json</a>.</p>
</body></html>
"""


def reads_line(r: dict | None) -> str:
    """What a build's reads cost, in one line (report and CLI)."""
    if not r:
        return "not recorded (no block computed in the run that wrote build.json)"
    m = r["median_block"]
    ratio = r.get("bytes_over_tile_bytes")
    over = "" if ratio is None else f", {ratio:.2f}x the COG tiles touched"
    return (f"{r['blocks']} blocks, {r['requests']} requests, {r['bytes'] / 1e6:.1f} MB "
            f"downloaded{over}; per block (median) {m['requests']:.0f} requests, "
            f"{m['bytes'] / 1e6:.1f} MB, {m['read_s']:.2f} s reading, {m['wait_s']:.2f} s "
            "waited by the compositing")


def composite_line(c: dict) -> str:
    """The composite figures of an evaluation in one line (report and CLI)."""
    if not c:
        return "not measured"
    frac = c.get("build_filled_fraction")
    build = "n/a" if frac is None else f"{100 * frac:.2f} %"
    return (f"holes {c['holes_pct']:.2f} % of covered pixels, filled {c['filled_pct']:.2f} % "
            f"(whole build: {build}), haze/cloud leak proxy {c['leak_proxy_pct']:.2f} %")


def _json_safe(value: object) -> object:
    """NaN -> None (JSON has no NaN), recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(folder: Path, result: dict, images: dict) -> None:
    """Write report.json, the PNGs and index.html into folder (created if needed).

    Args:
        folder: the report folder.
        result: the figures (basemap.evaluate.evaluate's result).
        images: rendering name -> (rgb uint8 (3, H, W), valid (H, W)) of the sample region.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _panels(images, CROP, folder / "crops.png", zoom_lines=False)
    _panels(images, ZOOM_CROP, folder / "block_corner.png", zoom_lines=True)
    _charts(result["figures"], folder / "figures.png")
    for name, text in (("index.html", _html(result)),
                       ("report.json", json.dumps(_json_safe(result), indent=1))):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, folder / name)
