"""PSNR, SSIM and MS-SSIM against direct, loop-by-loop statements of their formulas (Wang et al. 2003/2004)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylegan.image_similarity import (K1, K2, MS_SSIM_WEIGHTS, gaussian_window, ms_ssim, ms_ssim_scales, psnr,
                                       ssim)


def _direct_ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float, size: int):
    """Mean SSIM and mean cs of one channel [H, W], window by window, in float64."""
    taps = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * 1.5 ** 2))
    window = np.outer(taps, taps) / np.outer(taps, taps).sum()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    full, cs = [], []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            mu_a, mu_b = (window * a).sum(), (window * b).sum()
            var_a = (window * (a - mu_a) ** 2).sum()
            var_b = (window * (b - mu_b) ** 2).sum()
            cov = (window * (a - mu_a) * (b - mu_b)).sum()
            c = (2 * cov + c2) / (var_a + var_b + c2)
            lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
            full.append(lum * c)
            cs.append(c)
    return float(np.mean(full)), float(np.mean(cs))


def _pair(n=2, c=3, side=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, side, side, generator=g) * 255
    y = (x + torch.randn(n, c, side, side, generator=g) * 30).clamp(0, 255)
    return x, y


def test_psnr_is_the_direct_formula():
    x, y = _pair()
    for i in range(2):
        mse = float(((x[i].double() - y[i].double()) ** 2).mean())
        assert psnr(x, y)[i].item() == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-6)
    assert torch.isinf(psnr(x, x)).all()


@pytest.mark.parametrize("side", [24, 8])  # 8 px: the window shrinks to 7
def test_ssim_is_the_windowed_formula(side):
    x, y = _pair(side=side)
    size = 11 if side >= 11 else 7
    got = ssim(x, y)
    for i in range(2):
        expected = np.mean([_direct_ssim_terms(x[i, ch].double().numpy(), y[i, ch].double().numpy(), 255.0, size)[0]
                            for ch in range(3)])
        assert got[i].item() == pytest.approx(expected, abs=2e-5)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)


def test_ms_ssim_is_the_product_over_scales():
    x, y = _pair(n=1, c=2, side=48)  # 48 px: 3 scales (48, 24, 12 >= 11)
    assert ms_ssim_scales(48) == 3 and ms_ssim_scales(16) == 1 and ms_ssim_scales(32) == 2
    assert ms_ssim_scales(1024) == 5
    weights = np.array(MS_SSIM_WEIGHTS[:3]) / sum(MS_SSIM_WEIGHTS[:3])
    xs, ys = x[0].double().numpy(), y[0].double().numpy()
    expected = 1.0
    for scale in range(3):
        terms = [_direct_ssim_terms(xs[ch], ys[ch], 255.0, 11) for ch in range(2)]
        value = np.mean([t[0] if scale == 2 else t[1] for t in terms])
        expected *= max(value, 0.0) ** weights[scale]
        xs = xs.reshape(2, xs.shape[1] // 2, 2, xs.shape[2] // 2, 2).mean(axis=(2, 4))
        ys = ys.reshape(2, ys.shape[1] // 2, 2, ys.shape[2] // 2, 2).mean(axis=(2, 4))
    assert ms_ssim(x, y).item() == pytest.approx(expected, abs=2e-5)
    assert ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)


def test_padded_ms_ssim_is_the_formula_on_reflect_padded_images_and_sees_the_borders():
    x, y = _pair(n=1, c=2, side=24)  # 2 scales (24, 12 >= 11), each padded by 5 px
    weights = np.array(MS_SSIM_WEIGHTS[:2]) / sum(MS_SSIM_WEIGHTS[:2])
    xs, ys = x[0].double().numpy(), y[0].double().numpy()
    expected = 1.0
    for scale in range(2):
        pad = lambda a: np.pad(a, ((0, 0), (5, 5), (5, 5)), mode="reflect")
        terms = [_direct_ssim_terms(pad(xs)[ch], pad(ys)[ch], 255.0, 11) for ch in range(2)]
        expected *= max(np.mean([t[0] if scale == 1 else t[1] for t in terms]), 0.0) ** weights[scale]
        xs = xs.reshape(2, xs.shape[1] // 2, 2, xs.shape[2] // 2, 2).mean(axis=(2, 4))
        ys = ys.reshape(2, ys.shape[1] // 2, 2, ys.shape[2] // 2, 2).mean(axis=(2, 4))
    assert ms_ssim(x, y, pad=True).item() == pytest.approx(expected, abs=2e-5)
    border = x.clone()
    border[..., :3, :] = 255 - border[..., :3, :]  # the top 3 rows: at the edge of the valid windows only
    assert 1 - ms_ssim(x, border, pad=True).item() > 20 * (1 - ms_ssim(x, border).item())  # measured 0.24, 0.006


def test_ms_ssim_is_differentiable_and_falls_with_distortion():
    x, y = _pair(n=1, side=32)
    y.requires_grad_(True)
    value = ms_ssim(x, y)
    value.sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    worse = (x + torch.randn_like(x) * 60).clamp(0, 255)
    assert ms_ssim(x, worse).item() < value.item()


def test_gaussian_window_sums_to_one():
    taps = gaussian_window(11)
    assert taps.sum().item() == pytest.approx(1.0) and taps.argmax().item() == 5


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expected two equal"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(TypeError):
        ssim(np.zeros((1, 3, 8, 8)), torch.zeros(1, 3, 8, 8))
