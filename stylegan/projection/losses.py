"""What projection minimises, per target image: LPIPS (NVIDIA's VGG16, as projector.py) or a weight-free pixel
loss (MSE + 1 - MS-SSIM), and the 'auto' rule that picks between them.

A loss object holds its targets and maps generator images [N, C, H, W] in [-1, 1] to a dict of [N] terms whose
'loss' entry is what the optimiser sums.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Tuple, Union

import torch

from ..download import cached_name, download_cache_dir, is_url
from ..feature_nets import FEATURE_NETS, FeatureNet, load_feature_net
from ..image_similarity import ms_ssim
from ..metrics.path_length import to_lpips_range
from .targets import uint8_to_float

Terms = Dict[str, torch.Tensor]


class LpipsLoss:
    """LPIPS distance to the targets: squared difference of the return_lpips=True features summed over features
    (images area-downsampled to 256 px when larger), plus mse_weight x MSE in [-1, 1] when mse_weight > 0."""

    name = "lpips"

    def __init__(self, vgg16: FeatureNet, targets_u8: torch.Tensor, mse_weight: float = 0.0) -> None:
        self.vgg16 = vgg16
        self.targets = uint8_to_float(targets_u8)
        self.mse_weight = float(mse_weight)
        with torch.no_grad():
            self.target_features = vgg16.lpips_features(to_lpips_range(self.targets))

    def __call__(self, images: torch.Tensor) -> Terms:
        features = self.vgg16.lpips_features(to_lpips_range(images.to(torch.float32)))
        lpips = (self.target_features.to(features.device) - features).square().sum(dim=1)
        terms = {"lpips": lpips}
        loss = lpips
        if self.mse_weight > 0:
            terms["mse"] = (images.float() - self.targets.to(images.device)).square().mean(dim=(1, 2, 3))
            loss = loss + self.mse_weight * terms["mse"]
        terms["loss"] = loss
        return terms


class PixelLoss:
    """Weight-free loss: MSE (images in [-1, 1]) + (1 - MS-SSIM) against the targets; MS-SSIM with a window
    centred on every pixel (ms_ssim pad=True), so the borders count as much as the centre."""

    name = "pixel"

    def __init__(self, targets_u8: torch.Tensor) -> None:
        self.targets = uint8_to_float(targets_u8)

    def __call__(self, images: torch.Tensor) -> Terms:
        targets = self.targets.to(images.device)
        images = images.float()
        mse = (images - targets).square().mean(dim=(1, 2, 3))
        similarity = ms_ssim(images, targets, data_range=2.0, pad=True)
        return {"mse": mse, "ms_ssim": similarity, "loss": mse + (1.0 - similarity)}


def vgg16_available(source: Optional[Union[str, os.PathLike]]) -> bool:
    """True when a VGG16 file is given (path or URL) or the official one is already in the download cache."""
    if source is not None:
        return True
    return (download_cache_dir() / cached_name(FEATURE_NETS["vgg16"].url)).is_file()


def make_loss(kind: str, targets_u8: torch.Tensor, vgg16: Optional[Union[str, os.PathLike]] = None,
              device: Union[str, torch.device] = "cpu", mse_weight: float = 0.0
              ) -> Tuple[Union[LpipsLoss, PixelLoss], Optional[str]]:
    """(loss, note): kind 'lpips' needs the VGG16 file (FeatureNetError says which and where), 'pixel' needs none,
    'auto' is lpips when vgg16_available(vgg16), else pixel with a one-line note saying so."""
    note = None
    if kind == "auto":
        kind = "lpips" if vgg16_available(vgg16) else "pixel"
        if kind == "pixel":
            note = (f"no VGG16 file given or cached: using the pixel loss (MSE + MS-SSIM); pass --vgg16 PATH|URL "
                    f"({FEATURE_NETS['vgg16'].url}) for the official LPIPS loss")
    if kind == "lpips":
        source = vgg16
        if source is not None and not is_url(str(source)):
            source = os.fspath(source)
        return LpipsLoss(load_feature_net(source, "vgg16", device), targets_u8.to(device), mse_weight), note
    if kind == "pixel":
        if mse_weight:
            note = ((note + "; ") if note else "") + "mse_weight applies to the LPIPS loss only (pixel has its MSE)"
        return PixelLoss(targets_u8.to(device)), note
    raise ValueError(f"loss={kind!r} is invalid: expected one of auto, lpips, pixel")


__all__ = ["LpipsLoss", "PixelLoss", "make_loss", "vgg16_available"]
