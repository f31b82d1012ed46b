"""rosinality checkpoints load and compute the same images and D scores as rosinality's own forward.

What that forward computes: docs/FORMATS.md §2.4.
"""
import io

import pytest
import torch

import stylegan
from stylegan.formats import rosinality

import rosinality_reference as ref

TRAINED_STEP = 5  # 128 px: includes the first fused up/down block


@pytest.fixture(scope="module")
def checkpoint_bytes():
    """A train.py checkpoint (zip serialization) with distinct generator and g_running weights."""
    payload = {
        "generator": ref.random_generator_state(TRAINED_STEP, seed=1),
        "discriminator": ref.random_discriminator_state(seed=2),
        "g_running": ref.random_generator_state(TRAINED_STEP, seed=3),
        "g_optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "betas": (0.0, 0.99), "mult": 0.01, "params": []}]},
        "d_optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "betas": (0.0, 0.99), "params": []}]},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return payload, buffer.getvalue()


@pytest.fixture(scope="module")
def loaded(checkpoint_bytes):
    return stylegan.load(io.BytesIO(checkpoint_bytes[1]))


def _per_block_noise(n, steps, seed=7):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 1, 4 << i, 4 << i, generator=g) for i in range(steps + 1)]


def test_checkpoint_is_detected_and_resolution_inferred(loaded):
    assert loaded.source_format == "rosinality"
    assert loaded.G is not None and loaded.D is not None and loaded.G_ema is not None
    assert loaded.G_ema.config.resolution == 4 << TRAINED_STEP
    assert loaded.D.config.resolution == 4 << TRAINED_STEP


@pytest.mark.parametrize("step, alpha", [(TRAINED_STEP, -1.0), (TRAINED_STEP, 0.3), (3, 1.0), (2, 0.5), (0, -1.0)])
def test_generator_images_equal_rosinality(checkpoint_bytes, loaded, step, alpha):
    state = checkpoint_bytes[0]["g_running"]
    z = torch.randn(3, 512, generator=torch.Generator().manual_seed(step))
    noise = _per_block_noise(3, TRAINED_STEP)
    want = ref.generator(state, z, noise, step, alpha)
    G = loaded.G_ema
    lod = rosinality.lod_from_step(G.config.resolution, step, alpha)
    got = G.synthesis(G.mapping(z), lod=lod, noise=noise)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=2e-4 * want.abs().max().item(), rtol=1e-4)


def test_truncation_with_mean_style_equals_rosinality(checkpoint_bytes, loaded):
    state = checkpoint_bytes[0]["g_running"]
    G = loaded.G_ema
    z = torch.randn(2, 512, generator=torch.Generator().manual_seed(11))
    noise = _per_block_noise(2, TRAINED_STEP)
    want = ref.generator(state, z, noise, TRAINED_STEP, mean_style=G.w_avg[None], style_weight=0.7)
    ws = G.truncate(G.mapping(z), 0.7, G.num_layers)  # rosinality truncates every block: cutoff = num_layers
    got = G.synthesis(ws, noise=noise)
    torch.testing.assert_close(got, want, atol=2e-4 * want.abs().max().item(), rtol=1e-4)


def test_w_avg_is_rosinality_mean_style(loaded, checkpoint_bytes):
    state = checkpoint_bytes[0]["g_running"]
    z = torch.randn(4096, 512, generator=torch.Generator().manual_seed(5))
    approx = ref.mapping(state, z).mean(0)
    assert (loaded.G_ema.w_avg - approx).abs().max() < 0.1 * approx.abs().max()


def test_style_mixing_range_equals_rosinality(checkpoint_bytes, loaded):
    state = checkpoint_bytes[0]["g_running"]
    G = loaded.G_ema
    gen = torch.Generator().manual_seed(12)
    z, z2 = torch.randn(2, 512, generator=gen), torch.randn(2, 512, generator=gen)
    noise = _per_block_noise(2, TRAINED_STEP)
    want = ref.generator(state, z, noise, TRAINED_STEP, z2=z2, mixing_range=(2, TRAINED_STEP))
    got = G.synthesis(G.mix(G.mapping(z), G.mapping(z2), 4), noise=noise)  # block 2 = layers 4, 5
    torch.testing.assert_close(got, want, atol=2e-4 * want.abs().max().item(), rtol=1e-4)


@pytest.mark.parametrize("step, alpha", [(TRAINED_STEP, -1.0), (TRAINED_STEP, 0.6), (3, 0.25), (1, -1.0)])
def test_discriminator_scores_equal_rosinality(checkpoint_bytes, loaded, step, alpha):
    state = checkpoint_bytes[0]["discriminator"]
    img = torch.randn(5, 3, 4 << step, 4 << step, generator=torch.Generator().manual_seed(step))  # 5: whole batch
    want = ref.discriminator(state, img, step, alpha)
    lod = rosinality.lod_from_step(loaded.D.config.resolution, step, alpha)
    got = loaded.D(img, lod=lod)
    torch.testing.assert_close(got, want, atol=1e-4 * max(1.0, want.abs().max().item()), rtol=1e-4)


def test_from_rgb_without_activation(tmp_path):
    d_state = ref.random_discriminator_state(seed=4, activate=False)
    g_state = ref.random_generator_state(2, seed=4)
    path = tmp_path / "train_step-2.model"
    torch.save({"generator": g_state, "discriminator": d_state, "g_running": g_state}, path)
    nets = stylegan.load(path)
    assert nets.D.config.from_rgb_activate is False and nets.D.config.resolution == 16
    img = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(nets.D(img), ref.discriminator(d_state, img, 2, activate=False), atol=1e-4, rtol=1e-4)


def test_bare_g_running_and_legacy_serialization(tmp_path):
    state = ref.random_generator_state(3, seed=6)
    path = tmp_path / "010000.model"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] == b"\x80\x02"  # the pre-zip format
    nets = stylegan.load(path)
    assert nets.G is None and nets.D is None and nets.G_ema.config.resolution == 32
    z = torch.randn(2, 512)
    noise = _per_block_noise(2, 3)
    torch.testing.assert_close(nets.G_ema.synthesis(nets.G_ema.mapping(z), noise=noise),
                               ref.generator(state, z, noise, 3), atol=1e-3, rtol=1e-4)


def test_explicit_resolution_keeps_more_blocks(checkpoint_bytes):
    nets = rosinality.networks_from_checkpoint(checkpoint_bytes[0], "ckpt", resolution=256)
    assert nets.G_ema.config.resolution == 256 and nets.D.config.resolution == 256


def test_missing_key_is_named(tmp_path):
    state = ref.random_generator_state(2, seed=8)
    del state["generator.progression.1.conv2.conv.weight_orig"]
    path = tmp_path / "broken.model"
    torch.save({"g_running": state}, path)
    with pytest.raises(ValueError, match=r"broken.model.*generator.progression.1.conv2.conv.weight_orig"):
        stylegan.load(path)


def test_wrong_shape_is_named(tmp_path):
    state = ref.random_generator_state(2, seed=9)
    state["generator.to_rgb.1.conv.weight_orig"] = torch.zeros(3, 7, 1, 1)
    path = tmp_path / "shape.model"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"generator.to_rgb.1.conv.weight_orig has shape \[3, 7, 1, 1\], expected"):
        stylegan.load(path)


def test_convert_then_load_gives_identical_outputs(tmp_path, loaded):
    out = tmp_path / "converted.pt"
    stylegan.save(out, G=loaded.G, D=loaded.D, G_ema=loaded.G_ema)
    again = stylegan.load(out)
    assert again.source_format == "stylegan"
    z = torch.randn(2, 512)
    assert torch.equal(again.G_ema(z, noise_mode="const"), loaded.G_ema(z, noise_mode="const"))
    torch.testing.assert_close(again.G_ema.w_avg, loaded.G_ema.w_avg)
