"""Print the model card's per-scene table from a metrics JSON (model/metrics.json by default).

    python scripts/metrics_tables.py [METRICS_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def main(argv: list[str]) -> None:
    """Print the markdown table."""
    path = Path(argv[0]) if argv else ROOT / "model" / "metrics.json"
    m = json.loads(path.read_text())
    print("| scene | place | level | px | mean L* | L* std | Spearman | clipped % | dE00 to "
          "targets unet / sh / clahe | dE00 atmospheres unet / sh | veg a* | veg bluish % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in m["scenes"]:
        r = s["renderers"]
        u, sh, cl = r["unet"], r["sh-l2a-optimized"], r["stretch-clahe"]
        bluish = (f"{u['veg_bluish_pct']:.1f} ({sh['veg_bluish_pct']:.1f})"
                  if "veg_bluish_pct" in u else "-")
        print(f"| {s['scene'][:28]} | {s['place']} | {s['level']} | {s['pixels']} | "
              f"{u['mean_L']:.1f} ({sh['mean_L']:.1f}) | {u['std_L']:.1f} ({sh['std_L']:.1f}) | "
              f"{u['spearman']:.3f} | {u['clipped_pct']:.2f} | {u['de_target']:.2f} / "
              f"{sh['de_target']:.2f} / {cl['de_target']:.2f} | {u['de_atmospheres']:.2f} / "
              f"{sh['de_atmospheres']:.2f} | {_f(u.get('veg_a'), '.1f')} | {bluish} |")


if __name__ == "__main__":
    main(sys.argv[1:])
