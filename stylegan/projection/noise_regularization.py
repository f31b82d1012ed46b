"""Keeping optimised noise maps noise-like (NVlabs stylegan2-ada-pytorch `projector.py`): the multi-scale
autocorrelation penalty and the per-step renormalisation to zero mean and unit variance.

Penalty per map and sample: at every scale (the map, then 2x2 average-pooled while the side is > 8 px) the squared
mean of noise * (noise shifted by one pixel, wrapping) along x and along y, summed over scales and maps. The
official code works on [1, 1, H, W] maps of one image; here maps are [N, 1, H, W] and every sample gets its own sum.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

SMALLEST_SIDE = 8  # the pyramid stops at the first scale with side <= 8 px


def noise_regularization(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """[N] the autocorrelation penalty of each sample's maps (each [N, 1, H, W])."""
    total = None
    for noise in maps:
        while True:
            for dim in (3, 2):
                term = (noise * torch.roll(noise, shifts=1, dims=dim)).mean(dim=(1, 2, 3)).square()
                total = term if total is None else total + term
            if noise.shape[2] <= SMALLEST_SIDE:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    if total is None:
        raise ValueError("noise_regularization needs at least one noise map")
    return total


@torch.no_grad()
def normalize_noise_(maps: Sequence[torch.Tensor]) -> None:
    """In place: each sample's map minus its mean, times rsqrt of its mean square (official order)."""
    for noise in maps:
        noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
        noise *= noise.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()


__all__ = ["noise_regularization", "normalize_noise_"]
