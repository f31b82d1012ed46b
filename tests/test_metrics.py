"""SWD metric (PGGAN protocol), `stylegan metrics` and `stylegan plot`.

The metric is checked against facts that do not depend on this implementation: the pyramid against scipy's
'mirror' convolution (the reference's pyr_down/pyr_up), 1-D Wasserstein distances known in closed form, descriptors
against a direct per-pixel extraction, and the behaviour a distance must have (0 on identical sets, symmetric,
small between two samples of one distribution, large against noise).
"""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan import metrics as M


def shapes(n: int, res: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [n, 3, res, res]: anti-aliased discs of random colour, position and size on a random linear gradient
    (structure at every scale, so every pyramid level has something to compare)."""
    rng = np.random.default_rng(seed)
    t = (np.arange(res) + 0.5) / res
    yy, xx = np.meshgrid(t, t, indexing="ij")
    out = np.empty((n, 3, res, res), np.uint8)
    for i in range(n):
        c0, c1, cf = rng.uniform(0, 255, (3, 3))
        ang = rng.uniform(0, 2 * np.pi)
        g = np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5) + 0.5
        img = c0[:, None, None] * (1 - g) + c1[:, None, None] * g
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.12, 0.3)
        a = np.clip((r - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)) * res + 0.5, 0, 1)
        out[i] = np.clip(np.round(img * (1 - a) + cf[:, None, None] * a), 0, 255)
    return out


@pytest.fixture(scope="module")
def sets():
    """256 + 256 disjoint samples of one distribution, noise, and a blurred copy of the second sample (32 px)."""
    a, b = shapes(256, 32, seed=0), shapes(256, 32, seed=1)
    noise = np.random.default_rng(5).integers(0, 256, a.shape, dtype=np.uint8)
    t = torch.from_numpy(b).float()
    blurred = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(t, 2), scale_factor=2.0, mode="nearest")
    return {"a": a, "b": b, "noise": noise, "blurred": blurred.round().to(torch.uint8).numpy()}


# ---------------------------------------------------------------------------------------------------------------
# Building blocks.

def test_pyramid_matches_scipy_mirror_convolution():
    nd = pytest.importorskip("scipy.ndimage")
    g = np.float32([[1, 4, 6, 4, 1]])
    kernel = (g.T @ g)[None, None] / 256.0
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    down = M.pyr_down(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(down, nd.convolve(x, kernel, mode="mirror")[:, :, ::2, ::2], atol=1e-3)
    zero_inserted = np.zeros((2, 3, 32, 32), np.float32)
    zero_inserted[:, :, ::2, ::2] = down
    np.testing.assert_allclose(M.pyr_up(torch.from_numpy(down)).numpy(),
                               nd.convolve(zero_inserted, kernel * 4, mode="mirror"), atol=1e-3)


def test_laplacian_pyramid_reconstructs_and_has_protocol_levels():
    x = torch.from_numpy(shapes(3, 64, seed=2)).float()
    levels = M.laplacian_pyramid(x, 3)
    assert [tuple(l.shape[-2:]) for l in levels] == [(64, 64), (32, 32), (16, 16)]
    rec = levels[-1]
    for level in levels[-2::-1]:
        rec = M.pyr_up(rec) + level
    assert torch.allclose(rec, x, atol=1e-3)
    assert levels[0].abs().mean() < 0.2 * x.abs().mean()  # band-pass levels hold detail only
    assert M.swd_resolutions(256) == [256, 128, 64, 32, 16]
    assert M.swd_resolutions(16) == [16]
    assert M.swd_resolutions(48) == [48, 24]
    assert M.swd_resolutions(8, min_resolution=8) == [8]


def test_sliced_wasserstein_equals_one_dimensional_w1():
    # 1-D descriptors: every unit direction is +-1, and W1 of two equal-size samples is mean|sorted a - sorted b|.
    a = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    b = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    expected = (1 + 1 + 1 + 6) / 4
    assert M.sliced_wasserstein(a, b, 3, 5, torch.Generator().manual_seed(0)) == pytest.approx(expected)
    # A shift by v in 2-D: W1 along direction d is |d.v|, so the mean over many directions is |v| E|cos| = 2|v|/pi.
    x = torch.randn(4096, 2, generator=torch.Generator().manual_seed(1))
    value = M.sliced_wasserstein(x, x + torch.tensor([3.0, 4.0]), 4, 2048, torch.Generator().manual_seed(2))
    assert value == pytest.approx(5 * 2 / np.pi, rel=0.02)
    with pytest.raises(ValueError, match=r"equal shape"):
        M.sliced_wasserstein(a, b[:3])


def test_descriptors_are_normalised_patches_of_the_laplacian_levels():
    imgs = shapes(5, 32, seed=3)
    builder = M.DescriptorBuilder(5, 32, 3, seed=7, nhoods_per_image=4)
    centres = [c.clone() for c in builder._centres]
    for i in (0, 2):  # batch size must not matter
        builder.add(imgs[i:i + 2 + (i == 2)])
    dset = builder.finish()
    levels = M.laplacian_pyramid(torch.from_numpy(imgs).float(), 2)
    for level, cen, desc in zip(levels, centres, dset.descriptors):
        assert int(cen.min()) >= 3 and int(cen.max()) <= level.shape[-1] - 4
        raw = torch.stack([level[i, :, y - 3:y + 4, x - 3:x + 4].reshape(-1)
                           for i in range(5) for y, x in cen[i].tolist()])
        per_channel = raw.view(-1, 3, 49).double()
        mean = per_channel.mean(dim=(0, 2), keepdim=True)
        std = per_channel.std(dim=(0, 2), keepdim=True, unbiased=False)  # population std, as numpy's
        expected = ((per_channel - mean) / std).view(raw.shape)
        torch.testing.assert_close(desc.double(), expected, atol=1e-4, rtol=1e-4)
        norm = desc.view(-1, 3, 49).double()
        torch.testing.assert_close(norm.mean(dim=(0, 2)), torch.zeros(3, dtype=torch.float64), atol=1e-5,
                                   rtol=0)
    with pytest.raises(ValueError, match="only 0 of num_images=2"):
        M.DescriptorBuilder(2, 16, 3).finish()


# ---------------------------------------------------------------------------------------------------------------
# The metric.

def test_swd_separates_same_distribution_from_noise_and_blur(sets):
    ref = M.compute_descriptors(sets["a"], seed=0)
    values = {k: M.swd_from_descriptors(ref, M.compute_descriptors(sets[k], seed=0), seed=0)
              for k in ("b", "noise", "blurred")}
    same, noise, blur = values["b"], values["noise"], values["blurred"]
    assert list(same) == ["swd_level_32", "swd_level_16", "swd_avg"]
    assert same["swd_avg"] == pytest.approx((same["swd_level_32"] + same["swd_level_16"]) / 2)
    assert 0 < same["swd_avg"] < 0.25 * noise["swd_avg"]
    for key in ("swd_level_32", "swd_level_16"):
        assert same[key] < 0.3 * noise[key]
    # Blurring removes fine detail: the 32 px band sees it clearly, better than a second real sample does.
    assert blur["swd_level_32"] > 2 * same["swd_level_32"]


def test_swd_identical_zero_symmetric_deterministic(sets):
    a, b = sets["a"][:64], sets["b"][:64]
    fast = {"dir_repeats": 2, "dirs_per_repeat": 32}  # the properties hold for any number of projections
    assert all(v == 0.0 for v in M.swd(a, a, seed=3, **fast).values())
    ab, ba = M.swd(a, b, seed=3, **fast), M.swd(b, a, seed=3, **fast)
    assert ab == ba and ab["swd_avg"] > 0
    assert M.swd(a, b, seed=3, batch=7, **fast) == ab  # batching does not change positions or values
    assert M.swd(torch.from_numpy(a), torch.from_numpy(b), seed=3, **fast) == ab  # numpy and torch alike
    assert M.swd(a, b, seed=4, **fast) != ab


def test_swd_float_input_is_quantised_like_fakes_and_gray_is_tiled(sets):
    a = sets["a"][:32]
    x = torch.from_numpy(sets["b"][:32]).float() / 127.5 - 1.0 + 0.001  # float [-1, 1] images
    fast = {"dir_repeats": 1, "dirs_per_repeat": 32}
    assert M.swd(a, x, seed=1, **fast) == M.swd(a, M.to_uint8_pggan(x), seed=1, **fast)
    assert torch.equal(M.to_uint8_pggan(torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0])),
                       torch.tensor([0, 128, 255, 255, 0], dtype=torch.uint8))
    with pytest.warns(UserWarning, match="NaN"):
        assert M.to_uint8_pggan(torch.tensor([float("nan")])).item() == 128
    gray_a, gray_b = a[:, :1], sets["b"][:32, :1]
    rgb = M.swd(np.repeat(gray_a, 3, axis=1), np.repeat(gray_b, 3, axis=1), seed=1, **fast)
    assert M.swd(gray_a, gray_b, seed=1, **fast) == rgb


def test_swd_input_errors():
    x = np.zeros((4, 3, 16, 16), np.uint8)
    with pytest.raises(ValueError, match=r"reals \[4, 3, 16, 16\] and fakes \[4, 3, 32, 32\]"):
        M.swd(x, np.zeros((4, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"\[4, 3, 16, 16\] and fakes \[5, 3, 16, 16\]"):
        M.swd(x, np.zeros((5, 3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"looks like \[N, H, W, C\]"):
        M.swd(x.transpose(0, 2, 3, 1), x.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match="square"):
        M.swd(x[:, :, :, :8], x[:, :, :, :8])
    with pytest.raises(ValueError, match="at least one image"):
        M.swd(x[:0], x[:0])
    with pytest.raises(ValueError, match="4-D"):
        M.swd(x[0], x[0])
    with pytest.raises(TypeError, match="dtype int64"):
        M.swd(x.astype(np.int64), x.astype(np.int64))
    with pytest.raises(TypeError, match="got list"):
        M.swd([x], x)
    with pytest.raises(ValueError, match=r"at least 16 px .* min_resolution=8"):
        M.swd(x[:, :, :8, :8], x[:, :, :8, :8])
    with pytest.raises(ValueError, match="min_resolution=3"):
        M.swd(x, x, min_resolution=3)
    with pytest.raises(ValueError, match="dirs_per_repeat=0"):
        M.swd(x, x, dirs_per_repeat=0)
    assert M.descriptor_bytes(16384, 16) == 16384 * 128 * 147 * 4  # one set: levels x N x 128 x C x 49 float32


# ---------------------------------------------------------------------------------------------------------------
# Snapshot helper on a tiny generator.

@pytest.fixture(autouse=True)
def reference_ops(monkeypatch):
    """Pure-torch ops: these tests are about the metric, and must not wait for a JIT kernel build."""
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


@pytest.fixture(scope="module")
def tiny_G():
    import stylegan

    torch.manual_seed(0)
    return stylegan.Generator(stylegan.GeneratorConfig(resolution=16, fmap_base=64, fmap_max=32, latent_size=32,
                                                       dlatent_size=32, mapping_fmaps=32), impl="ref").eval()


def test_swd_for_generator_deterministic_and_inputs_agree(tiny_G):
    reals_nchw = shapes(48, 32, seed=4)  # 32 px reals: box-downsampled to the generator's 16 px
    reals_nhwc = np.ascontiguousarray(reals_nchw.transpose(0, 2, 3, 1))
    state = torch.get_rng_state()
    r1 = M.swd_for_generator(tiny_G, reals_nhwc, 32, batch=16, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert set(r1) == {"swd_level_16", "swd_avg", "swd_time_s"} and r1["swd_avg"] > 0
    r2 = M.swd_for_generator(tiny_G, torch.from_numpy(reals_nchw), 32, batch=32, seed=1)
    ref = M.real_descriptors(reals_nhwc, 32, 16, seed=1)
    r3 = M.swd_for_generator(tiny_G, ref, 32, seed=1)
    for r in (r2, r3):
        assert r["swd_avg"] == pytest.approx(r1["swd_avg"], rel=1e-6)
    # The same as calling swd() on the fakes and the chosen, downsampled reals by hand.
    assert M.swd_for_generator(tiny_G, reals_nhwc, 32, seed=2)["swd_avg"] != r1["swd_avg"]
    with pytest.raises(ValueError, match="num=64 exceeds the 48 real images"):
        M.swd_for_generator(tiny_G, reals_nhwc, 64)
    with pytest.raises(ValueError, match="holds 32 images but num=16"):
        M.swd_for_generator(tiny_G, ref, 16)
    with pytest.raises(ValueError, match="1-channel images but the reals have 3"):
        M.swd_for_generator(_Gray(tiny_G), reals_nhwc, 16)
    with pytest.raises(ValueError, match="at least 16 px"):
        M.swd_for_generator(tiny_G, reals_nhwc, 16, lod=1.0)  # 8 px images
    with pytest.raises(ValueError, match="no GeneratorConfig"):
        M.swd_for_generator(torch.nn.Identity(), reals_nhwc, 16)


class _Gray(torch.nn.Module):
    """A 1-channel generator made from an RGB one (for the channel-mismatch check)."""

    def __init__(self, G: torch.nn.Module) -> None:
        super().__init__()
        self.G = G
        self.config = G.config

    def forward(self, z, c=None, **kwargs):
        return self.G(z, c, **kwargs)[:, :1]


def test_swd_for_generator_matches_swd_on_its_images(tiny_G):
    reals = shapes(32, 16, seed=5)
    fakes = []

    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.G = tiny_G
            self.config = tiny_G.config

        def forward(self, z, c=None, **kwargs):
            img = self.G(z, c, **kwargs)
            fakes.append(img.clone())
            return img

    r = M.swd_for_generator(Recorder(), torch.from_numpy(reals), 32, batch=8, seed=0)
    direct = M.swd(reals, torch.cat(fakes), seed=0)  # num == len(reals): every real is used, in order
    assert r["swd_avg"] == pytest.approx(direct["swd_avg"], rel=1e-6)


class _LabelRecorder(torch.nn.Module):
    """A generator that notes the class of every label it is fed."""

    def __init__(self, G: torch.nn.Module) -> None:
        super().__init__()
        self.G, self.config, self.classes = G, G.config, []

    def forward(self, z, c=None, **kwargs):
        self.classes.append(c.argmax(dim=1))
        return self.G(z, c, **kwargs)


def _labelled_folder(root, classes, res=16):
    """A folder of `shapes` images with a dataset.json giving image i the class classes[i]."""
    root.mkdir()
    for i, img in enumerate(shapes(len(classes), res, seed=8)):
        Image.fromarray(img.transpose(1, 2, 0)).save(root / f"{i:03d}.png")
    entries = [[f"{i:03d}.png", int(k)] for i, k in enumerate(classes)]
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return root


@pytest.fixture(scope="module")
def conditional_G():
    import stylegan

    torch.manual_seed(0)
    return stylegan.Generator(stylegan.GeneratorConfig(resolution=16, fmap_base=64, fmap_max=32, latent_size=32,
                                                       dlatent_size=32, mapping_fmaps=32, label_size=3),
                              impl="ref").eval()


def test_swd_for_generator_feeds_the_reals_labels_from_dataset_and_descriptor_set(tmp_path, conditional_G):
    from stylegan.training.dataset import ImageDataset

    classes = [0] * 36 + [1, 2, 1, 2]  # class-imbalanced: 90% class 0
    ds = ImageDataset(str(_labelled_folder(tmp_path / "imgs", classes)), 16, cache_dir=tmp_path / "cache")
    reals = M.real_descriptors(ds, 32, 16, seed=2)
    chosen = reals.labels
    assert chosen is not None and len(chosen) == 32 and set(chosen.tolist()) <= {0, 1, 2}
    by_dataset, by_descriptors = _LabelRecorder(conditional_G), _LabelRecorder(conditional_G)
    r1 = M.swd_for_generator(by_dataset, ds, 32, batch=8, seed=2)
    r2 = M.swd_for_generator(by_descriptors, reals, 32, batch=8, seed=2)
    fed = torch.cat(by_dataset.classes)
    assert fed.tolist() == chosen.tolist()  # fake i gets real i's class, the imbalance included
    assert torch.equal(torch.cat(by_descriptors.classes), fed)
    assert r1["swd_avg"] == r2["swd_avg"]
    # Reals without labels (a bare array): uniform random classes, still the same in both call paths.
    images = np.asarray(ds.images)
    plain = _LabelRecorder(conditional_G)
    M.swd_for_generator(plain, images, 32, batch=8, seed=2)
    assert M.real_descriptors(images, 32, 16, seed=2).labels is None
    assert sorted(set(torch.cat(plain.classes).tolist())) == [0, 1, 2]


def test_swd_for_generator_rejects_labels_outside_the_generators_classes(tmp_path, conditional_G):
    from stylegan.training.dataset import ImageDataset

    ds = ImageDataset(str(_labelled_folder(tmp_path / "imgs", [0, 1, 2, 5] * 8)), 16, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"label 5, outside the generator's classes \[0, 2\]"):
        M.swd_for_generator(conditional_G, ds, 32, seed=0)
    with pytest.raises(ValueError, match=r"label 5"):
        M.swd_for_generator(conditional_G, M.real_descriptors(ds, 32, 16), 32, seed=0)


def test_box_downsample_u8_is_the_rounded_block_mean():
    """Reals for SWD: the mean of each k x k block (what repeated 2x2 means give, exactly, for uint8 inputs),
    rounded half to even once."""
    x = torch.from_numpy(shapes(4, 32, seed=9))
    for res in (32, 16, 4):
        k = 32 // res
        blocks = x.numpy().astype(np.int64).reshape(4, 3, res, k, res, k).sum(axis=(3, 5))
        want = np.round(blocks / (k * k)).astype(np.uint8)
        assert np.array_equal(M.box_downsample_u8(x, res).numpy(), want)
    with pytest.raises(ValueError, match="32 px images to 12 px"):
        M.box_downsample_u8(x, 12)


def test_metrics_package_does_not_import_training():
    import subprocess
    import sys

    code = ("import sys, stylegan.metrics; "
            "print(sorted(m for m in sys.modules if m.startswith('stylegan.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------
# CLI.

def _image_folder(root, n=40, res=16):
    root.mkdir()
    for i, img in enumerate(shapes(n, res, seed=6)):
        Image.fromarray(img.transpose(1, 2, 0)).save(root / f"{i:03d}.png")
    return root


def test_metrics_cli_table_and_json(tmp_path, tiny_G):
    from stylegan.cli.metrics import metrics
    from stylegan.loading import save

    net = tmp_path / "net.pt"
    save(net, G_ema=tiny_G)
    data = _image_folder(tmp_path / "imgs")
    out = tmp_path / "res" / "swd.json"
    args = ["--network", str(net), "--data", str(data), "--num", "32", "--seed", "3", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache")]
    res = CliRunner().invoke(metrics, args + ["--json", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:2] == ["level", "SWD"])
    assert lines[row + 1].split()[:2] == ["16", "px"] and lines[row + 2].split()[0] == "avg"
    payload = json.loads(out.read_text())
    assert payload["num"] == 32 and payload["resolution"] == 16 and payload["lod"] == 0.0
    swd = payload["metrics"]
    assert swd["swd_avg"] == pytest.approx(swd["swd_level_16"]) and swd["swd_avg"] > 0
    assert float(lines[row + 2].split()[1]) == pytest.approx(swd["swd_avg"], abs=1e-4)
    # The CLI computes exactly what the library does for the same dataset and seed.
    from stylegan.training.dataset import ImageDataset

    ds = ImageDataset(str(data), 16, cache_dir=tmp_path / "cache")
    assert M.swd_for_generator(tiny_G, ds, 32, seed=3)["swd_avg"] == pytest.approx(swd["swd_avg"], rel=1e-6)

    runner = CliRunner()
    for extra, option, text in ((["--metrics", "fid"], "--metrics", "valid: fid50k_full"),
                                (["--num", "0"], "--num", ">= 1"),
                                (["--num", "41"], "--num", "41 exceeds the dataset's 40 images"),
                                (["--lod", "1"], "--lod", "8 px images"),
                                (["--device", "tpu"], "--device", "'tpu'")):
        bad = runner.invoke(metrics, [a for a in args if a not in ("--num", "32")] + extra)
        assert bad.exit_code == 2 and option in bad.output and text in bad.output, (extra, bad.output)
    bad = runner.invoke(metrics, ["--network", str(net), "--data", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "--data" in bad.output
    bad = runner.invoke(metrics, ["--network", str(tmp_path / "missing.pt"), "--data", str(data)])
    assert bad.exit_code == 2 and "--network" in bad.output


def test_metrics_cli_scores_against_the_glyph_style_given(tmp_path, tiny_G):
    """--glyphs-style reaches the dataset: the SWD is the library's against the outline glyphs, not the solid ones
    (a network fine-tuned on --glyphs-style outline is scored against what it was trained on)."""
    from stylegan.cli.metrics import metrics
    from stylegan.loading import save
    from stylegan.training.dataset import ImageDataset

    net = tmp_path / "net.pt"
    save(net, G_ema=tiny_G)
    args = ["--network", str(net), "--data", "builtin:glyphs", "--glyphs", "40", "--num", "32", "--seed", "3",
            "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "swd.json")]
    res = CliRunner().invoke(metrics, args + ["--glyphs-style", "outline"])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "swd.json").read_text())["metrics"]["swd_avg"]
    outline, solid = (ImageDataset("builtin:glyphs", 16, cache_dir=tmp_path / "cache", glyphs_count=40,
                                   glyphs_style=style) for style in ("outline", "solid"))
    assert M.swd_for_generator(tiny_G, outline, 32, seed=3)["swd_avg"] == pytest.approx(got, rel=1e-6)
    assert M.swd_for_generator(tiny_G, solid, 32, seed=3)["swd_avg"] != pytest.approx(got, rel=1e-3)
    folder = _image_folder(tmp_path / "imgs")
    bad = CliRunner().invoke(metrics, ["--network", str(net), "--data", str(folder), "--glyphs-style", "outline"])
    assert bad.exit_code == 2 and "--glyphs-style outline applies to builtin:glyphs only" in bad.output, bad.output


# ---------------------------------------------------------------------------------------------------------------
# Plot.

def _write_log(path, n=60, truncated_tail=True):
    rows = []
    for i in range(n):
        row = {"kimg": i * 0.5, "loss_G": 2.0 - i * 0.02, "loss_D": -0.5 + 0.001 * i, "penalty": 0.01 * (i % 7)}
        if i % 10 == 0:
            row["swd_avg"] = 300.0 / (1 + i)
        rows.append(json.dumps(row))
    text = "\n".join(rows) + "\n" + ('{"kimg": 30.0, "los' if truncated_tail else "")
    path.write_text(text)


def test_plot_cli_writes_png_of_expected_size(tmp_path):
    from stylegan.cli.plot import plot
    from stylegan.plot import nice_ticks, read_jsonl, series

    log = tmp_path / "log.jsonl"
    _write_log(log)
    assert len(read_jsonl(log)) == 60  # the half-written last line is skipped
    assert series(read_jsonl(log), "swd_avg")[:2] == [(0.0, 300.0), (5.0, 300.0 / 11)]
    assert nice_ticks(0, 29.5, 6) == [0, 5, 10, 15, 20, 25]
    from stylegan.plot import _tick_labels

    assert _tick_labels([9e-8, 9.5e-8, 1e-7, 1.05e-7, 1.1e-7]) == ["9e-08", "9.5e-08", "1e-07", "1.05e-07",
                                                                  "1.1e-07"]  # distinct despite close values
    out = tmp_path / "curves.png"
    res = CliRunner().invoke(plot, [str(log), "--out", str(out), "--width", "640", "--panel-height", "150"])
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (640, 4 * 150)
        pixels = np.asarray(im.convert("RGB"))
    # Each panel draws its curve in its own colour: loss_G blue, loss_D red, penalty green, swd_avg purple.
    for colour in ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)):
        assert (pixels == colour).all(axis=-1).sum() > 50, colour
    res = CliRunner().invoke(plot, [str(log), "--out", str(out), "--keys", "loss_G,swd_avg"])
    assert res.exit_code == 0
    with Image.open(out) as im:
        assert im.size == (800, 2 * 200)


def test_plot_cli_draws_several_runs_in_the_same_panels(tmp_path):
    from stylegan.cli.plot import plot

    for name in ("none", "ada"):
        (tmp_path / name).mkdir()
        _write_log(tmp_path / name / "log.jsonl", truncated_tail=False)
    with open(tmp_path / "ada" / "log.jsonl", "a") as f:  # a key only one run has still gets its panel
        f.write(json.dumps({"kimg": 31.0, "loss_G": 1.0, "augment_p": 0.25}) + "\n")
    out = tmp_path / "both.png"
    res = CliRunner().invoke(plot, [str(tmp_path / "none" / "log.jsonl"), str(tmp_path / "ada" / "log.jsonl"),
                                    "--out", str(out), "--keys", "loss_G,augment_p", "--panel-height", "150"])
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.size == (800, 2 * 150)
        top = np.asarray(im.convert("RGB"))[:150]
    # one colour per run in a panel: the first run blue, the second red
    for colour in ((31, 119, 180), (214, 39, 40)):
        assert (top == colour).all(axis=-1).sum() > 50, colour


def test_plot_cli_errors(tmp_path):
    from stylegan.cli.plot import plot

    log = tmp_path / "log.jsonl"
    _write_log(log, truncated_tail=False)
    res = CliRunner().invoke(plot, [str(log), "--out", str(tmp_path / "c.png"), "--keys", "loss_G,fid"])
    assert res.exit_code == 2 and "--keys" in res.output and "no values for fid" in res.output
    assert "loss_G" in res.output  # lists what the log has
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kimg": 1, "loss_G": 1}\nnot json\n{"kimg": 2, "loss_G": 1}\n')
    res = CliRunner().invoke(plot, [str(bad), "--out", str(tmp_path / "c.png")])
    assert res.exit_code == 2 and "line 2" in res.output
    res = CliRunner().invoke(plot, [str(log), "--out", str(tmp_path / "c.jpg")])
    assert res.exit_code == 2 and "--out" in res.output
