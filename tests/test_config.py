"""GeneratorConfig / DiscriminatorConfig: official defaults, validation naming field and value, JSON round trip."""
from __future__ import annotations

import dataclasses

import pytest

from stylegan import DiscriminatorConfig, GeneratorConfig


def test_generator_defaults_are_the_official_ones():
    # docs/FORMATS.md §1.3 (G_style, G_mapping, G_synthesis defaults).
    expected = dict(resolution=1024, num_channels=3, latent_size=512, dlatent_size=512, label_size=0, mapping_layers=8,
                    mapping_fmaps=512, mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True,
                    fmap_base=8192, fmap_decay=1.0, fmap_max=512, use_styles=True, const_input_layer=True,
                    use_noise=True, nonlinearity="lrelu", use_wscale=True, use_pixel_norm=False,
                    use_instance_norm=True, blur_filter=(1, 2, 1), fused_scale="auto", dlatent_avg_beta=0.995,
                    truncation_psi=0.7, truncation_cutoff=8, style_mixing_prob=0.9,
                    # variant fields (not official kwargs): their defaults must be the official math
                    instance_norm_eps=1e-8, bias_before_blur=False, noise_per_block=False)
    cfg = GeneratorConfig()
    assert {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)} == expected
    assert cfg.num_layers == 18 and cfg.max_lod == 8
    assert [cfg.nf(s) for s in range(1, 10)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert [cfg.fused_up(r) for r in (8, 64, 128, 1024)] == [False, False, True, True]


def test_discriminator_defaults():
    cfg = DiscriminatorConfig()
    expected = dict(resolution=1024, num_channels=3, label_size=0, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
                    nonlinearity="lrelu", use_wscale=True, mbstd_group_size=4, mbstd_num_features=1,
                    blur_filter=(1, 2, 1), fused_scale="auto",
                    # variant fields (not official kwargs): their defaults must be the official math
                    mbstd_whole_batch=False, channels_change_in_conv0=False, from_rgb_activate=True)
    assert {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)} == expected
    assert [cfg.fused_down(r) for r in (64, 128)] == [False, True]


def test_geometry_helpers():
    cfg = GeneratorConfig(resolution=32)
    assert cfg.num_layers == 8
    assert [cfg.resolution_at(lod) for lod in (0, 0.5, 1, 1.99, 2, 3)] == [32, 32, 16, 16, 8, 4]
    for bad in (-0.01, 3.01, "x", None):
        with pytest.raises(ValueError, match="lod"):
            cfg.resolution_at(bad)


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
def test_dict_and_json_round_trip(cls):
    cfg = cls(resolution=64, fmap_base=128, fused_scale=True, blur_filter=[1, 3, 3, 3, 1], label_size=2)
    assert cfg.blur_filter == (1, 3, 3, 3, 1)
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert cls.from_json(cfg.to_json()) == cfg
    assert cls.from_json(cls(blur_filter=None).to_json()).blur_filter is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.resolution = 128


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
def test_unknown_field_is_named(cls):
    with pytest.raises(ValueError, match="fmap_bass"):
        cls.from_dict({"fmap_bass": 4})


@pytest.mark.parametrize("field, value", [
    ("resolution", 48), ("resolution", 2), ("resolution", 0), ("resolution", 64.0), ("latent_size", -1),
    ("label_size", -2), ("mapping_layers", 0), ("nonlinearity", "tanh"), ("mapping_nonlinearity", "elu"),
    ("fused_scale", "yes"), ("fused_scale", 1), ("mapping_lrmul", 0), ("use_noise", 1), ("blur_filter", [1, 1]),
    ("blur_filter", "121"), ("dlatent_avg_beta", 1.5), ("truncation_cutoff", 2.5), ("fmap_decay", -1.0),
])
def test_generator_illegal_values_are_named(field, value):
    with pytest.raises(ValueError) as info:
        GeneratorConfig(**{field: value})
    assert field in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("field, value", [
    ("resolution", 100), ("num_channels", 0), ("mbstd_group_size", -1), ("mbstd_num_features", 0),
    ("nonlinearity", "gelu"), ("fused_scale", None), ("use_wscale", "no"), ("label_size", -1),
])
def test_discriminator_illegal_values_are_named(field, value):
    with pytest.raises(ValueError) as info:
        DiscriminatorConfig(**{field: value})
    assert field in str(info.value) and repr(value) in str(info.value)
