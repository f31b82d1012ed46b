"""The synthesis network ws -> image, with the official progressive-growing `lod` (G_synthesis).

The official math it follows: docs/FORMATS.md §1.7-§1.10.

Layer i (0 .. num_layers-1) works at resolution 2^(i//2 + 2): layer 0 is the learned constant (or a dense layer),
odd layers are 3x3 convs, even layers >= 2 are up-convs (nearest-up + conv below 128 px, fused transposed conv at
>= 128 px with fused_scale='auto') followed by the blur. Every layer ends in the official epilogue
noise -> bias -> activation -> (pixel norm) -> instance norm -> style modulation.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import nn

from . import fp16_recipe
from .config import GeneratorConfig
from .layers import (EqualizedConv2d, EqualizedLinear, OpContext, Resample, activation_gain, bias_act,
                     instance_norm_modulate, pixel_norm, upscale2d_nearest)
from .ops.conv2d import conv2d, conv_transpose2d

NOISE_MODES = ("random", "const", "none")


def layer_resolution(layer_idx: int) -> int:
    """Resolution of synthesis layer `layer_idx`: 2^(layer_idx//2 + 2)."""
    return 2 ** (layer_idx // 2 + 2)


class SynthesisLayer(nn.Module):
    """One official synthesis layer: its producer (const | dense | conv | up-conv + blur) and its epilogue.

    Parameters (official scope `{res}x{res}/{Const|Dense|Conv|Conv0_up|Conv1}`): `const` [1, C, 4, 4] or
    `dense.weight` or `conv.weight` [out, in, 3, 3]; `noise_strength` [C] (Noise/weight); `bias` [C];
    `style.weight` [2C, dlatent_size] and `style.bias` [2C] (StyleMod).
    """

    def __init__(self, config: GeneratorConfig, layer_idx: int, kind: str, in_channels: int, out_channels: int,
                 ctx: OpContext) -> None:
        super().__init__()
        if kind not in ("const", "dense", "conv", "up"):
            raise ValueError(f"kind={kind!r} is invalid: expected 'const', 'dense', 'conv' or 'up'")
        self.ctx = ctx
        self.kind = kind
        self.layer_idx = layer_idx
        self.resolution = layer_resolution(layer_idx)
        self.channels = out_channels
        self.act = config.nonlinearity
        self.use_pixel_norm = config.use_pixel_norm
        self.use_instance_norm = config.use_instance_norm
        gain = activation_gain(config.nonlinearity)
        if kind == "const":
            self.const = nn.Parameter(torch.ones(1, out_channels, 4, 4))  # official initializer: ones
        elif kind == "dense":  # const_input_layer=False: gain sqrt(2)/4 as in the official code
            self.dense = EqualizedLinear(config.dlatent_size, out_channels * 16, ctx, gain=gain / 4,
                                         use_wscale=config.use_wscale, bias=False)
        else:
            self.conv = EqualizedConv2d(in_channels, out_channels, 3, ctx, gain=gain, use_wscale=config.use_wscale,
                                        bias=False)
        self.fused = kind == "up" and config.fused_up(self.resolution)
        self.bias_before_blur = kind == "up" and config.bias_before_blur
        self.instance_norm_eps = config.instance_norm_eps
        if kind == "up":
            self.resample = Resample(ctx, config.blur_filter)
        if config.use_noise:
            self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("noise_strength", None)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if config.use_styles:
            self.style = EqualizedLinear(config.dlatent_size, 2 * out_channels, ctx, gain=1.0,
                                         use_wscale=config.use_wscale)
        else:
            self.style = None

    def produce(self, x: Optional[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """The layer's main op (before the epilogue); x is ignored for const/dense layers."""
        if self.kind == "const":
            return self.const.expand(w.shape[0], -1, -1, -1).to(w.dtype)
        if self.kind == "dense":
            return self.dense(w).reshape(w.shape[0], self.channels, 4, 4)
        weight, impl = self.conv.weight, self.ctx.impl  # run-time scaling: the conv ops' weight transform
        if self.kind == "conv":
            return conv2d(x, weight, padding=1, impl=impl, transform=self.conv.weight_transform())
        if self.fused:
            # docs/FORMATS.md §1.8: [3,3,in,out] -> [3,3,out,in] -> pad + sum of 4 windows (no 0.25) -> transposed
            # conv, stride 2, SAME.
            x = conv_transpose2d(x, weight, stride=2, padding=1, impl=impl,
                                 transform=self.conv.weight_transform(transpose=True, fused=True))
        else:
            x = conv2d(upscale2d_nearest(x), weight, padding=1, impl=impl, transform=self.conv.weight_transform())
        if self.bias_before_blur:  # variant: blurring the bias changes the border pixels
            x = x + self.bias.view(1, -1, 1, 1).to(x.dtype)
        return self.resample.blur(x)

    def forward(self, x: Optional[torch.Tensor], w: torch.Tensor, noise: Optional[torch.Tensor]) -> torch.Tensor:
        """x [N, in, H, W] (None for layer 0), w [N, dlatent_size], noise [N or 1, 1, H', W'] or None."""
        x = self.produce(x, w)
        if noise is not None and self.noise_strength is not None:
            strength = self.noise_strength.view(1, -1, 1, 1).to(x.dtype)  # bf16: no float32 temporary of x
            if self.kind in ("conv", "up"):  # a fresh conv/blur output that autograd does not keep: add in place
                x = x.addcmul_(noise.to(x.dtype), strength)
            else:
                x = torch.addcmul(x, noise.to(x.dtype), strength)
        x = bias_act(x, None if self.bias_before_blur else self.bias, self.act, self.ctx, fp16_recipe.conv_clamp())
        if self.use_pixel_norm:
            x = pixel_norm(x)
        scale = shift = None
        if self.style is not None:
            s = self.style(w)
            scale = (s[:, :self.channels] + 1)[:, :, None, None]  # official "+1" at run time
            shift = s[:, self.channels:][:, :, None, None]
        return instance_norm_modulate(x, scale, shift, normalize=self.use_instance_norm, eps=self.instance_norm_eps)

    def extra_repr(self) -> str:
        return f"layer={self.layer_idx}, kind={self.kind}, res={self.resolution}, fused={self.fused}"


class SynthesisNetwork(nn.Module):
    """ws [N, num_layers, dlatent_size] -> images [N, num_channels, R', R'] with R' = resolution_at(lod).

    Buffers `noise{i}` [1, 1, H, W] are the official stored noise maps used by noise_mode='const'.
    """

    def __init__(self, config: GeneratorConfig, ctx: Optional[OpContext] = None) -> None:
        super().__init__()
        self.config = config
        self.ctx = ctx if ctx is not None else OpContext()
        self.num_layers = config.num_layers
        nf = config.nf
        layers = [SynthesisLayer(config, 0, "const" if config.const_input_layer else "dense", 0, nf(1), self.ctx),
                  SynthesisLayer(config, 1, "conv", nf(1), nf(1), self.ctx)]
        for level in range(1, config.max_lod + 1):
            layers.append(SynthesisLayer(config, 2 * level, "up", nf(level), nf(level + 1), self.ctx))
            layers.append(SynthesisLayer(config, 2 * level + 1, "conv", nf(level + 1), nf(level + 1), self.ctx))
        self.layers = nn.ModuleList(layers)
        # torgb[level]: ToRGB at resolution 4 * 2^level (official ToRGB_lod{max_lod - level}), 1x1 conv, gain 1.
        self.torgb = nn.ModuleList(
            EqualizedConv2d(nf(level + 1), config.num_channels, 1, self.ctx, gain=1.0, use_wscale=config.use_wscale)
            for level in range(config.max_lod + 1))
        if config.use_noise:  # as official: the stored noise maps exist only with use_noise
            for i in range(self.num_layers):
                res = layer_resolution(i)
                self.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))

    def const_noise(self) -> List[torch.Tensor]:
        """The stored per-layer noise maps (noise_mode='const')."""
        return [getattr(self, f"noise{i}") for i in range(self.num_layers)]

    def random_noise(self, n: int, num_active: int, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> List[torch.Tensor]:
        """Fresh noise maps [n, 1, H, W] for the first `num_active` layers (noise_mode='random', and the training
        loop's per-step noise): one per layer, or one per block shared by its two layers (noise_per_block)."""
        if self.config.noise_per_block:
            blocks = [torch.randn(n, 1, layer_resolution(2 * b), layer_resolution(2 * b), device=device, dtype=dtype)
                      for b in range((num_active + 1) // 2)]
            return [blocks[i // 2] for i in range(num_active)]
        return [torch.randn(n, 1, layer_resolution(i), layer_resolution(i), device=device, dtype=dtype)
                for i in range(num_active)]

    def _noise_inputs(self, n: int, ws: torch.Tensor, noise_mode: str, noise: Optional[Sequence[torch.Tensor]],
                      num_active: int) -> List[Optional[torch.Tensor]]:
        if noise is not None:
            if isinstance(noise, (list, tuple)) and len(noise) == self.num_layers // 2:
                noise = [noise[i // 2] for i in range(self.num_layers)]  # one map per block, used by both layers
            if not isinstance(noise, (list, tuple)) or len(noise) != self.num_layers:
                got = len(noise) if isinstance(noise, (list, tuple)) else type(noise).__name__
                raise ValueError(f"noise must be a list of num_layers={self.num_layers} tensors (one per layer) or "
                                 f"{self.num_layers // 2} (one per block), got {got}; None entries mean no noise")
            for i, t in enumerate(noise):
                res = layer_resolution(i)
                if t is None:  # no noise for this layer (e.g. a layer above the current lod, which never runs)
                    continue
                if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[0] not in (1, n) or \
                        tuple(t.shape[1:]) != (1, res, res):
                    shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                    raise ValueError(f"noise[{i}] has shape {shape}: expected [{n} or 1, 1, {res}, {res}]")
            return list(noise[:num_active])
        if noise_mode == "none" or not self.config.use_noise:
            return [None] * num_active
        if noise_mode == "const":
            return self.const_noise()[:num_active]
        if noise_mode == "random":
            return self.random_noise(n, num_active, ws.device, ws.dtype)
        raise ValueError(f"noise_mode={noise_mode!r} is invalid: expected one of {NOISE_MODES}")

    def forward(self, ws: torch.Tensor, lod: float = 0.0, noise_mode: str = "random",
                noise: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Returns images at resolution_at(lod); layers above the current level never run.

        For lod in (k, k+1) the output (resolution R/2^k) is lerp(ToRGB(x at R/2^k), up2(ToRGB(x at R/2^(k+1))),
        frac(lod)): the official 'recursive' result before its final upscale to R (docs/FORMATS.md §1.10).
        """
        cfg = self.config
        if not isinstance(ws, torch.Tensor) or ws.ndim != 3 or ws.shape[1:] != (self.num_layers, cfg.dlatent_size):
            shape = list(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
            raise ValueError(f"ws has shape {shape}: expected [N, num_layers={self.num_layers}, "
                             f"dlatent_size={cfg.dlatent_size}]")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode={noise_mode!r} is invalid: expected one of {NOISE_MODES}")
        lod = cfg.check_lod(lod)
        k = int(math.floor(lod))
        frac = lod - k
        top = cfg.max_lod - k  # level of the output resolution
        noises = self._noise_inputs(ws.shape[0], ws, noise_mode, noise, 2 * top + 2)

        x = None
        img_lo = None
        # fp16 recipe: each layer (and ToRGB) in float16 or float32 by its resolution; no-op otherwise
        at, R = fp16_recipe.run_at_resolution, cfg.resolution
        for level in range(top + 1):
            for i in (2 * level, 2 * level + 1):
                x = at(layer_resolution(i), R, self.layers[i], x, ws[:, i], noises[i])
            if frac > 0 and level == top - 1:
                img_lo = at(4 << level, R, self.torgb[level], x)
        img = at(4 << top, R, self.torgb[top], x)
        if img_lo is not None:
            img = torch.lerp(img, upscale2d_nearest(img_lo).to(img.dtype), frac)
        return img


__all__ = ["SynthesisNetwork", "SynthesisLayer", "layer_resolution", "NOISE_MODES"]
