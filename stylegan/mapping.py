"""The mapping network z (+ labels) -> w, broadcast to every synthesis layer (official G_mapping).

Its normalisation and epsilons: docs/FORMATS.md §1.7.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from stylegan.ops.autocast import run_in_float32

from .config import GeneratorConfig
from .layers import EqualizedLinear, OpContext, activation_gain, pixel_norm


class MappingNetwork(nn.Module):
    """z [N, latent_size] (+ c [N, label_size]) -> ws [N, num_layers, dlatent_size].

    Label embedding `embed` [label_size, latent_size] (official LabelConcat/weight, used unscaled) is concatenated
    AFTER z; then pixel norm (if normalize_latents) and `mapping_layers` equalized-lr dense layers with lrmul
    `mapping_lrmul` for weight and bias, each followed by the activation (also the last one).
    """

    def __init__(self, config: GeneratorConfig, ctx: Optional[OpContext] = None) -> None:
        super().__init__()
        self.config = config
        self.ctx = ctx if ctx is not None else OpContext()
        self.num_layers = config.num_layers
        if config.label_size:
            self.embed = nn.Parameter(torch.randn(config.label_size, config.latent_size))
        else:
            self.register_parameter("embed", None)
        in_features = config.latent_size * (2 if config.label_size else 1)
        gain = activation_gain(config.mapping_nonlinearity)
        layers = []
        for i in range(config.mapping_layers):
            out_features = config.dlatent_size if i == config.mapping_layers - 1 else config.mapping_fmaps
            layers.append(EqualizedLinear(in_features, out_features, self.ctx, gain=gain, lrmul=config.mapping_lrmul,
                                          use_wscale=config.use_wscale, act=config.mapping_nonlinearity))
            in_features = out_features
        self.layers = nn.ModuleList(layers)

    def check_inputs(self, z: torch.Tensor, c: Optional[torch.Tensor]) -> None:
        """ValueError naming z or c when their shapes do not fit the config."""
        cfg = self.config
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != cfg.latent_size:
            shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z has shape {shape}: expected [N, latent_size={cfg.latent_size}]")
        if cfg.label_size:
            if c is None or not isinstance(c, torch.Tensor) or c.shape != (z.shape[0], cfg.label_size):
                shape = list(c.shape) if isinstance(c, torch.Tensor) else c
                raise ValueError(f"c (labels) is {shape}: expected a tensor [N={z.shape[0]}, "
                                 f"label_size={cfg.label_size}]")
        elif c is not None and (not isinstance(c, torch.Tensor) or c.numel() != 0):
            raise ValueError("c (labels) was given but label_size=0: pass c=None")

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Returns ws [N, num_layers, dlatent_size] (the same w tiled over layers, as the official broadcast).
        Always float32, under mixed precision too: stylegan2-ada keeps its mapping network in float32, it costs
        little (dense layers on [N, 512]), and in bf16 its gradient, which collects the style gradients of every
        layer, came out twice as far from fp32's as with it in float32 (docs/PERFORMANCE.md §8.9)."""
        self.check_inputs(z, c)
        return run_in_float32(self._forward, z, c)

    def _forward(self, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        x = z
        if self.embed is not None:
            x = torch.cat([z, c.to(z.dtype) @ self.embed], dim=1)
        if self.config.normalize_latents:
            x = pixel_norm(x)
        for layer in self.layers:
            x = layer(x)
        return x[:, None, :].repeat(1, self.num_layers, 1)


__all__ = ["MappingNetwork"]
