"""Perceptual path length (PPL, Karras et al. 2019 section 4.1): how much the image changes, perceptually, for a
small step of the latent, averaged along interpolation paths.

Protocol (the StyleGAN paper; NVlabs stylegan2-ada-pytorch `metrics/perceptual_path_length.py`, names
`ppl_zfull`, `ppl_wfull`, `ppl_zend`, `ppl_wend`): per sample draw z0, z1 and t ~ U[0, 1] ('full') or t = 0
('end'); interpolate by slerp in Z (both endpoints normalised) or by lerp in W (after the mapping); make the images
at t and t + epsilon (epsilon = 1e-4) with the same freshly drawn noise maps (the official code re-randomises the
stored noise and uses noise_mode='const', so one noise per batch); optionally crop the face region (rows 3/8-7/8,
columns 2/8-6/8 of the image: `crop`, the paper's FFHQ setting); box-downsample to 256 px when larger; map [-1, 1]
to [0, 255], repeat one channel to three; distance = LPIPS(VGG16) / epsilon^2. PPL = the mean of the distances
between their 1st (lower) and 99th (higher) percentiles. Latents, t, labels and noise come from `seed`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
import torch

EPSILON = 1e-4
LPIPS_RESOLUTION = 256
SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the directions of a and b ([N, D]) at t ([N, 1]); the result has unit length."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def face_crop(img: torch.Tensor) -> torch.Tensor:
    """The paper's FFHQ face crop of square images [N, C, S, S]: rows 3/8..7/8, columns 2/8..6/8."""
    c = img.shape[2] // 8
    return img[:, :, c * 3:c * 7, c * 2:c * 6]


def to_lpips_range(img: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> what the VGG16 LPIPS call takes: area-downsampled to <= 256 px (integer factor),
    [0, 255], three channels."""
    factor = img.shape[2] // LPIPS_RESOLUTION
    if factor > 1:
        n, ch, h, w = img.shape
        img = img.reshape(n, ch, h // factor, factor, w // factor, factor).mean([3, 5])
    img = (img + 1) * (255 / 2)
    return img.repeat(1, 3, 1, 1) if img.shape[1] == 1 else img


def filtered_mean(distances: np.ndarray) -> float:
    """Mean of the distances within their [1st (lower), 99th (higher)] percentiles: the official outlier rule."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"distances of shape {list(d.shape)}: expected a non-empty 1-D array")
    lo = np.percentile(d, 1, method="lower")
    hi = np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


@dataclass(frozen=True)
class PathLengthBatch:
    """One batch's random draws (on the CPU, from the batch's own generator, so ranks split batches freely)."""

    z0: torch.Tensor
    z1: torch.Tensor
    t: torch.Tensor
    c: Optional[torch.Tensor]
    noise: Optional[List[torch.Tensor]]


def noise_shapes(G: torch.nn.Module) -> Optional[List[torch.Size]]:
    """Shapes of G's stored noise maps (one per layer, or per block for noise_per_block), None without noise."""
    if not getattr(G.config, "use_noise", False):
        return None
    shapes = [t.shape for t in G.synthesis.const_noise()]
    return shapes[::2] if getattr(G.config, "noise_per_block", False) else shapes


def path_distances(G: torch.nn.Module, lpips: Callable[[torch.Tensor], torch.Tensor], batch: PathLengthBatch,
                   space: str, sampling: str, epsilon: float = EPSILON, crop: bool = False,
                   lod: float = 0.0) -> torch.Tensor:
    """LPIPS(img(t), img(t + epsilon)) / epsilon^2 for each sample of `batch` ([B] float32).

    `lpips(img_0_255)` returns the LPIPS features ([N, F]: the VGG16 call with return_lpips=True).
    """
    if space not in SPACES or sampling not in SAMPLINGS:
        raise ValueError(f"space={space!r}, sampling={sampling!r}: expected one of {SPACES} and {SAMPLINGS}")
    device = G.w_avg.device if hasattr(G, "w_avg") else next(G.parameters()).device
    z0, z1, c = batch.z0.to(device), batch.z1.to(device), batch.c
    t = (batch.t if sampling == "full" else torch.zeros_like(batch.t)).to(device).unsqueeze(1)
    cc = None if c is None else torch.cat([c, c]).to(device)
    if space == "w":
        w0, w1 = G.mapping(torch.cat([z0, z1]), cc).chunk(2)
        tt = t.unsqueeze(2)
        ws = torch.cat([w0.lerp(w1, tt), w0.lerp(w1, tt + epsilon)])
    else:
        ws = G.mapping(torch.cat([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)]), cc)
    noise = None if batch.noise is None else [n.to(device) for n in batch.noise]
    img = G.synthesis(ws, lod=lod, noise_mode="none" if noise is None else "const", noise=noise)
    if crop:
        if img.shape[2] != img.shape[3]:
            raise ValueError(f"the face crop needs square images, got {list(img.shape[2:])}")
        img = face_crop(img)
    f0, f1 = lpips(to_lpips_range(img.to(torch.float32))).chunk(2)
    return (f0 - f1).square().sum(1) / epsilon ** 2
