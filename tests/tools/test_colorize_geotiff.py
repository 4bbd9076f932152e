"""Windowed inference: partition invariance, skipped windows, overlap agreement, COG output,
weights errors."""

from dataclasses import dataclass, fields

import numpy as np
import pytest
import rasterio
import torch
from basemap.model.unet import Normalization, ResUNet, UNetConfig
from basemap.model.weights import save_weights

from basemap.errors import WeightsError
from basemap.grid import Region
from basemap.render.inference import (
    CPU_BATCH,
    GPU_BATCH_MAX,
    GPU_MEMORY_SHARE,
    LoadedModel,
    device_batch,
    load_model,
)
from basemap.render.unet import colorize_array, window_outputs
from basemap.render.windows import WindowGrid
from basemap.tools.colorize_geotiff import colorize_file

TINY = UNetConfig(base=4, levels=3, tone_prior=False)
RKH = "tests/data/real-s2/29RKH"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    net = ResUNet(TINY)
    # Non-trivial BatchNorm running statistics, as after training.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    return save_weights(path, net.eval(), Normalization())


def _scene(rng, bounds: Region):
    x0, y0, x1, y1 = bounds.x0, bounds.y0, bounds.x1, bounds.y1
    refl = rng.random((3, y1 - y0, x1 - x0), dtype=np.float32) * 0.4
    valid = np.ones((y1 - y0, x1 - x0), bool)
    valid[:20, :30] = False
    refl[:, ~valid] = 0
    return refl, valid


def test_partition_invariance_is_exact(tiny_weights):
    """A U B computed at once == A and B computed separately, byte for byte."""
    model = load_model(tiny_weights, device="cpu")
    grid = WindowGrid(64, 16)
    union = Region(-37, 11, 150, 140)
    a, b = Region(-37, 11, 61, 140), Region(61, 11, 150, 140)
    big = grid.input_region(union)
    refl, valid = _scene(np.random.default_rng(0), big)
    kw = dict(window=64, overlap=16, batch_size=3)
    whole = colorize_array(refl, valid, (big.x0, big.y0), union, model, **kw)

    def part(bounds):
        ib = grid.input_region(bounds)
        sub = ib.slices((big.x0, big.y0))
        return colorize_array(refl[(slice(None), *sub)], valid[sub], (ib.x0, ib.y0), bounds,
                              model, **{**kw, "batch_size": 2})

    joined = np.concatenate([part(a), part(b)], axis=2)
    assert joined.shape == whole.shape == (3, 129, 187)
    np.testing.assert_array_equal(joined, whole)


@dataclass(frozen=True)
class CountingModel(LoadedModel):
    """The real model, counting the windows it is asked to run."""

    calls: list = None

    def predict(self, reflectance):
        self.calls.append(len(reflectance))
        return super().predict(reflectance)

    @classmethod
    def of(cls, model: LoadedModel) -> "CountingModel":
        return cls(**{f.name: getattr(model, f.name) for f in fields(model)}, calls=[])


def test_windows_without_valid_pixels_are_not_run(tiny_weights):
    m = load_model(tiny_weights, device="cpu")
    counting = CountingModel.of(m)
    grid = WindowGrid(64, 16)
    region = Region(0, 0, 200, 200)
    ib = grid.input_region(region)
    refl, valid = _scene(np.random.default_rng(1), ib)
    valid[:] = False
    valid[100:110, 100:110] = True  # touches only the windows at x, y in {48, 96}
    out = colorize_array(refl, valid, (ib.x0, ib.y0), region, counting, window=64, overlap=16)
    assert sum(counting.calls) == 4
    assert out[:, ~valid[-ib.y0 :, -ib.x0 :][:200, :200]].max() == 0


def test_prefetched_batches_give_the_same_outputs_in_the_same_order(tiny_weights):
    """The GPU path's prefetch (the next batch gap-filled on a thread while the current one
    runs, two buffers in turn) changes no output and no order, for any batch size."""
    m = load_model(tiny_weights, device="cpu")
    counting = CountingModel.of(m)
    grid = WindowGrid(64, 16)
    bounds = Region(0, 0, 230, 170)
    ib = grid.input_region(bounds)
    refl, valid = _scene(np.random.default_rng(3), ib)
    windows = list(grid.windows(bounds))
    plain = window_outputs(refl, valid, (ib.x0, ib.y0), windows, m, grid, batch_size=3,
                           prefetch=False)
    for batch in (1, 3, 5):
        counting.calls.clear()
        ahead = window_outputs(refl, valid, (ib.x0, ib.y0), windows, counting, grid,
                               batch_size=batch,
                               prefetch=True)  # fmt: skip
        assert list(ahead) == list(plain)
        assert counting.calls == [min(batch, len(plain) - i) for i in range(0, len(plain), batch)]
        for w, out in plain.items():
            np.testing.assert_allclose(ahead[w], out, atol=1e-3)  # batch-independent (ORT)


def test_device_batch_fits_the_free_memory_share():
    """GPU batches: as many windows as fit in GPU_MEMORY_SHARE of the free memory, 1..max."""
    gib = 1 << 30
    assert device_batch(80 * gib, gib) == int(80 * GPU_MEMORY_SHARE)
    assert device_batch(10 * gib, 3 * gib) == 1  # less than one window fits: still one
    assert device_batch(0, gib) == 1
    assert device_batch(1000 * gib, gib // 4) == GPU_BATCH_MAX
    assert load_model(None, device="cpu").batch_size(512) == CPU_BATCH


def test_model_is_loaded_once_per_process(tiny_weights):
    assert load_model(tiny_weights, device="cpu") is load_model(tiny_weights, device="cpu")


def test_overlapping_windows_blend_without_a_visible_step():
    """Window-locality of the shipped model on real data (invariant 3): two neighbouring 512-px
    windows differ where they overlap only by what their own edges see (measured with the
    shipped model: mean 0.5-1.4 DN, at most 8 DN), and the sin^2 taper turns that into a
    ramp: the step the blend adds between neighbouring pixels, |dw| * |a - b|, stays under
    0.5 DN (8-bit quantisation), so blending hides nothing a viewer could see."""
    model = load_model(None, device="cpu")
    with rasterio.open(f"{RKH}/B04.tif") as r, rasterio.open(f"{RKH}/B03.tif") as g, \
            rasterio.open(f"{RKH}/B02.tif") as b:
        dn = np.stack([d.read(1, window=((100, 612), (100, 1060))) for d in (r, g, b)])
    refl = dn.astype(np.float32) / 10000
    left, right = model.predict(np.stack([refl[:, :, :512], refl[:, :, 448:960]]))
    grid = WindowGrid(512, 64)
    diff = np.abs(left[:, 64:-64, 448:] - right[:, 64:-64, :64])  # rows away from the window
    # tops and bottoms, where the vertical taper is ~0 anyway
    assert diff.mean() <= 2.0 and np.percentile(diff, 99) <= 8.0, (diff.mean(), diff.max())
    w = grid.ramp()[:64]  # the right window's rising weight across the overlap
    added_step = np.abs(np.diff(w))[None, None, :] * diff[:, :, 1:]
    assert added_step.max() <= 0.5, added_step.max()


def test_corrupt_and_mismatched_weights_give_clear_errors(tmp_path, tiny_weights):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(tiny_weights.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="cannot read model weights .*corrupt.pt"):
        load_model(bad)
    bare = tmp_path / "bare.pt"
    torch.save(ResUNet(TINY).state_dict(), bare)
    with pytest.raises(WeightsError, match="bare.pt is not a basemap U-Net weights file"):
        load_model(bare)
    other = tmp_path / "other.pt"
    payload = torch.load(tiny_weights, weights_only=True)
    payload["arch"] = {**payload["arch"], "base": 8}  # declares another architecture
    torch.save(payload, other)
    with pytest.raises(WeightsError, match=r"other.pt: the tensors do not match .*base=8"):
        load_model(other)
    with pytest.raises(WeightsError, match="not found: .*missing.pt"):
        load_model(tmp_path / "missing.pt")


def test_colorize_real_29rkh_writes_a_valid_cog(tmp_path):
    from rio_cogeo.cogeo import cog_validate

    from basemap.colour import clipped_pct

    src = tmp_path / "rgb.tif"
    with rasterio.open(f"{RKH}/B04.tif") as ds:
        profile = ds.profile | {"count": 3}
        bands = [ds.read(1)] + [rasterio.open(f"{RKH}/{b}.tif").read(1) for b in ("B03", "B02")]
    with rasterio.open(src, "w", **profile) as ds:
        ds.write(np.stack(bands))
    dst = tmp_path / "out.tif"
    colorize_file(src, dst)
    ok, errors, _ = cog_validate(str(dst))
    assert ok, errors
    with rasterio.open(dst) as ds, rasterio.open(src) as s:
        assert ds.crs == s.crs and ds.transform == s.transform and ds.count == 3
        assert ds.dtypes[0] == "uint8"
        rgb, mask = ds.read(), ds.dataset_mask() > 0
        assert ds.overviews(1), "internal overviews"
    valid = np.all(np.stack(bands) > 0, axis=0)
    np.testing.assert_array_equal(mask, valid)
    # A bright desert: the fixed linear TCI saturates 96% of red; the model must keep < 1%.
    assert clipped_pct(rgb, valid) < 1.0


# ---- issue 13: any readable raster of any size -> a valid COG, or exit 2 -------------------------


def _rgb_geotiff(path, height, width, tiled=False):
    """A plain (strip-organised unless `tiled`) 3-band uint16 GeoTIFF, as users have them."""
    from affine import Affine

    data = np.random.default_rng(height * 7919 + width).integers(1, 4000, (3, height, width))
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3,
               "dtype": "uint16", "crs": "EPSG:32632", "tiled": tiled,
               "transform": Affine(10, 0, 300000, 0, -10, 5000000)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(np.uint16))
    return path


def _colorize_valid(tmp_path, height, width):
    from rio_cogeo.cogeo import cog_validate

    src = _rgb_geotiff(tmp_path / f"in-{height}x{width}.tif", height, width)
    dst = tmp_path / f"out-{height}x{width}.tif"
    colorize_file(src, dst, renderer="linear")
    ok, errors, _ = cog_validate(str(dst), quiet=True)
    assert ok, (height, width, errors)
    with rasterio.open(dst) as ds:
        assert (ds.height, ds.width, ds.count) == (height, width, 3)


@pytest.mark.parametrize("height, width", [(856, 512), (512, 856), (2000, 512), (1, 1)])
def test_untiled_rgb_of_any_shape_gives_a_valid_cog(tmp_path, height, width):
    """Issue 13: an 856-row x 512-column untiled RGB GeoTIFF failed with rio-cogeo's "The file
    is greater than 512xH or 512xW, but is not tiled" (512-px tiles as wide as the image)."""
    _colorize_valid(tmp_path, height, width)


def test_cog_blocksize_never_equals_a_level_width_over_512():
    from basemap.output.cog import cog_blocksize

    assert cog_blocksize(4096, 4096) == 512
    assert cog_blocksize(512, 856) == 256
    for w, h in [(512, 2000), (256, 5000), (1024, 3000), (5, 9000)]:
        assert cog_blocksize(w, h) in (512, 256, 1024, 128)


def test_colorize_of_a_non_raster_exits_2(tmp_path, monkeypatch, capsys):
    """Issue 13: `basemap colorize /etc/passwd out.tif` ended in a traceback."""
    from tests.support.cli_runner import run_cli

    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, out, err = run_cli(["colorize", str(text), str(tmp_path / "out.tif"), "--renderer",
                              "linear"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in out + err
    assert str(text) in err and "not a raster GDAL can read" in err


def test_colorize_of_any_size_is_a_valid_cog(tmp_path_factory):
    """Property: every size, odd, prime, 1 px wide or tall, around the tile sizes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    sizes = st.one_of(st.integers(1, 40), st.integers(250, 260), st.integers(500, 520),
                      st.integers(1020, 1030), st.sampled_from([1, 2, 3, 97, 131, 257, 1031]))

    @settings(max_examples=12, deadline=None, database=None)
    @given(height=sizes, width=sizes)
    def check(height, width):
        _colorize_valid(tmp_path_factory.mktemp("cz"), height, width)

    check()


# ---- band selection: multi-band stacks as users export them -------------------------------------


def _stack(path, names):
    """The 29RKH bands `names`, in that order, as one GeoTIFF."""
    with rasterio.open(f"{RKH}/B04.tif") as ds:
        profile = ds.profile | {"count": len(names)}
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.stack([rasterio.open(f"{RKH}/{n}.tif").read(1) for n in names]))
    return path


def test_bands_pick_red_green_blue_from_a_stack(tmp_path, monkeypatch, capsys):
    """A B02,B03,B04,B08 stack with --bands 3,2,1 renders exactly as the B04,B03,B02 file."""
    from tests.support.cli_runner import run_cli

    rgb = _stack(tmp_path / "rgb.tif", ["B04", "B03", "B02"])
    bgrn = _stack(tmp_path / "bgrn.tif", ["B02", "B03", "B04", "B08"])
    outs = {}
    for name, src, extra in (("rgb", rgb, []), ("bgrn", bgrn, ["--bands", "3,2,1"]),
                             ("asis", bgrn, [])):  # fmt: skip
        outs[name] = tmp_path / f"{name}-out.tif"
        code, _, err = run_cli(["colorize", str(src), str(outs[name]), "--renderer",
                                "sh-l2a-optimized", *extra], monkeypatch, capsys)  # fmt: skip
        assert code == 0, err
    read = {k: rasterio.open(v).read() for k, v in outs.items()}
    np.testing.assert_array_equal(read["bgrn"], read["rgb"])
    # Without --bands the first three bands are taken as R, G, B: blue as red, a visible swap.
    assert np.abs(read["asis"].astype(int) - read["rgb"]).mean() > 5


@pytest.mark.parametrize("bands, says", [("2,3,5", "pass --bands R,G,B"),
                                         ("1,2", "three 1-based band indexes"),
                                         ("0,1,2", "three 1-based band indexes"),
                                         ("r,g,b", "three 1-based band indexes")])  # fmt: skip
def test_bad_bands_exit_2_saying_the_fix(tmp_path, monkeypatch, capsys, bands, says):
    from tests.support.cli_runner import run_cli

    src = _stack(tmp_path / "bgrn.tif", ["B02", "B03", "B04", "B08"])
    dst = tmp_path / "out.tif"
    code, out, err = run_cli(["colorize", str(src), str(dst), "--renderer", "linear",
                              "--bands", bands], monkeypatch, capsys)  # fmt: skip
    assert code == 2 and "Traceback" not in out + err
    assert says in out + err and not dst.exists()


# ---- safe by default: colorize never overwrites its input; a bad --model stops the preflight ----


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_colorize_refuses_to_write_over_its_input(tmp_path, monkeypatch, capsys, spelling):
    """Issue row 12: `basemap colorize X X` overwrote X, exit 0. Now exit 2, X unchanged, under
    any spelling of the same file."""
    from tests.support.cli_runner import run_cli

    src = _rgb_geotiff(tmp_path / "in.tif", 64, 64)
    before = src.read_bytes()
    dst = {"same": src, "dot": tmp_path / "." / "sub" / ".." / "in.tif",
           "symlink": tmp_path / "link.tif", "hardlink": tmp_path / "hard.tif"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        dst.symlink_to(src)
    elif spelling == "hardlink":
        dst.hardlink_to(src)
    code, out, err = run_cli(["colorize", str(src), str(dst), "--renderer", "linear"],
                             monkeypatch, capsys)
    assert code == 2 and "is the input" in err and "Traceback" not in out + err, err
    assert src.read_bytes() == before


@pytest.mark.parametrize("weights", ["text", "state_dict"])
def test_build_with_bad_weights_exits_2_before_any_search_or_block(synth_world, tmp_path,
                                                                   monkeypatch, capsys,
                                                                   weights):
    """Issue row 13: `--model /etc/passwd` failed every block (exit 3, "rerun to retry"). Now
    the preflight loads the weights once (names and shapes checked): exit 2 naming the file,
    before any search (the output is not even created) or block."""
    from basemap.synth.tiles import world_bbox
    from tests.support.cli_runner import run_cli

    model = tmp_path / "model.pt"
    if weights == "text":
        model.write_text("root:x:0:0:root:/root:/bin/bash\n")
    else:
        torch.save(ResUNet(TINY).state_dict(), model)  # a bare state_dict
    b = world_bbox("test")
    out = tmp_path / "out"
    code, _, err = run_cli(["build", "--bbox", f"{b.west},{b.south},{b.east},{b.north}",
                            "--zoom", "12-14", "--out", str(out), "--stac", str(synth_world),
                            "--renderer", "unet", "--model", str(model), "--block-size", "512",
                            "--workers", "0", "--quiet"], monkeypatch, capsys)
    assert code == 2, err
    assert str(model) in err and ("cannot read model weights" in err
                                  or "is not a basemap U-Net weights file" in err), err
    assert not out.exists()


class RecordingProgress:
    """A progress observer that records what the engine reports."""

    def __init__(self):
        self.stages: list[list] = []

    def stage(self, name, total, unit):
        record = [name, total, unit, 0, False]
        self.stages.append(record)

        class Stage:
            def advance(self, n=1):
                record[3] += n

            def close(self):
                record[4] = True

        return Stage()


def test_progress_goes_to_the_observer_passed_in(tmp_path):
    """The engine reports its stages to the observer it is given (the CLI's bars, or silence):
    one stage of regions, every region advanced, the stage closed."""
    src = _rgb_geotiff(tmp_path / "in.tif", 2000, 512)
    seen = RecordingProgress()
    colorize_file(src, tmp_path / "out.tif", renderer="linear", chunk=512, progress=seen)
    assert seen.stages == [["colorize (linear)", 4, "region", 4, True]]
