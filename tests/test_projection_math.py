"""The projector's pieces against direct statements of NVlabs projector.py's formulas: the lr ramp, the w noise,
the noise regulariser and the renormalisation; target preparation; the LPIPS loss with a TorchScript stand-in."""
from __future__ import annotations

import math

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from stylegan.feature_nets import FeatureNetError, load_feature_net
from stylegan.projection import LpipsLoss, PixelLoss, ProjectionConfig, TargetImageError, load_target, make_loss
from stylegan.projection.noise_regularization import noise_regularization, normalize_noise_
from stylegan.projection.schedule import learning_rate_at, w_noise_scale_at
from stylegan.projection.targets import MAX_TARGET_SIDE

from projection_support import standin_file


def _official_lr(step, num_steps, initial=0.1, rampdown=0.25, rampup=0.05):
    # projector.py, verbatim arithmetic
    t = step / num_steps
    lr_ramp = min(1.0, (1.0 - t) / rampdown)
    lr_ramp = 0.5 - 0.5 * np.cos(lr_ramp * np.pi)
    lr_ramp = lr_ramp * min(1.0, t / rampup)
    return initial * lr_ramp


def test_learning_rate_ramp_is_the_official_one():
    cfg = ProjectionConfig()
    for step in (0, 1, 25, 49, 50, 51, 500, 749, 750, 751, 900, 999):
        assert learning_rate_at(step, 1000, cfg) == pytest.approx(_official_lr(step, 1000), abs=1e-15)
    assert learning_rate_at(0, 1000, cfg) == 0.0
    assert learning_rate_at(300, 1000, cfg) == pytest.approx(0.1)  # plateau between the ramps
    assert learning_rate_at(875, 1000, cfg) == pytest.approx(0.05)  # half-way down the cosine


def test_w_noise_scale_is_the_official_one():
    cfg = ProjectionConfig()
    for step in (0, 100, 374, 749, 750, 999):
        t = step / 1000
        expected = 2.5 * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        assert w_noise_scale_at(step, 1000, 2.5, cfg) == pytest.approx(expected, abs=1e-15)
    assert w_noise_scale_at(800, 1000, 2.5, cfg) == 0.0


def _official_reg(noise_1hw):
    reg = 0.0
    noise = noise_1hw[None, None]
    while True:
        reg += (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
        reg += (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
        if noise.shape[2] <= 8:
            break
        noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def test_noise_regularization_is_the_official_sum_per_sample():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(3, 1, r, r, generator=g, dtype=torch.float64) for r in (4, 8, 32)]
    maps[2][1] += 2.0  # a map with an offset is strongly correlated with its shifted self: a large penalty
    got = noise_regularization(maps)
    for i in range(3):
        expected = sum(_official_reg(m[i, 0]) for m in maps)
        assert got[i].item() == pytest.approx(float(expected), rel=1e-12)
    assert got[1] > 10 * got[0]


def test_normalize_noise_gives_zero_mean_unit_mean_square_per_sample():
    maps = [torch.randn(2, 1, 16, 16) * 3 + 1]
    before = maps[0].clone()
    normalize_noise_(maps)
    for i in range(2):
        centred = before[i] - before[i].mean()
        assert torch.allclose(maps[0][i], centred / centred.square().mean().sqrt(), atol=1e-6)
    assert torch.allclose(maps[0].mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(maps[0].square().mean(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="space='z'"):
        ProjectionConfig(space="z")
    with pytest.raises(ValueError, match="num_steps=0"):
        ProjectionConfig(num_steps=0)
    with pytest.raises(ValueError, match="lr_rampup_length"):
        ProjectionConfig(lr_rampup_length=0)


def test_targets_are_centre_cropped_and_lanczos_resized(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "wide.png")
    got = load_target(tmp_path / "wide.png", 16, 3)
    expected = PIL.Image.fromarray(pixels[:, 10:40]).resize((16, 16), PIL.Image.LANCZOS)
    assert got.dtype == torch.uint8 and got.shape == (3, 16, 16)
    assert torch.equal(got, torch.from_numpy(np.array(expected)).permute(2, 0, 1))
    gray = load_target(tmp_path / "wide.png", 16, 1)  # converted before the resize
    expected_gray = PIL.Image.fromarray(pixels).convert("L").crop((10, 0, 40, 30)).resize((16, 16), PIL.Image.LANCZOS)
    assert gray.shape == (1, 16, 16) and torch.equal(gray[0], torch.from_numpy(np.array(expected_gray)))


def test_bad_target_files_are_refused(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(TargetImageError, match="is empty"):
        load_target(tmp_path / "empty.png", 16, 3)
    with pytest.raises(TargetImageError, match="not a readable image"):
        load_target(tmp_path / "text.png", 16, 3)
    with pytest.raises(TargetImageError, match="no such file"):
        load_target(tmp_path / "missing.png", 16, 3)
    PIL.Image.new("L", (MAX_TARGET_SIDE + 1, 2)).save(tmp_path / "huge.png")
    with pytest.raises(TargetImageError, match=f"limit is {MAX_TARGET_SIDE} px"):
        load_target(tmp_path / "huge.png", 16, 3)


def test_lpips_loss_is_the_squared_feature_distance(tmp_path):
    path = standin_file(tmp_path / "vgg16.pt")
    net = load_feature_net(path, "vgg16")
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 256, (2, 1, 512, 512), generator=g, dtype=torch.uint8)  # > 256 px, 1 channel
    images = torch.rand(2, 1, 512, 512, generator=g) * 2 - 1
    loss = LpipsLoss(net, targets, mse_weight=0.5)
    terms = loss(images)

    def features(x_0_255):  # the official preparation: area-downsample to 256, gray -> RGB
        x = F.interpolate(x_0_255, size=(256, 256), mode="area").repeat(1, 3, 1, 1)
        return net.module(x, resize_images=False, return_lpips=True)

    expected = (features(targets.float()) - features((images + 1) * 127.5)).square().sum(1)
    assert torch.allclose(terms["lpips"], expected, rtol=1e-4, atol=1e-6)
    mse = (images - (targets.float() / 127.5 - 1)).square().mean((1, 2, 3))
    assert torch.allclose(terms["loss"], expected + 0.5 * mse, rtol=1e-4, atol=1e-6)
    images.requires_grad_(True)
    loss(images)["loss"].sum().backward()
    assert images.grad.abs().sum() > 0


def test_auto_loss_falls_back_to_pixel_and_uses_a_given_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_CACHE_DIR", str(tmp_path / "cache"))
    targets = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    loss, note = make_loss("auto", targets)
    assert isinstance(loss, PixelLoss) and "pixel loss" in note and "--vgg16" in note
    loss, note = make_loss("auto", targets, standin_file(tmp_path / "v.pt"))
    assert isinstance(loss, LpipsLoss) and note is None


def test_a_vgg16_file_that_is_not_the_expected_torchscript_is_refused(tmp_path):
    targets = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(FeatureNetError, match="not a TorchScript file"):
        make_loss("lpips", targets, tmp_path / "junk.pt")
    with pytest.raises(FeatureNetError, match="returned"):
        make_loss("lpips", targets, standin_file(tmp_path / "wrong.pt", "wrong"))
    with pytest.raises(FeatureNetError, match="no such file"):
        make_loss("lpips", targets, tmp_path / "missing.pt")


def test_pixel_loss_is_mse_plus_one_minus_padded_ms_ssim():
    from stylegan.image_similarity import ms_ssim

    targets = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    terms = PixelLoss(targets)(images)
    t = targets.float() / 127.5 - 1
    expected = (images - t).square().mean((1, 2, 3)) + 1 - ms_ssim(images, t, data_range=2.0, pad=True)
    assert torch.allclose(terms["loss"], expected) and math.isfinite(float(terms["loss"].sum()))
