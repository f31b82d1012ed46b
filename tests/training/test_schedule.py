"""Schedule table (official training_schedule semantics), config round trip/validation, training helpers."""
import math

import pytest
import torch

from stylegan.training.config import TrainConfig
from stylegan.generator import random_crossover_point as mixing_cutoff
from stylegan.layers import upscale2d_nearest as nearest_up2
from stylegan.images import box_down2
from stylegan.training.schedule import (ema_beta, fade_reals, images_at_lod, is_level_change,
                                        level_starts, phase_at, resolution_at)


def cfg(**kw):
    base = dict(resolution=32, total_kimg=3000, lod_training_kimg=600, lod_transition_kimg=600)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("kimg, lod, res, batch", [
    (0, 2.0, 8, 128), (599.999, 2.0, 8, 128), (600, 2.0, 8, 128), (600.001, 1.999998, 16, 128),
    (900, 1.5, 16, 128), (1199.999, 1.000002, 16, 128), (1200, 1.0, 16, 128), (1800, 1.0, 16, 128),
    (2100, 0.5, 32, 64), (2400, 0.0, 32, 64), (2999, 0.0, 32, 64), (50000, 0.0, 32, 64),
])
def test_table_8_to_32(kimg, lod, res, batch):
    p = phase_at(int(round(kimg * 1000)), cfg())
    assert p.lod == pytest.approx(lod, abs=1e-6)
    assert p.resolution == res == resolution_at(p.lod, 5)
    assert p.batch == batch
    assert p.lr_G == p.lr_D == 0.001
    assert p.alpha == pytest.approx(1 - (lod - math.floor(lod)), abs=1e-6)
    assert p.fading == (lod != math.floor(lod))
    assert p.num_active_layers == 2 * int(math.log2(res)) - 2


def test_end_state_and_level_index():
    c = cfg()
    assert phase_at(0, c).level_index == 0
    assert phase_at(900_000, c).level_index == 1
    assert phase_at(1_300_000, c).level_index == 1
    assert phase_at(2_100_000, c).level_index == 2
    assert not phase_at(2_999_999, c).done and phase_at(3_000_000, c).done


def test_lod_monotonic_and_level_changes():
    c = cfg()
    prev, changes, lods = None, [], []
    for n in range(0, 3_000_000, 4000):
        p = phase_at(n, c)
        lods.append(p.lod)
        if prev is not None and is_level_change(prev, p.lod):
            changes.append(n)
        prev = p.lod
    assert all(a >= b for a, b in zip(lods, lods[1:]))
    # official reset: at the start of each fade and when it ends (floor or ceil of lod changes)
    assert changes == [604_000, 1_200_000, 1_804_000, 2_400_000]
    assert is_level_change(None, 2.0)


def test_lr_and_batch_dicts_at_high_res():
    c = cfg(resolution=512, lod_training_kimg=1, lod_transition_kimg=1, total_kimg=100)
    by_res = {}
    for n in range(0, 20_000, 500):
        p = phase_at(n, c)
        by_res[p.resolution] = (p.batch, p.lr_G, p.lr_D)
    assert by_res == {8: (128, 0.001, 0.001), 16: (128, 0.001, 0.001), 32: (64, 0.001, 0.001),
                      64: (32, 0.001, 0.001), 128: (16, 0.0015, 0.0015), 256: (8, 0.002, 0.002),
                      512: (4, 0.003, 0.003)}


def test_batch_override_and_world_size():
    c = cfg(batch=6)
    assert {phase_at(n, c).batch for n in (0, 900_000, 2_500_000)} == {6}
    assert phase_at(0, c, world_size=4).batch == 4


def test_no_growing_and_rampup():
    c = cfg(lod_initial_resolution=32, lrate_rampup_kimg=10)
    p = phase_at(5000, c)
    assert p.lod == 0 and p.resolution == 32 and p.lr_G == pytest.approx(0.0005)


def test_config_json_round_trip_and_validation():
    c = cfg(batch=8, G_lrate_dict={64: 0.002}, mirror_augment=True)
    c2 = TrainConfig.from_json(c.to_json())
    assert c2 == c and c2.G_lrate_dict == {64: 0.002} and c2.minibatch_dict[32] == 64
    for bad, field in [(dict(resolution=48), "resolution"), (dict(total_kimg=0), "total_kimg"),
                       (dict(loss="nope"), "loss"), (dict(batch=0), "batch"),
                       (dict(lod_initial_resolution=64), "lod_initial_resolution"),
                       (dict(minibatch_dict={"x": 3}), "minibatch_dict")]:
        with pytest.raises(ValueError, match=field):
            cfg(**bad)
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"resolutoin": 32})


def test_ema_beta_half_life():
    assert ema_beta(10_000, 10.0) == pytest.approx(0.5)
    b = ema_beta(32, 10.0)
    assert b ** (10_000 / 32) == pytest.approx(0.5)
    assert ema_beta(32, 0.0) == 0.0


def test_mixing_cutoff_range():
    g = torch.Generator().manual_seed(0)
    cuts = [mixing_cutoff(6, 0.9, g) for _ in range(500)]
    assert min(cuts) >= 1 and max(cuts) <= 6
    assert set(cuts) == {1, 2, 3, 4, 5, 6}
    assert 0.05 < cuts.count(6) / 500 < 0.17  # no-mix probability 0.1
    assert all(mixing_cutoff(6, 0.0, g) == 6 for _ in range(20))
    assert all(mixing_cutoff(6, 1.0, g) < 6 for _ in range(50))


def test_fade_reals():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fade_reals(x, 1.0), x)
    y = fade_reals(x, 1.25)
    coarse = x.reshape(2, 3, 4, 2, 4, 2).mean((3, 5)).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.allclose(y, 0.75 * x + 0.25 * coarse, atol=1e-6)
    assert torch.allclose(nearest_up2(box_down2(coarse)), coarse)


@pytest.mark.parametrize("res, initial, lod", [(8, 4, 0.0), (32, 16, 0.5), (64, 32, 0.5), (64, 16, 1.0),
                                               (64, 16, 1.5), (32, 8, 0.25), (32, 8, 2.0)])
def test_images_at_lod_is_the_first_image_at_that_lod(res, initial, lod):
    c = cfg(resolution=res, lod_initial_resolution=initial, lod_training_kimg=1.0, lod_transition_kimg=1.0)
    n = images_at_lod(c, lod)
    assert phase_at(n, c).lod == pytest.approx(lod, abs=1e-12)
    if n > 0:
        assert phase_at(n - 1, c).lod > lod  # lod only decreases: one image earlier it was not there yet


def test_images_at_lod_refuses_a_lod_the_run_never_reaches():
    c = cfg(resolution=32, lod_initial_resolution=16)
    for lod in (-0.5, 1.5, 3.0):
        with pytest.raises(ValueError, match="never reached"):
            images_at_lod(c, lod)


def test_level_starts_are_where_each_resolution_first_runs():
    c = cfg(resolution=64, lod_initial_resolution=8, lod_training_kimg=2.0, lod_transition_kimg=3.0)
    starts = level_starts(c)
    assert starts == [0, 2001, 7001, 12001]
    assert [phase_at(n, c).resolution for n in starts] == [8, 16, 32, 64]
    assert [phase_at(n - 1, c).resolution for n in starts[1:]] == [8, 16, 32]
