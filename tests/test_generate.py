"""stylegan.generate: seed convention, batching, labels, layer groups, style mixing, interpolation.

The ops run as the pure-torch reference (STYLEGAN_OPS=ref): these tests are about the sampling API, the kernels have
their own tests, and a first-use kernel build would dominate the runtime.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from network_test_support import DATA, TINY_GENERATOR as TINY
from stylegan import generate as api
from stylegan.config import GeneratorConfig
from stylegan.generator import Generator
from stylegan.images import to_uint8


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


def make_generator(seed: int = 0, **overrides) -> Generator:
    """Tiny random generator with a non-zero w_avg and noise strengths, so truncation and noise matter."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():
        G.w_avg.normal_()
        for name, p in G.named_parameters():
            if "noise_strength" in name:
                p.normal_()
    return G


@pytest.fixture(scope="module")
def G() -> Generator:
    return make_generator()


def reference_images(G, seeds, psi, cutoff, noise_mode="const", c=None) -> np.ndarray:
    """The conversion spelled out step by step, independent of generate.py's helpers."""
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.config.latent_size) for s in seeds])).float()
    with torch.no_grad():
        ws = G.truncate(G.mapping(z, c), psi, cutoff)
        img = G.synthesis(ws, noise_mode=noise_mode)
    img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img.permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------------------------------------------------- z


def test_z_from_seed_is_the_official_randomstate_draw():
    z = api.z_from_seed(1236, 32)
    assert z.shape == (32,) and z.dtype == np.float64
    np.testing.assert_array_equal(z, np.random.RandomState(1236).randn(32))
    # The fixture's z are RandomState(1236).randn(4, 32): its first row is seed 1236's latent.
    with np.load(DATA / "small_io.npz") as data:
        np.testing.assert_allclose(z, data["z"][0], rtol=0, atol=1e-6)
    assert not np.array_equal(api.z_from_seed(1, 32), api.z_from_seed(2, 32))
    for bad in (-1, 2 ** 32, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            api.z_from_seed(bad, 32)


# ------------------------------------------------------------------------------------------------------ generation


def test_generate_images_equals_the_spelled_out_pipeline(G):
    seeds = [0, 7, 123]
    got = api.generate_images(G, seeds, psi=0.5, cutoff=4, progress=False)
    assert got.shape == (3, 32, 32, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, reference_images(G, seeds, 0.5, 4))
    untruncated = api.generate_images(G, seeds, psi=1.0, cutoff=4, progress=False)
    np.testing.assert_array_equal(untruncated, reference_images(G, seeds, 1.0, None))
    assert np.abs(untruncated.astype(int) - got.astype(int)).mean() > 1  # truncation did something


def test_generate_images_is_deterministic_and_batch_independent(G):
    seeds = [3, 1, 4, 1, 5]
    a = api.generate_images(G, seeds, psi=0.7, batch_size=5, progress=False)
    b = api.generate_images(G, seeds, psi=0.7, batch_size=2, progress=False)
    np.testing.assert_array_equal(a, api.generate_images(G, seeds, psi=0.7, batch_size=5, progress=False))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float summation order may differ across batch sizes
    np.testing.assert_array_equal(a[1], a[3])  # the same seed twice in one call
    assert not np.array_equal(a[0], a[1])


def test_noise_modes(G):
    const = api.generate_images(G, [0], noise_mode="const", progress=False)
    none = api.generate_images(G, [0], noise_mode="none", progress=False)
    random1 = api.generate_images(G, [0], noise_mode="random", progress=False)
    random2 = api.generate_images(G, [0], noise_mode="random", progress=False)
    assert not np.array_equal(const, none) and not np.array_equal(random1, random2)
    with pytest.raises(ValueError, match="noise_mode"):
        api.generate_images(G, [0], noise_mode="fixed")


def test_bad_arguments(G):
    with pytest.raises(ValueError, match="seeds is empty"):
        api.generate_images(G, [])
    with pytest.raises(ValueError, match="batch_size"):
        api.generate_images(G, [0], batch_size=0)


def test_labels_one_hot_and_strict_errors(G):
    Gc = make_generator(label_size=3)
    with pytest.raises(ValueError, match="label-conditional with 3 classes"):
        api.generate_images(Gc, [0])
    for bad in (3, -1):
        with pytest.raises(ValueError, match="class_idx"):
            api.generate_images(Gc, [0], class_idx=bad)
    with pytest.raises(ValueError, match="unconditional"):
        api.generate_images(G, [0], class_idx=0)
    c = torch.tensor([[0.0, 1.0, 0.0]] * 2)
    got = api.generate_images(Gc, [5, 6], psi=1.0, class_idx=1, progress=False)
    np.testing.assert_array_equal(got, reference_images(Gc, [5, 6], 1.0, None, c=c))
    assert not np.array_equal(got, api.generate_images(Gc, [5, 6], psi=1.0, class_idx=2, progress=False))


def test_auto_batch_size_bounds_memory():
    class Stub(torch.nn.Module):
        def __init__(self, resolution):
            super().__init__()
            self.config = GeneratorConfig(resolution=resolution)
            self.w = torch.nn.Parameter(torch.zeros(1))

    big, small = Stub(1024), Stub(32)
    # 1024 px: the 1024^2 block has nf(9) = 16 channels -> 64 MiB per float32 map.
    assert api.activation_bytes_per_image(big) == api.ACTIVATION_COPIES * 16 * 1024 ** 2 * 4
    batch = api.auto_batch_size(big)
    assert 1 <= batch <= 8 and batch * api.activation_bytes_per_image(big) <= api.DEFAULT_CPU_BUDGET_BYTES
    assert api.auto_batch_size(small) == api.MAX_AUTO_BATCH
    assert api.auto_batch_size(big, budget_bytes=1) == 1


def test_progress_bar_shown_only_when_asked(G, capsys):
    api.generate_images(G, [0, 1, 2], batch_size=1, progress=True)
    assert "generating" in capsys.readouterr().err
    api.generate_images(G, [0, 1, 2], batch_size=1, progress=False)
    assert capsys.readouterr().err == ""


def test_official_fixture_seed_matches_nvlabs_images():
    """small_io 'gs_defaults' = Gs.run(z, None, randomize_noise=False) with psi 0.7, cutoff 8; z[0] = seed 1236."""
    from stylegan.loading import load

    G = load(DATA / "small.pkl").G_ema
    with np.load(DATA / "small_io.npz") as data:
        want = to_uint8(torch.from_numpy(data["gs_defaults"][:1]))
    got = api.generate_images(G, [1236], psi=0.7, cutoff=8, noise_mode="const", progress=False)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


# ---------------------------------------------------------------------------------------------------- layer groups


@pytest.mark.parametrize("resolution, num_layers, expected", [
    (32, 8, {"coarse": range(0, 4), "middle": range(4, 8), "fine": None}),
    (256, 14, {"coarse": range(0, 4), "middle": range(4, 8), "fine": range(8, 14)}),
    (1024, 18, {"coarse": range(0, 4), "middle": range(4, 8), "fine": range(8, 18)}),
    (16, 6, {"coarse": range(0, 4), "middle": range(4, 6), "fine": None}),
])
def test_named_layer_groups(resolution, num_layers, expected):
    assert GeneratorConfig(resolution=resolution).num_layers == num_layers
    for name, layers in expected.items():
        if layers is None:
            with pytest.raises(ValueError, match=f"'{name}'.*empty.*{resolution}x{resolution}"):
                api.layer_range(name, num_layers)
        else:
            assert api.layer_range(name, num_layers) == layers
            assert api.layer_range(name.upper(), num_layers) == layers


def test_numeric_layer_ranges():
    assert api.layer_range("2-5", 8) == range(2, 6)
    assert api.layer_range("0-7", 8) == range(0, 8)
    assert api.layer_range("6", 8) == range(6, 7)
    for bad in ("5-2", "0-8", "8", "a-b", "", "1-2-3", "-1"):
        with pytest.raises(ValueError, match="styles"):
            api.layer_range(bad, 8)


# ---------------------------------------------------------------------------------------------------- style mixing


def test_style_mixing_grid_layout_and_cells(G):
    rows, cols, layers = [10, 11], [20, 21, 22], api.layer_range("coarse", G.num_layers)
    grid, cells = api.style_mixing_grid(G, rows, cols, layers, psi=0.7, cutoff=8, noise_mode="const")
    assert grid.shape == (3 * 32, 4 * 32, 3) and set(cells) == {(r, c) for r in rows for c in cols}
    assert (grid[:32, :32] == api.BLANK_VALUE).all()
    col_imgs = api.generate_images(G, cols, psi=0.7, cutoff=8, progress=False)
    row_imgs = api.generate_images(G, rows, psi=0.7, cutoff=8, progress=False)
    for j in range(3):
        assert np.abs(grid[:32, 32 * (j + 1):32 * (j + 2)].astype(int) - col_imgs[j]).max() <= 1
    for i in range(2):
        assert np.abs(grid[32 * (i + 1):32 * (i + 2), :32].astype(int) - row_imgs[i]).max() <= 1

    # Each cell = synthesis of row's truncated ws with layers 0-3 taken from column's truncated ws.
    ws_rows = api.ws_from_seeds(G, rows, 0.7, 8)
    ws_cols = api.ws_from_seeds(G, cols, 0.7, 8)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ws = ws_rows[i].clone()
            ws[:4] = ws_cols[j][:4]
            want = api.synthesize(G, ws[None], "const")[0]
            assert np.abs(cells[(r, c)].astype(int) - want).max() <= 1
            np.testing.assert_array_equal(grid[32 * (i + 1):32 * (i + 2), 32 * (j + 1):32 * (j + 2)], cells[(r, c)])
            assert not np.array_equal(cells[(r, c)], row_imgs[i])  # the column's coarse styles changed the image


def test_mix_styles_takes_exactly_the_listed_layers():
    row = torch.zeros(2, 6, 1)
    col = torch.arange(1, 4, dtype=torch.float32).view(3, 1, 1).expand(3, 6, 1)
    mixed = api.mix_styles(row, col, [1, 4]).view(2, 3, 6)
    assert mixed[1, 2].tolist() == [0, 3, 0, 0, 3, 0]
    assert mixed[0, 0].tolist() == [0, 1, 0, 0, 1, 0]


def test_style_mixing_rejects_out_of_range_layers(G):
    with pytest.raises(ValueError, match="out of range"):
        api.style_mixing_grid(G, [0], [1], [7, 8])


# --------------------------------------------------------------------------------------------------- interpolation


def test_slerp():
    rng = np.random.RandomState(0)
    a, b = rng.randn(16), rng.randn(16)
    np.testing.assert_array_equal(api.slerp(a, b, 0.0), a)
    np.testing.assert_allclose(api.slerp(a, b, 1.0), b, atol=1e-12)
    u, v = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(api.slerp(u, v, 0.5), [np.sqrt(0.5)] * 2)  # stays on the circle, unlike lerp
    np.testing.assert_allclose(api.slerp(u, 2 * u, 0.5), 1.5 * u)  # parallel: falls back to lerp


def test_interpolation_positions_loop_back():
    assert api.interpolation_positions(3, 6) == [(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0), (2, 0.5)]
    assert api.interpolation_positions(2, 3) == [(0, 0.0), (0, 2 / 3), (1, 1 / 3)]


@pytest.mark.parametrize("space", ["w", "z"])
def test_interpolation_endpoints_are_the_seed_images(G, space):
    seeds = [4, 8, 15]
    video = api.interpolate(G, seeds, 6, space=space, psi=0.7, cutoff=8)
    assert video.shape == (6, 32, 32, 3) and video.dtype == np.uint8
    keys = api.generate_images(G, seeds, psi=0.7, cutoff=8, progress=False)
    for i in range(3):
        assert np.abs(video[2 * i].astype(int) - keys[i]).max() <= 1
    # Frame 5 is halfway from the last seed back to the first.
    if space == "w":
        ws = api.ws_from_seeds(G, [15, 4], 0.7, 8)
        mid = api.synthesize(G, torch.lerp(ws[0], ws[1], 0.5)[None], "const")[0]
    else:
        z = api.slerp(api.z_from_seed(15, 16), api.z_from_seed(4, 16), 0.5)
        mid = api.synthesize(G, api.ws_from_z(G, torch.from_numpy(z[None]), 0.7, 8), "const")[0]
    assert np.abs(video[5].astype(int) - mid).max() <= 1
    assert not np.array_equal(video[5], video[4]) and not np.array_equal(video[5], video[0])


def test_interpolate_bad_arguments(G):
    with pytest.raises(ValueError, match="at least 2 seeds"):
        api.interpolate(G, [1], 4)
    with pytest.raises(ValueError, match="space"):
        api.interpolate(G, [1, 2], 4, space="x")
    with pytest.raises(ValueError, match="frames"):
        api.interpolate(G, [1, 2], 0)
