"""The real Sentinel-2 corpus: which scenes train the model and which are held out, by place.

Scenes live in the repository (never in the installed package), copied from public projects'
test data with their READMEs (licences and sources: ``model/data/real-s2-train/README.md``,
``model/data/README.md``, ``tests/data/README.md``):

- ``model/data/real-s2-train/``: 10 m L2A time series and composites from Belgium, northern
  France and Berlin (WorldCereal, openEO), a whole 60 m L2A tile of western Ireland with the
  +1000 DN offset (stactools), the Port of Antwerp (19 dates, openEO), fields in Puglia, Italy
  (19 dates) and two 250 m L1C tiles of New South Wales, Australia (eo-datasets);
- ``model/data/bigearthnet/``: six 120 px L2A patches (Austria, Ireland, Portugal, Finland);
- ``tests/data/real-s2/29RKH``: a 100 m L2A desert scene in Morocco.

Whole places are held out (``HELDOUT_PLACES``): Port of Antwerp, Puglia, New South Wales (the
hazy L1C pair), BigEarthNet's Austria/Ireland/Portugal/Finland and the Moroccan desert: four
countries and three continents the model never saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from basemap.model.training.grader import SCL_EXCLUDE

from basemap.stac.radiometry import to_reflectance

#: The repository's model/ folder (the data sits beside the weights, outside the package data).
MODEL = Path(__file__).resolve().parents[1]
REAL_TRAIN = MODEL / "data" / "real-s2-train"
BIGEARTHNET = MODEL / "data" / "bigearthnet"
RKH = MODEL.parent / "tests" / "data" / "real-s2" / "29RKH"

#: Held-out places (folder name prefixes under real-s2-train, plus the two other folders).
HELDOUT_PLACES = {
    "antwerp-port": "Open-EO_openeo-gfmap/optical_cube",
    "puglia": "Open-EO_openeo-gfmap/polygon",
    "nsw-l1c": "opendatacube_eo-datasets",
}
#: Stactools' T29UNU keeps the +1000 DN offset of processing baseline 04.00.
OFFSET_FOLDERS = ("stactools-packages_sentinel2",)


@dataclass(frozen=True)
class Scene:
    """One real image: 3-band RGB file (or three band files), optional SCL and NIR, its place."""

    name: str
    place: str
    date: str
    rgb: tuple[str, ...]
    dn_offset: float = 0.0
    scl: str | None = None
    nir: str | None = None
    level: str = "L2A"

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(reflectance (3, H, W) float32, valid, clear (SCL) or None, NIR reflectance or None)."""
        bands = []
        for href in self.rgb:
            with rasterio.open(href) as ds:
                bands.append(ds.read())
        dn = np.concatenate(bands).astype(np.uint16)
        refl, valid = to_reflectance(dn, self.dn_offset)
        clear = nir = None
        if self.scl:
            with rasterio.open(self.scl) as ds:
                scl = ds.read(1, out_shape=valid.shape)
            clear = ~np.isin(scl, SCL_EXCLUDE)
        if self.nir:
            with rasterio.open(self.nir) as ds:
                n = ds.read(1, out_shape=valid.shape).astype(np.float32)
            nir = (n + self.dn_offset) / 10000.0
        return refl, valid, clear, nir


def _sibling(rgb: Path, token: str) -> str | None:
    prefix = rgb.name.split("_RGB_")[0]
    hits = sorted(rgb.parent.glob(f"{prefix}_{token}_*.tif"))
    return str(hits[0]) if hits else None


def _date(name: str) -> str:
    m = re.search(r"(20\d{6})", name)
    return m.group(1) if m else ""


def _place(rel: str) -> str:
    for place, prefix in HELDOUT_PLACES.items():
        if rel.startswith(prefix):
            return place
    parts = rel.split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def train_scenes() -> list[Scene]:
    """The real scenes the model trains on (every RGB file outside the held-out places)."""
    return [s for s in real_train_folder() if s.place not in HELDOUT_PLACES]


def real_train_folder() -> list[Scene]:
    """Every scene of model/data/real-s2-train, held out or not."""
    out = []
    for rgb in sorted(REAL_TRAIN.rglob("*_RGB_*.tif")):
        rel = rgb.relative_to(REAL_TRAIN).as_posix()
        offset = -1000.0 if rel.startswith(OFFSET_FOLDERS) else 0.0
        level = "L1C" if "_L1C_" in rgb.name else "L2A"
        nir = _sibling(rgb, "B08") or _sibling(rgb, "B8A")
        out.append(Scene(rgb.stem, _place(rel), _date(rgb.name), (str(rgb),), offset,
                         _sibling(rgb, "SCL"), nir, level))  # fmt: skip
    return out


def heldout_scenes() -> list[Scene]:
    """The held-out real scenes: the held-out places, BigEarthNet and 29RKH."""
    out = [s for s in real_train_folder() if s.place in HELDOUT_PLACES]
    for d in sorted(p for p in BIGEARTHNET.iterdir() if p.is_dir()):
        rgb = tuple(str(d / f"{d.name}_{b}.tif") for b in ("B04", "B03", "B02"))
        out.append(Scene(d.name, f"bigearthnet-{d.name[-5:]}", _date(d.name), rgb,
                         nir=str(d / f"{d.name}_B08.tif")))  # fmt: skip
    rkh = tuple(str(RKH / f"{b}.tif") for b in ("B04", "B03", "B02"))
    out.append(Scene("29RKH", "morocco-desert", "20200219", rkh, scl=str(RKH / "SCL.tif"),
                     nir=str(RKH / "B08.tif")))  # fmt: skip
    return out
