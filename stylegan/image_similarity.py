"""Full-reference image similarity in pure torch: PSNR, SSIM and MS-SSIM (per image, differentiable).

Why here: projection minimises MSE + (1 - MS-SSIM) when no VGG16 file is at hand and logs PSNR/SSIM against its
target, and tests compare images with them. Definitions as Wang et al. 2004 (SSIM: 11x11 Gaussian window, sigma
1.5, K1 = 0.01, K2 = 0.03, statistics over the 'valid' window positions, the mean of the SSIM map, channels
averaged) and Wang, Simoncelli & Bovik 2003 (MS-SSIM: contrast-structure terms at every scale, luminance at the
coarsest, 2x2 average pooling between scales, weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
Small images: MS-SSIM uses as many of the 5 scales as keep the coarsest side >= the window (16 px: 1, 32 px: 2,
64 px: 3, ...) with those scales' weights renormalised to sum 1, and SSIM's window shrinks to the image side
(odd) below 11 px. Negative contrast-structure values are clipped to 0 before the fractional powers (a negative
base has no real power).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"expected two tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"images have shapes {list(x.shape)} and {list(y.shape)}: expected two equal [N, C, H, W]")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """[N] peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE) per image (inf for identical images)."""
    _check_pair(x, y)
    mse = (x.double() - y.double()).square().mean(dim=(1, 2, 3))
    return (10 * torch.log10(data_range ** 2 / mse)).float()


def gaussian_window(size: int, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """1-D Gaussian taps [size], normalised to sum 1, centred."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-coords.square() / (2 * sigma ** 2))
    return taps / taps.sum()


def window_size_for(side: int) -> int:
    """WINDOW_SIZE, or the largest odd size <= side for images smaller than the window."""
    return WINDOW_SIZE if side >= WINDOW_SIZE else max(1, side - (1 - side % 2))


def _filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of [N, C, H, W], 'valid' positions only."""
    c = x.shape[1]
    taps = taps.to(x)
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, data_range: float, window: int,
                pad: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """([N, C] mean luminance-contrast-structure SSIM, [N, C] mean contrast-structure term) over valid positions
    (pad: of the images reflect-padded by window // 2, so that every pixel is the centre of one window)."""
    if pad:
        x = F.pad(x, [window // 2] * 4, mode="reflect")
        y = F.pad(y, [window // 2] * 4, mode="reflect")
    taps = gaussian_window(window)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x.square()
    var_y = _filter_valid(y * y, taps) - mu_y.square()
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1)
    return (luminance * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """[N] SSIM per image (mean over the SSIM map and the channels); 1 for identical images."""
    _check_pair(x, y)
    window = window_size_for(min(x.shape[2:]))
    return _ssim_terms(x.float(), y.float(), data_range, window)[0].mean(dim=1)


def ms_ssim_scales(side: int) -> int:
    """Number of MS-SSIM scales an image of `side` px supports (1..5): the coarsest keeps side >= the window."""
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2 ** scales >= WINDOW_SIZE:
        scales += 1
    return scales


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0, pad: bool = False) -> torch.Tensor:
    """[N] multi-scale SSIM per image (channels averaged per scale); 1 for identical images.

    pad=True averages a map with one window centred on every pixel (reflect padding at every scale), not Wang et
    al.'s valid windows only: as a loss on small images the valid windows miss the borders (16 px: 6x6 of 16x16
    centres), which an optimiser then leaves unfitted (docs/PROJECTION.md §3)."""
    _check_pair(x, y)
    x, y = x.float(), y.float()
    side = min(x.shape[2:])
    scales = ms_ssim_scales(side)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float32, device=x.device)
    weights = weights / weights.sum()
    window = window_size_for(side)
    result = torch.ones(x.shape[0], dtype=torch.float32, device=x.device)
    for scale in range(scales):
        full, cs = _ssim_terms(x, y, data_range, window, pad)
        term = (full if scale == scales - 1 else cs).mean(dim=1).clamp(min=0)
        result = result * term ** weights[scale]
        if scale < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return result


__all__ = ["psnr", "ssim", "ms_ssim", "ms_ssim_scales", "gaussian_window"]
