"""Official-structure pickles for configs the small TF fixture does not cover load and compute the official math.

Random variables with the official names and shapes (docs/FORMATS.md §1.4) are pickled the way dnnlib writes them
and read back through `stylegan.load`; our networks must equal `official_reference`, a separate statement of
docs/FORMATS.md §1.6-§1.9 computed straight from the raw TF variables. Covers the fused up/down-convs (>= 128 px),
label conditioning, 1-channel images and the 1024-px default config.
"""
import io

import numpy as np
import pytest
import torch

import stylegan

import official_reference as ref

CONFIGS = {
    "fused-128px-labels": dict(resolution=128, num_channels=3, label_size=3, fmap_base=128, fmap_max=32,
                               latent_size=16, dlatent_size=16),
    "grayscale-256px": dict(resolution=256, num_channels=1, label_size=0, fmap_base=256, fmap_max=16,
                            latent_size=8, dlatent_size=8),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request):
    cfg = CONFIGS[request.param]
    data, (style, mapping, synthesis) = ref.official_pickle(cfg, seed=len(request.param))
    nets = stylegan.load(io.BytesIO(data))
    for net in (nets.G, nets.D, nets.G_ema):
        net.impl = "ref"
    return cfg, nets, style, mapping, synthesis


def _labels(cfg, n):
    if not cfg["label_size"]:
        return None
    return torch.nn.functional.one_hot(torch.arange(n) % cfg["label_size"], cfg["label_size"]).float()


def test_configs_and_buffers_come_from_the_pickle(case):
    cfg, nets, style, _, synthesis = case
    assert nets.source_format == "nvlabs-tf"
    for key in ("resolution", "num_channels", "label_size", "fmap_base", "fmap_max", "latent_size", "dlatent_size"):
        assert getattr(nets.G_ema.config, key) == cfg[key]
    assert nets.D.config.num_channels == cfg["num_channels"] and nets.D.config.label_size == cfg["label_size"]
    torch.testing.assert_close(nets.G_ema.w_avg, torch.from_numpy(dict(style)["dlatent_avg"]))
    torch.testing.assert_close(nets.G_ema.synthesis.noise3, torch.from_numpy(dict(synthesis)["noise3"]))


def test_generator_equals_the_official_math(case):
    cfg, nets, _, mapping, synthesis = case
    z = np.random.RandomState(0).randn(2, cfg["latent_size"]).astype(np.float32)
    c = _labels(cfg, 2)
    with torch.no_grad():
        want = ref.generator(cfg, mapping, synthesis, z, None if c is None else c.numpy())
        got = nets.G_ema(torch.from_numpy(z), c, noise_mode="const")
    assert got.shape == (2, cfg["num_channels"], cfg["resolution"], cfg["resolution"])
    torch.testing.assert_close(got, want, atol=1e-3 * max(1.0, want.abs().max().item()), rtol=1e-4)


@pytest.mark.parametrize("group_size", [4, 2])
def test_discriminator_equals_the_official_math(case, group_size):
    cfg, nets, *_ = case
    variables = ref.discriminator_variables(cfg, seed=len([k for k, v in CONFIGS.items() if v is cfg][0]) + 1)
    img = torch.randn(4, cfg["num_channels"], cfg["resolution"], cfg["resolution"], generator=torch.Generator().manual_seed(1))
    D = nets.D if group_size == 4 else stylegan.Discriminator(nets.D.config.replace(mbstd_group_size=2), impl="ref")
    if group_size != 4:
        D.load_state_dict(nets.D.state_dict())
    c = _labels(cfg, 4)
    with torch.no_grad():
        want = ref.discriminator(cfg, variables, img, None if c is None else c, group_size=group_size)
        got = D(img, c)
    torch.testing.assert_close(got, want, atol=1e-4 * max(1.0, want.abs().max().item()), rtol=1e-4)


def test_official_1024_defaults_load_with_the_documented_parameter_counts():
    cfg = dict(resolution=1024, num_channels=3, label_size=0, fmap_base=8192, fmap_max=512, latent_size=512,
               dlatent_size=512)
    data, _ = ref.official_pickle(cfg, seed=3)
    nets = stylegan.load(io.BytesIO(data))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(nets.G_ema.mapping), count(nets.G_ema.synthesis)) == (2_101_248, 24_118_379)
    assert count(nets.D) == 23_087_249
    assert nets.G_ema.num_layers == 18
    assert [layer.fused for layer in nets.G_ema.synthesis.layers[::2]][1:] == [False] * 4 + [True] * 4
