"""An encoder image -> W+ (ws [N, num_layers, dlatent_size]): the learned starting point of a projection
(`stylegan project --init encoder`), as Puzer's stylegan-encoder and Image2StyleGAN practice: a network that
guesses the latents, then the optimisation of projector.py from that guess.

Architecture (ours; sized by the generator it serves): a discriminator-shaped CNN at the generator's resolution and
widths (nf(stage) of its config at every resolution). fromRGB 1x1 conv, then per resolution R > 4 two 3x3 convs
(nf(R) -> nf(R), nf(R) -> nf(R/2)) with leaky ReLU 0.2 and a 2x2 average pool; at 4x4 one 3x3 conv, flatten,
a dense layer of nf(4) * 4 (one-hot label appended for a conditional network) and a dense output of
num_layers x dlatent_size. It predicts ws in a normalised space, (w - w_mean) / w_std per dimension of mapped
latents, so every dimension of the loss weighs alike; `forward` maps back to W+.

File (`stylegan encoder train --out`): a torch.save dict (tensors, strings and numbers only: loads with
weights_only=True) with 'kind' = FILE_KIND, the encoder's config and weights, the generator's weight digest, its
network file's sha256 and config, and the training config and log; refused for any other generator.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..atomic_write import atomic_write_bytes
from ..config import JsonConfig

FILE_KIND = "stylegan-encoder"
FILE_VERSION = 1
LRELU_SLOPE = 0.2


class EncoderFileError(ValueError):
    """An encoder file cannot be read, is not an encoder, or belongs to another network."""


@dataclass(frozen=True)
class EncoderConfig(JsonConfig):
    """What fixes the encoder's shape: the generator's image and latent geometry and its widths."""

    resolution: int
    num_channels: int
    num_layers: int
    dlatent_size: int
    label_size: int
    fmap_base: int
    fmap_max: int
    fmap_decay: float = 1.0

    def __post_init__(self) -> None:
        log2 = math.log2(self.resolution) if isinstance(self.resolution, int) and self.resolution > 0 else 0.5
        if log2 != int(log2) or self.resolution < 4:
            raise ValueError(f"resolution={self.resolution!r} is invalid: expected a power of two >= 4")
        for name in ("num_channels", "num_layers", "dlatent_size", "fmap_base", "fmap_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: expected an int >= 1")
        if isinstance(self.label_size, bool) or not isinstance(self.label_size, int) or self.label_size < 0:
            raise ValueError(f"label_size={self.label_size!r} is invalid: expected an int >= 0")

    @classmethod
    def for_generator(cls, G: nn.Module) -> "EncoderConfig":
        c = G.config
        return cls(resolution=int(c.resolution), num_channels=int(c.num_channels), num_layers=int(G.num_layers),
                   dlatent_size=int(c.dlatent_size), label_size=int(c.label_size), fmap_base=int(c.fmap_base),
                   fmap_max=int(c.fmap_max), fmap_decay=float(c.fmap_decay))

    def nf(self, resolution: int) -> int:
        """Feature maps at `resolution`: the generator's nf() of that stage (stage = log2(resolution) - 1)."""
        stage = int(math.log2(resolution)) - 1
        return min(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_max)


class Encoder(nn.Module):
    """images [N, C, R, R] in [-1, 1] (+ one-hot labels [N, label_size] for a conditional generator) -> ws."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        R = config.resolution
        self.from_image = nn.Conv2d(config.num_channels, config.nf(R), 1)
        blocks = []
        res = R
        while res > 4:
            blocks.append(nn.Sequential(nn.Conv2d(config.nf(res), config.nf(res), 3, padding=1),
                                        nn.LeakyReLU(LRELU_SLOPE),
                                        nn.Conv2d(config.nf(res), config.nf(res // 2), 3, padding=1),
                                        nn.LeakyReLU(LRELU_SLOPE), nn.AvgPool2d(2)))
            res //= 2
        blocks.append(nn.Sequential(nn.Conv2d(config.nf(4), config.nf(4), 3, padding=1), nn.LeakyReLU(LRELU_SLOPE),
                                    nn.Flatten()))
        self.blocks = nn.Sequential(*blocks)
        hidden = config.nf(4) * 4
        self.hidden = nn.Linear(config.nf(4) * 16 + config.label_size, hidden)
        self.out = nn.Linear(hidden, config.num_layers * config.dlatent_size)
        # The normalisation of W+: set from mapped latents before training (set_w_statistics).
        self.register_buffer("w_mean", torch.zeros(config.dlatent_size))
        self.register_buffer("w_std", torch.ones(config.dlatent_size))

    def set_w_statistics(self, w_mean: torch.Tensor, w_std: torch.Tensor) -> None:
        with torch.no_grad():
            self.w_mean.copy_(w_mean)
            self.w_std.copy_(w_std)

    def normalize(self, ws: torch.Tensor) -> torch.Tensor:
        """ws -> the space the encoder predicts in: (w - w_mean) / w_std per dimension."""
        return (ws - self.w_mean) / self.w_std

    def forward_normalized(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised ws [N, num_layers, dlatent_size] of images in [-1, 1]."""
        cfg = self.config
        x = F.leaky_relu(self.from_image(images), LRELU_SLOPE)
        x = self.blocks(x)
        if cfg.label_size:
            if labels is None or tuple(labels.shape) != (images.shape[0], cfg.label_size):
                raise ValueError(f"the encoder is label-conditional: expected labels [{images.shape[0]}, "
                                 f"{cfg.label_size}], got {None if labels is None else list(labels.shape)}")
            x = torch.cat([x, labels.to(x)], dim=1)
        x = F.leaky_relu(self.hidden(x), LRELU_SLOPE)
        return self.out(x).view(-1, cfg.num_layers, cfg.dlatent_size)

    def forward(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ws [N, num_layers, dlatent_size] in W+ of images in [-1, 1]."""
        return self.forward_normalized(images, labels) * self.w_std + self.w_mean


@dataclass
class EncoderFile:
    """An encoder and the generator it was trained for."""

    encoder: Encoder
    G_sha256: str
    network_sha256: str
    G_config: Dict[str, Any] = field(default_factory=dict)
    train_config: Dict[str, Any] = field(default_factory=dict)
    log: List[Dict[str, Any]] = field(default_factory=list)


def save_encoder(path: Union[str, os.PathLike], enc_file: EncoderFile) -> None:
    """Writes the encoder file atomically."""
    enc = enc_file.encoder
    payload = {"kind": FILE_KIND, "version": FILE_VERSION, "config": enc.config.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in enc.state_dict().items()},
               "G_sha256": enc_file.G_sha256, "network_sha256": enc_file.network_sha256,
               "G_config": enc_file.G_config, "train_config": enc_file.train_config, "log": enc_file.log}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_encoder(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> EncoderFile:
    """Reads an encoder file; EncoderFileError for a missing file, not a torch file, or not an encoder."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EncoderFileError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors of every kind: the file is not what we wrote
        raise EncoderFileError(f"{path} is not an encoder file ({type(exc).__name__}: {str(exc)[:200]}): expected "
                               f"the output of `stylegan encoder train`") from None
    if not isinstance(payload, dict) or payload.get("kind") != FILE_KIND:
        raise EncoderFileError(f"{path} is not an encoder file (no kind={FILE_KIND!r} record): expected the output "
                               f"of `stylegan encoder train`")
    if payload.get("version") != FILE_VERSION:
        raise EncoderFileError(f"{path} is encoder file version {payload.get('version')!r}: this stylegan reads "
                               f"version {FILE_VERSION}")
    try:
        encoder = Encoder(EncoderConfig.from_dict(payload["config"]))
        encoder.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise EncoderFileError(f"{path} is a damaged encoder file ({type(exc).__name__}: {str(exc)[:200]})") \
            from None
    return EncoderFile(encoder.to(device).eval(), str(payload.get("G_sha256", "")),
                       str(payload.get("network_sha256", "")), dict(payload.get("G_config", {})),
                       dict(payload.get("train_config", {})), list(payload.get("log", [])))


def check_encoder_for(enc_file: EncoderFile, G: nn.Module, G_sha256: str, path: str, network: str,
                      network_sha256: str = "") -> None:
    """EncoderFileError unless the encoder was trained for G (its weight digest), naming both networks' hashes."""
    if enc_file.G_sha256 != G_sha256:
        raise EncoderFileError(
            f"{path} was trained for another network (network file sha256 {enc_file.network_sha256[:12] or '?'}, "
            f"weights sha256 {enc_file.G_sha256[:12]}) than {network} (network file sha256 "
            f"{network_sha256[:12] or '?'}, weights sha256 {G_sha256[:12]}): train one for it with "
            f"`stylegan encoder train --network {network}`")
    expected = EncoderConfig.for_generator(G)
    if enc_file.encoder.config != expected:  # equal weights imply equal geometry; a hand-edited file may not
        raise EncoderFileError(f"{path}: encoder config {enc_file.encoder.config.to_dict()} does not fit {network} "
                               f"({expected.to_dict()})")


__all__ = ["Encoder", "EncoderConfig", "EncoderFile", "EncoderFileError", "save_encoder", "load_encoder",
           "check_encoder_for", "FILE_KIND"]
