"""Model throughput: U-Net Mpx/s, and the fraction of this machine's measured matmul peak.

    python benchmarks/model_throughput.py --json benchmarks/results/model.json

Per round (``--rounds``, interleaved so slow drifts of a shared machine hit everything alike):

* the peak: best of ``--peak-repeat`` ``torch.mm`` of two ``--peak-n`` square fp32 matrices
  (bf16/fp16 too on CUDA), same thread count as the model;
* every variant (``--variants``) at every batch size (``--batch``): best of ``--repeat`` forward
  passes of ``batch`` windows of ``--window`` px; Mpx/s of network input, GFLOP/s from the FLOPs
  per pixel (``torch.utils.flop_counter.FlopCounterMode``: convolutions, 2 FLOPs per MAC), and
  that over the round's peak;
* the production path: :func:`basemap.render.unet.colorize_array` on a ``--region`` px square
  (windows on the global grid, input prep, tapered blend, uint8), Mpx/s of blended output.

Reported: medians over rounds. A variant's output is checked against the plain eager model
(max abs difference in 8-bit units). Weights: ``--weights``, else the shipped default, else a
random initialisation of the default architecture (speed does not depend on the values).
CUDA variants run when a GPU is visible (``--device auto``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, header, median, table, write_json  # noqa: E402

CPU_VARIANTS = ("eager", "eager_cl", "fold_cl", "jit_cl", "compile_cl", "ort", "bf16_cl")
CUDA_VARIANTS = ("cuda_fp32_cl", "cuda_bf16_cl", "cuda_fp16_cl", "cuda_bf16_graph", "cuda_compile")
#: Variants that are not fp32 (reported, but not compared with the fp32 peak).
LOW_PRECISION = {"bf16_cl", "cuda_bf16_cl", "cuda_fp16_cl", "cuda_bf16_graph", "cuda_compile"}


def load_net(weights: str | None):
    """(net in eval mode, description of the weights)."""
    from basemap.model.unet import ResUNet, UNetConfig
    from basemap.model.weights import DEFAULT_WEIGHTS, load_weights

    path = Path(weights) if weights else DEFAULT_WEIGHTS
    if path.is_file():
        net, _, _ = load_weights(path)
        return net.eval(), str(path)
    if weights:
        raise SystemExit(f"{weights}: no such weights file")
    import torch

    torch.manual_seed(0)
    net = ResUNet(UNetConfig()).eval()
    for m in net.modules():  # non-trivial batch-norm statistics, as in trained weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net, "random init of UNetConfig() (default weights not found)"


def flops_per_pixel(net, window: int) -> float:
    """Forward FLOPs per input pixel (FlopCounterMode, one window)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.zeros(1, 3, window, window))
    return counter.get_total_flops() / window**2


def make_runner(name: str, net, window: int, batch: int):
    """A callable ``f(x)`` for variant ``name`` taking a (batch, 3, window, window) tensor, and
    the input's memory format; None when the variant is not available here."""
    import torch
    from basemap.model.unet import fold_batchnorm

    cl = torch.channels_last
    if name == "eager":
        return net, torch.contiguous_format
    if name == "eager_cl":
        return copy.deepcopy(net).to(memory_format=cl), cl
    if name == "fold_cl":
        return fold_batchnorm(net).to(memory_format=cl), cl
    if name == "bf16_cl":
        folded = fold_batchnorm(net).to(memory_format=cl)

        def run_bf16(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return folded(x).float()

        return run_bf16, cl
    if name == "jit_cl":
        folded = fold_batchnorm(net).to(memory_format=cl)
        example = torch.rand(batch, 3, window, window).contiguous(memory_format=cl)
        with torch.inference_mode():
            traced = torch.jit.trace(folded, example, check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced)), cl
    if name == "compile_cl":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        return torch.compile(fold_batchnorm(net).to(memory_format=cl)), cl
    if name == "ort":
        return _ort_runner(net, window, batch), torch.contiguous_format
    if name.startswith("cuda"):
        return _cuda_runner(name, net, window, batch)
    raise ValueError(f"unknown variant {name}")


def _ort_runner(net, window: int, batch: int):
    """The production ONNX Runtime session (basemap.render.inference.onnx_session)."""
    import torch
    from basemap.model.unet import Normalization

    from basemap.render.inference import onnx_session, prepare_net

    session = onnx_session(prepare_net(net, "cpu"), Normalization(), torch.get_num_threads())
    if session is None:
        return None

    def run(x):  # the graph takes reflectance (normalisation inside, counted in its time)
        return torch.from_numpy(session.run(["y"], {"x": x.numpy()})[0]) / 255.0

    return run


def _cuda_runner(name: str, net, window: int, batch: int):
    import torch
    from basemap.model.unet import fold_batchnorm

    cl = torch.channels_last
    gpu = fold_batchnorm(net).to("cuda", memory_format=cl)
    dtype = {"cuda_fp32_cl": None, "cuda_fp16_cl": torch.float16}.get(name, torch.bfloat16)

    def run(x):
        x = x.to("cuda", non_blocking=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            y = gpu(x)
        torch.cuda.synchronize()
        return y

    if name == "cuda_compile":
        compiled = torch.compile(gpu, mode="max-autotune")

        def run(x):  # noqa: F811
            with torch.autocast("cuda", dtype=dtype):
                y = compiled(x.to("cuda", non_blocking=True))
            torch.cuda.synchronize()
            return y

    if name == "cuda_bf16_graph":
        static_x = torch.zeros(batch, 3, window, window, device="cuda").contiguous(memory_format=cl)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                with torch.autocast("cuda", dtype=dtype):
                    gpu(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph), torch.autocast("cuda", dtype=dtype):
            static_y = gpu(static_x)

        def run(x):  # noqa: F811
            static_x.copy_(x, non_blocking=True)
            graph.replay()
            torch.cuda.synchronize()
            return static_y

    return run, cl


def peak_gflops(n: int, repeat: int, device: str, dtype_name: str = "float32") -> float:
    """Best-of-``repeat`` GFLOP/s of ``torch.mm`` on two n x n matrices."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.rand(n, n, device=device, dtype=dtype)
    b = torch.rand(n, n, device=device, dtype=dtype)

    def mm():
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    mm()
    return 2.0 * n**3 / best_time(mm, repeat) / 1e9


def production_model(net_desc: str, net, backend: str):
    """A :class:`basemap.render.inference.LoadedModel` as ``load_model`` makes it on CPU."""
    import torch
    from basemap.model.unet import Normalization

    from basemap.render.inference import LoadedModel, onnx_session, prepare_net

    prepared = prepare_net(net, "cpu")
    norm = Normalization()
    session = onnx_session(prepared, norm, torch.get_num_threads()) if backend == "onnx" else None
    return LoadedModel(net_desc, "", "cpu", prepared, norm, session=session)


def ort_peak_gflops(n: int, repeat: int) -> float | None:
    """Best-of-``repeat`` GFLOP/s of ONNX Runtime's MatMul (MLAS) on n x n fp32, or None.

    torch.mm runs Intel MKL, which on AMD CPUs may take a narrower code path than the hardware
    allows; MLAS uses the CPU's widest FMA units, so this is the better measure of the peak."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    import torch

    spec = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {k: rng.random((n, n), dtype=np.float32) for k in "ab"}
    session.run(None, feed)
    return 2.0 * n**3 / best_time(lambda: session.run(None, feed), repeat) / 1e9


def blended_mpx_s(model, region: int, window: int, overlap: int, batch: int,
                  repeat: int) -> tuple[float, int]:
    """Mpx/s of blended uint8 output of the production path on a ``region`` px square, and
    the number of windows it ran."""
    from basemap.grid import Region
    from basemap.render.windows import WindowGrid

    grid = WindowGrid(window, overlap)
    x0 = y0 = 10 * grid.stride  # a region starting on a window: the interior case
    bounds = Region(x0, y0, x0 + region, y0 + region)
    need = grid.input_region(bounds)
    rng = np.random.default_rng(0)
    h, w = need.height, need.width
    refl = rng.uniform(0.0, 0.4, (3, h, w)).astype(np.float32)
    valid = np.ones((h, w), bool)
    from basemap.render.unet import colorize_array

    def run():
        colorize_array(refl, valid, (need.x0, need.y0), bounds, model, window, overlap,
                       batch_size=batch)

    run()
    windows = sum(1 for _ in grid.windows(bounds))
    return region**2 / best_time(run, repeat) / 1e6, windows


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch", default="1,2,4", help="comma-separated batch sizes")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated, of {CPU_VARIANTS + CUDA_VARIANTS}")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3, help="timed calls per measurement (best)")
    p.add_argument("--peak-n", type=int, default=4096)
    p.add_argument("--peak-repeat", type=int, default=5)
    p.add_argument("--region", type=int, default=1792, help="side of the blended region (0: skip)")
    p.add_argument("--blend-batch", type=int, default=4, help="batch of the blended path")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--weights", default=None)
    p.add_argument("--json", default=None, help="write the result here")
    args = p.parse_args(argv)

    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(args.threads or cores)
    torch.set_flush_denormal(True)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    variants = (args.variants.split(",") if args.variants else
                list(CUDA_VARIANTS if device == "cuda" else CPU_VARIANTS[:5] + ("ort",)))
    variants = list(dict.fromkeys(variants))
    batches = [int(b) for b in args.batch.split(",")]
    net, desc = load_net(args.weights)
    fpp = flops_per_pixel(net, args.window)
    w = args.window

    x_ref = torch.rand(1, 3, w, w)
    with torch.inference_mode():
        y_ref = net(x_ref)
        from basemap.model.unet import Normalization

        y_ref_refl = net(Normalization().apply(x_ref))  # variants that take reflectance
    runners, diffs, skipped = {}, {}, {}
    backend = "onnx" if "ort" in variants else "torch"
    production = production_model(desc, net, backend) if device == "cpu" else None
    for name in variants:
        for b in batches:
            made = make_runner(name, net, w, b)
            if made is None or made[0] is None:
                skipped[name] = "not available here (package missing)"
                break
            runners[(name, b)] = made
        if name in skipped:
            continue
        f, fmt = runners[(name, batches[0])]
        x = x_ref.repeat(batches[0], 1, 1, 1).contiguous(memory_format=fmt)
        with torch.inference_mode():
            y = f(x)
        ref = y_ref_refl if name == "ort" else y_ref
        diffs[name] = float(255.0 * (y[:1].float().cpu() - ref).abs().max())

    peak_dtypes = ["float32"] + (["bfloat16", "float16"] if device == "cuda" else [])
    peaks = {d: [] for d in peak_dtypes}
    if device == "cpu":
        peaks["float32_ort_matmul"] = []
    speed = {k: [] for k in runners}
    frac = {k: [] for k in runners}
    frac_machine = {k: [] for k in runners}
    blended, blend_overhead = [], []
    inputs = {}
    for _ in range(args.rounds):
        for d in peak_dtypes:
            peaks[d].append(peak_gflops(args.peak_n, args.peak_repeat, device, d))
        if "float32_ort_matmul" in peaks:
            ort_peak = ort_peak_gflops(args.peak_n, args.peak_repeat)
            if ort_peak is None:
                del peaks["float32_ort_matmul"]
            else:
                peaks["float32_ort_matmul"].append(ort_peak)
        machine_peak = max(v[-1] for k, v in peaks.items() if k.startswith("float32"))
        for (name, b), (f, fmt) in runners.items():
            key = (b, fmt)
            if key not in inputs:
                inputs[key] = torch.rand(b, 3, w, w).contiguous(memory_format=fmt)
            x = inputs[key]
            with torch.inference_mode():
                f(x)  # warm-up (and compilation in round 0)
                t = best_time(lambda f=f, x=x: f(x), args.repeat)
            speed[(name, b)].append(b * w * w / t / 1e6)
            frac[(name, b)].append(fpp * b * w * w / t / 1e9 / peaks["float32"][-1])
            frac_machine[(name, b)].append(fpp * b * w * w / t / 1e9 / machine_peak)
        if args.region and device == "cpu":
            mpx, nwin = blended_mpx_s(production, args.region, w, args.overlap,
                                      args.blend_batch, args.repeat)
            blended.append(mpx)
            ref = speed.get(("ort" if backend == "onnx" else "fold_cl", args.blend_batch))
            if ref:  # time of the whole path over the time of the network on its windows
                model_s = nwin * w * w / 1e6 / ref[-1]
                blend_overhead.append(args.region**2 / 1e6 / mpx / model_s)

    rows = []
    for (name, b), v in speed.items():
        mpx = median(v)
        rows.append({
            "variant": name, "batch": b, "input_mpx_s": round(mpx, 4),
            "gflop_s": round(mpx * fpp / 1e3, 2),
            "fraction_of_torch_mm_peak": round(median(frac[(name, b)]), 4),
            "fraction_of_fp32_peak": round(median(frac_machine[(name, b)]), 4),
            "max_abs_diff_8bit": round(diffs[name], 4),
            "precision": "bf16/fp16" if name in LOW_PRECISION else "fp32",
        })
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    best = max(fp32 or rows, key=lambda r: r["input_mpx_s"])
    stride = w - args.overlap
    result = header() | {
        "benchmark": "model_throughput",
        "device": device,
        "threads": torch.get_num_threads(),
        "weights": desc,
        "window": w,
        "overlap": args.overlap,
        "overlap_cost": round((w / stride) ** 2, 4),
        "flops_per_pixel": fpp,
        "peak_gflop_s": {d: round(median(v), 2) for d, v in peaks.items()},
        "peak_note": "fraction_of_fp32_peak is over the best fp32 matmul measured in the round "
                     "(torch.mm or ONNX Runtime MatMul); fraction_of_torch_mm_peak over torch.mm",
        "peak_gflop_s_rounds": {d: [round(x, 1) for x in v] for d, v in peaks.items()},
        "rounds": args.rounds,
        "variants": rows,
        "skipped": skipped,
        "best": best,
        "best_output_mpx_s_ideal": round(best["input_mpx_s"] * (stride / w) ** 2, 4),
    }
    if blended:
        result["blended"] = {"region": args.region, "windows": nwin, "backend": backend,
                             "batch": args.blend_batch,
                             "output_mpx_s": round(median(blended), 4),
                             "window_cost": round(nwin * w * w / args.region**2, 4),
                             "overhead_vs_network": round(median(blend_overhead), 4)}
        if blend_overhead:  # an endless region: overlap cost and blend overhead only
            result["output_mpx_s_steady"] = round(
                result["best_output_mpx_s_ideal"] / median(blend_overhead), 4)
    if device == "cuda":
        result["world_z14_estimate"] = world_estimate(best["input_mpx_s"], args.window, stride)
    print(table(rows, ["variant", "batch", "input_mpx_s", "gflop_s", "fraction_of_torch_mm_peak",
                       "fraction_of_fp32_peak",
                       "max_abs_diff_8bit", "precision"]))
    print(f"peak GFLOP/s (median of {args.rounds}): {result['peak_gflop_s']}; "
          f"FLOPs/px {fpp:.0f}; best {best['variant']} x{best['batch']}: "
          f"{best['fraction_of_fp32_peak']:.0%} of peak")
    if blended:
        print(f"blended output: {result['blended']}")
    write_json(result, args.json)
    return result


#: Land area of the world between the Web Mercator latitude limits covered by Sentinel-2, km2
#: (about 149e6 km2 of land, less Antarctica's interior beyond S2 coverage).
LAND_KM2 = 1.35e8


def world_estimate(input_mpx_s: float, window: int, stride: int) -> dict:
    """Hours of GPU time for the world's land at z14, from a measured network input rate.

    At z14 a pixel is 9.55 m at the equator and ~6.75 m at 45 degrees; we take 7.5 m on average
    over land: 1.35e8 km2 -> 2.4e12 output pixels, times the overlap cost.
    """
    px = LAND_KM2 * 1e6 / 7.5**2
    cost = (window / stride) ** 2
    hours = px * cost / (input_mpx_s * 1e6) / 3600
    return {"output_pixels": px, "overlap_cost": cost, "gpu_hours": round(hours, 1)}


if __name__ == "__main__":
    main()
