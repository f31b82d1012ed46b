"""The StyleGAN discriminator (official D_basic): FromRGB, blocks down to 4x4, mbstd, dense head.

The official math it follows: docs/FORMATS.md §1.8-§1.10.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from . import fp16_recipe
from .config import DiscriminatorConfig
from .layers import (EqualizedConv2d, EqualizedLinear, EqualizedWeight, OpContext, Resample, SwitchableImpl,
                     activation_gain, bias_act, minibatch_stddev)
from .ops.conv2d import conv2d


class DownConv(EqualizedWeight):
    """Official Conv1_down: blur -> 3x3 conv + 2x2 box average (or the fused stride-2 conv) -> bias -> act.

    weight [out, in, 3, 3] (TF [3,3,in,out] permuted 3,2,0,1) in both modes; the fused kernel is built at run
    time (pad + sum of 4 windows, x0.25: equal to conv then box average, docs/FORMATS.md §1.8).
    """

    def __init__(self, in_channels: int, out_channels: int, fused: bool, ctx: OpContext, config: DiscriminatorConfig
                 ) -> None:
        super().__init__([out_channels, in_channels, 3, 3], in_channels * 9, activation_gain(config.nonlinearity),
                         1.0, config.use_wscale, out_channels)
        self.ctx = ctx
        self.fused = fused
        self.act = config.nonlinearity
        self.resample = Resample(ctx, config.blur_filter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # blur -> conv: the conv op applies the blur itself (`pre`) and recomputes it in backward, so the blurred
        # map is not kept alive per call; run-time weight (x gain, fused kernel x 0.25) = its weight transform
        impl, blur = self.ctx.impl, self.resample.blur_op()
        if self.fused:
            x = conv2d(x, self.weight, stride=2, padding=1, impl=impl,
                       transform=self.weight_transform(fused=True, fused_gain=0.25), pre=blur)
        else:
            x = self.resample.box_down(conv2d(x, self.weight, padding=1, impl=impl, transform=self.weight_transform(),
                                              pre=blur))
        return bias_act(x, self.scaled_bias(), self.act, self.ctx, fp16_recipe.conv_clamp())

    def extra_repr(self) -> str:
        o, i, _, _ = self.weight.shape
        return f"in={i}, out={o}, fused={self.fused}, act={self.act}"


class DiscriminatorBlock(nn.Module):
    """Block at resolution res >= 8 (official scope `{res}x{res}`): Conv0 (C -> C) then Conv1_down (C -> C')."""

    def __init__(self, config: DiscriminatorConfig, res: int, ctx: OpContext) -> None:
        super().__init__()
        level = int(math.log2(res)) - 2
        c_in, c_out = config.nf(level + 1), config.nf(level)
        c_mid = c_out if config.channels_change_in_conv0 else c_in  # variant: rosinality changes C in conv0
        self.conv0 = EqualizedConv2d(c_in, c_mid, 3, ctx, gain=activation_gain(config.nonlinearity),
                                     use_wscale=config.use_wscale, act=config.nonlinearity)
        self.conv1 = DownConv(c_mid, c_out, config.fused_down(res), ctx, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch stddev -> Conv 3x3 -> Dense0 -> Dense1 (-> label switch)."""

    def __init__(self, config: DiscriminatorConfig, ctx: OpContext) -> None:
        super().__init__()
        gain = activation_gain(config.nonlinearity)
        self.mbstd_group_size = config.mbstd_group_size
        self.mbstd_whole_batch = config.mbstd_whole_batch
        self.mbstd_num_features = config.mbstd_num_features
        extra = config.mbstd_num_features if config.mbstd_group_size > 1 else 0
        self.conv = EqualizedConv2d(config.nf(1) + extra, config.nf(1), 3, ctx, gain=gain,
                                    use_wscale=config.use_wscale, act=config.nonlinearity)
        self.dense0 = EqualizedLinear(config.nf(1) * 16, config.nf(0), ctx, gain=gain, use_wscale=config.use_wscale,
                                      act=config.nonlinearity)
        self.dense1 = EqualizedLinear(config.nf(0), max(config.label_size, 1), ctx, gain=1.0,
                                      use_wscale=config.use_wscale)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        if self.mbstd_group_size > 1:
            group = x.shape[0] if self.mbstd_whole_batch else self.mbstd_group_size
            x = minibatch_stddev(x, group, self.mbstd_num_features)
        x = self.conv(x)
        x = self.dense0(x.flatten(1))  # NCHW flatten, as the official dense
        x = self.dense1(x)
        if c is not None:
            x = (x * c.to(x.dtype)).sum(dim=1, keepdim=True)  # official LabelSwitch
        return x


class Discriminator(SwitchableImpl, nn.Module):
    """img [N, num_channels, R', R'] (R' = resolution_at(lod)) (+ labels) -> scores [N, 1].

    For lod in (k, k+1) the first block's output is mixed with FromRGB of the 2x2-box-downsampled image with
    weight frac(lod) (official lerp_clip after the first block, docs/FORMATS.md §1.10). Minibatch stddev uses the
    official strided groups and raises ValueError when the batch is not divisible by min(mbstd_group_size, N), as
    the official network cannot run such a batch either.
    """

    def __init__(self, config: Optional[DiscriminatorConfig] = None, impl: str = "auto") -> None:
        super().__init__()
        if config is None:
            config = DiscriminatorConfig()
        if not isinstance(config, DiscriminatorConfig):
            raise TypeError(f"config must be a DiscriminatorConfig, got {type(config).__name__}")
        self.config = config
        self._ctx = OpContext(impl)
        gain = activation_gain(config.nonlinearity)
        # fromrgb[level]: FromRGB at resolution 4 * 2^level (official FromRGB_lod{max_lod - level}).
        self.fromrgb = nn.ModuleList(
            EqualizedConv2d(config.num_channels, config.nf(level + 1), 1, self._ctx, gain=gain,
                            use_wscale=config.use_wscale,
                            act=config.nonlinearity if config.from_rgb_activate else "linear")
            for level in range(config.max_lod + 1))
        # blocks[level - 1]: the block at resolution 4 * 2^level, level >= 1.
        self.blocks = nn.ModuleList(DiscriminatorBlock(config, 4 << level, self._ctx)
                                    for level in range(1, config.max_lod + 1))
        self.epilogue = DiscriminatorEpilogue(config, self._ctx)
        self.resample = Resample(self._ctx, None)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None, lod: float = 0.0) -> torch.Tensor:
        """Returns scores [N, 1] for images at resolution_at(lod); blocks above that resolution never run."""
        cfg = self.config
        lod = cfg.check_lod(lod)
        k = int(math.floor(lod))
        frac = lod - k
        res = cfg.resolution >> k
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[1:] != (cfg.num_channels, res, res):
            shape = list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"img has shape {shape}: expected [N, num_channels={cfg.num_channels}, {res}, {res}] "
                             f"(resolution_at(lod={lod}))")
        if cfg.label_size:
            if not isinstance(c, torch.Tensor) or c.shape != (img.shape[0], cfg.label_size):
                shape = list(c.shape) if isinstance(c, torch.Tensor) else c
                raise ValueError(f"c (labels) is {shape}: expected a tensor [N={img.shape[0]}, "
                                 f"label_size={cfg.label_size}]")
        elif c is not None and (not isinstance(c, torch.Tensor) or c.numel() != 0):
            raise ValueError("c (labels) was given but label_size=0: pass c=None")
        else:
            c = None

        top = cfg.max_lod - k
        # fp16 recipe: each block (and FromRGB) in float16 or float32 by its resolution; no-op otherwise
        at, R = fp16_recipe.run_at_resolution, cfg.resolution
        x = at(4 << top, R, self.fromrgb[top], img)
        for level in range(top, 0, -1):
            x = at(4 << level, R, self.blocks[level - 1], x)
            if level == top and frac > 0:
                x_lo = at(2 << level, R, self.fromrgb[level - 1], self.resample.box_down(img))
                x = torch.lerp(x, x_lo.to(x.dtype), frac)
        return at(4, R, self.epilogue, x, c)


__all__ = ["Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "DownConv"]
