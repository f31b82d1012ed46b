"""TorchScript stand-ins of NVIDIA's feature networks, built in the tests (no download): the official call signature
(`return_features`, `no_output_bias`, `resize_images`, `return_lpips`), deterministic weights, small feature size."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

STANDIN_POOL = 8  # images are area-resized to 8x8 before the random features: any input size works, like 299 px


class StandinDetector(torch.nn.Module):
    """features = relu(area_resize(img / 255) @ W1); probabilities = softmax(features @ W2); lpips = unit-normalised
    features. A fixed nonlinear map of the pixels, so two image sets with different content differ in features."""

    def __init__(self, feature_dim: int = 32, num_classes: int = 10, channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n_in = channels * STANDIN_POOL * STANDIN_POOL
        self.register_buffer("w1", torch.randn(n_in, feature_dim, generator=g) / n_in ** 0.5)
        self.register_buffer("b1", torch.randn(feature_dim, generator=g) * 0.1)
        self.register_buffer("w2", torch.randn(feature_dim, num_classes, generator=g))
        self.pool = STANDIN_POOL  # an attribute: TorchScript cannot read a module-level global

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False,
                resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        x = img.to(torch.float32) / 255.0
        x = F.adaptive_avg_pool2d(x, [self.pool, self.pool]).flatten(1)
        features = torch.relu(x @ self.w1 + self.b1)
        if return_lpips:
            return features / (features.norm(p=2, dim=1, keepdim=True) + 1e-8)
        if return_features:
            return features
        return torch.softmax(features @ self.w2, dim=1)


class WrongShapeDetector(torch.nn.Module):
    """Answers with a 1-D tensor: the loader must refuse it."""

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False,
                resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        return img.to(torch.float32).flatten(1).mean(1)


def write_standin(path: Path, module: torch.nn.Module = None) -> Path:
    """Saves `module` (default: a StandinDetector) as TorchScript at `path`; returns the path."""
    torch.jit.script(module if module is not None else StandinDetector()).save(str(path))
    return path
