"""Reduced-precision U-Net inference against fp32: speed of the blended output, and accuracy on
the held-out real scenes (issue 34).

    python benchmarks/precision.py --rounds 3 --checks --json benchmarks/results/precision.json

Speed, per round, the precisions interleaved: :func:`basemap.render.unet.colorize_array` on a
``--region`` px square (512 px windows on the global grid, input preparation, tapered blend,
uint8: the blended output) with the production model of each precision
(``load_model(precision=...)``: fp32 is ONNX Runtime, bf16 OpenVINO), and the network alone on one
512 px window, both on ``--threads`` threads (default 2). Reported: medians over rounds, and the
median of the per-round ratios to fp32.

Accuracy: every held-out real scene (``basemap.model.training.corpus.heldout_scenes``: the
held-out places, every date), rendered whole by the U-Net renderer in fp32 and in each other
precision: max and mean absolute difference in 8-bit levels, the share of values off by more
than one level, and the mean and worst per-scene CIEDE2000 between the renderings. ``--checks``
runs the model card's held-out colour checks (``basemap.model.training.heldout``) in each
precision too (a few minutes each) and reports each check's value and whether it holds.
``--precisions fp32,bf16,int8`` adds the int8 variant that was measured and is not offered
(:func:`int8_model`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, header, median, table, write_json  # noqa: E402


def blended_seconds(model, region: int, repeat: int) -> float:
    """Best-of-``repeat`` seconds of the blended output of a ``region`` px square."""
    from basemap.grid import Region
    from basemap.render.unet import colorize_array
    from basemap.render.windows import WindowGrid

    grid = WindowGrid(512, 64)
    x0 = y0 = 10 * grid.stride  # a region starting on a window: the interior case
    bounds = Region(x0, y0, x0 + region, y0 + region)
    need = grid.input_region(bounds)
    refl = np.random.default_rng(0).uniform(0.0, 0.4, (3, need.height, need.width))
    refl = refl.astype(np.float32)
    valid = np.ones((need.height, need.width), bool)

    def run() -> None:
        colorize_array(refl, valid, (need.x0, need.y0), bounds, model, 512, 64)

    run()
    return best_time(run, repeat)


def int8_model(crops: int = 64):
    """The U-Net statically quantized to int8 by ONNX Runtime (QDQ, per-channel int8 weights,
    uint8 activations calibrated (min-max) on ``crops`` random 64 px crops of the real training
    scenes; the first and last convolutions and the tone prior stay fp32): the variant that was
    measured and not offered."""
    import tempfile

    from basemap.model.training.corpus import train_scenes
    from basemap.model.weights import load_weights
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from basemap import config
    from basemap.render.export import export
    from basemap.render.inference import LoadedModel, _session, prepare_net

    net, norm, _ = load_weights(config.weights_path(None))
    rng = np.random.default_rng(0)
    batch = []
    for scene in rng.permutation(np.array(train_scenes(), dtype=object))[:crops]:
        refl, valid, *_ = scene.read()
        y, x = (rng.integers(0, d - 63) for d in valid.shape)
        batch.append(refl[None, :, y : y + 64, x : x + 64])

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"x": c} for c in batch])

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        fp32.write_bytes(export(prepare_net(net, "cpu"), norm))
        quantize_static(str(fp32), str(int8), Crops(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "ConvTranspose"],
                        nodes_to_exclude=["/net/stem/Conv", "/net/head/Conv",
                                          "/net/input_skip/Conv"])
        session = _session(int8.read_bytes(), int(os.environ["OMP_NUM_THREADS"]), "fp32")
    return LoadedModel("int8", "", "cpu", None, None, session=session,
                       downsampling=net.config.factor, precision="int8")


def models(precisions: list[str]) -> dict:
    """The production model of each precision (int8: :func:`int8_model`)."""
    from basemap.render.inference import load_model

    return {p: int8_model() if p == "int8" else load_model(precision=p) for p in precisions}


def speed(models: dict, rounds: int, region: int, repeat: int) -> list[dict]:
    """Blended Mpx/s and network Mpx/s of each precision, interleaved in rounds."""
    precisions = list(models)
    window = np.random.default_rng(1).uniform(0, 0.4, (1, 3, 512, 512)).astype(np.float32)
    blended = {p: [] for p in precisions}
    network = {p: [] for p in precisions}
    for _ in range(rounds):
        for p, model in models.items():
            model.predict(window)
            network[p].append(512 * 512 / best_time(lambda m=model: m.predict(window), repeat))
            blended[p].append(region**2 / blended_seconds(model, region, repeat))
    def vs_fp32(runs: dict, p: str) -> float:
        return round(median([a / b for a, b in zip(runs[p], runs["fp32"], strict=True)]), 3)

    return [{"precision": p, "engine": type(models[p].session).__name__,
             "blended_mpx_s": round(median(blended[p]) / 1e6, 3),
             "blended_vs_fp32": vs_fp32(blended, p),
             "network_mpx_s": round(median(network[p]) / 1e6, 3),
             "network_vs_fp32": vs_fp32(network, p)} for p in precisions]


def render_scene(refl: np.ndarray, valid: np.ndarray, model) -> np.ndarray:
    """The U-Net's whole-scene rendering, uint8 (3, H, W), with ``model`` (the renderer's path:
    the scene padded with nodata to the windows touching it)."""
    from basemap.grid import Region
    from basemap.render.unet import colorize_array
    from basemap.render.windows import WindowGrid

    region = Region(0, 0, valid.shape[1], valid.shape[0])
    need = WindowGrid(512, 64).input_region(region)
    padded = np.zeros((3, need.height, need.width), np.float32)
    mask = np.zeros((need.height, need.width), bool)
    rows, cols = region.slices((need.x0, need.y0))
    padded[:, rows, cols], mask[rows, cols] = refl, valid
    return colorize_array(padded, mask, (need.x0, need.y0), region, model)


def accuracy(precision: str, models: dict, scenes: int | None) -> dict:
    """Differences of the ``precision`` renderings of the held-out scenes (the first ``scenes``;
    None: all) to fp32's."""
    from basemap.model.training.corpus import heldout_scenes

    from basemap.colour import ciede2000, srgb_to_lab

    worst, total, off, n, de = 0.0, 0.0, 0, 0, {}
    for scene in heldout_scenes()[:scenes]:
        refl, valid, *_ = scene.read()
        ref = render_scene(refl, valid, models["fp32"])
        low = render_scene(refl, valid, models[precision])
        d = np.abs(ref.astype(np.int16) - low.astype(np.int16))[:, valid]
        worst, total = max(worst, float(d.max(initial=0))), total + float(d.sum())
        off, n = off + int((d > 1).sum()), n + d.size
        lab = [srgb_to_lab(x[:, valid].astype(np.float32) / 255.0) for x in (ref, low)]
        de[scene.name] = float(ciede2000(*lab).mean()) if valid.any() else 0.0
    return {"precision": precision, "scenes": len(de), "values": n, "max_abs_levels": worst,
            "mean_abs_levels": round(total / max(n, 1), 4),
            "share_off_by_more_than_1": round(off / max(n, 1), 6),
            "mean_ciede2000": round(float(np.mean(list(de.values()))), 4),
            "worst_scene_ciede2000": round(max(de.values()), 4)}


def checks(precision: str) -> dict:
    """The model card's held-out colour checks with the U-Net in ``precision``."""
    from basemap.model.training.heldout import evaluate_weights

    os.environ["BASEMAP_PRECISION"] = precision
    summary = evaluate_weights(None)["summary"]
    return {k: {"value": v["value"], "ok": v["ok"]} for k, v in summary.items() if "ok" in v}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precisions", default="fp32,bf16",
                   help="comma-separated, fp32 first; int8: the variant measured, not offered")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3, help="timed calls per measurement (best)")
    p.add_argument("--region", type=int, default=1792, help="side of the blended square, px")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-accuracy", action="store_true", help="speed only")
    p.add_argument("--scenes", type=int, default=None, help="the first N held-out scenes only")
    p.add_argument("--checks", action="store_true", help="the model card's checks too (slow)")
    p.add_argument("--json", default=None, help="write the result here")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    precisions = args.precisions.split(",")
    if precisions[0] != "fp32":
        raise SystemExit("--precisions: fp32 first (the reference)")
    start = time.perf_counter()
    loaded = models(precisions)
    rows = speed(loaded, args.rounds, args.region, args.repeat)
    print(table(rows, list(rows[0])))
    result = header() | {"benchmark": "precision", "threads": args.threads,
                         "region": args.region, "rounds": args.rounds, "speed": rows}
    if not args.no_accuracy:
        result["accuracy"] = [accuracy(q, loaded, args.scenes) for q in precisions[1:]]
        print(table(result["accuracy"], list(result["accuracy"][0])) if precisions[1:] else "")
    if args.checks:
        result["checks"] = {q: checks(q) for q in precisions if q != "int8"}
        for name in result["checks"]["fp32"]:
            print(name, {q: c[name] for q, c in result["checks"].items()})
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
