"""Building blocks shared by the StyleGAN networks: equalized-lr dense/conv, resampling, normalizations, mbstd.

Why one file of small pieces: the official networks (NVlabs networks_stylegan.py, docs/FORMATS.md §1.6-§1.9) are built
from a handful of primitives; each is written once here with the exact official math, on top of the fused ops
(`stylegan.ops`) where they express that math, and torch convolutions where the math is a convolution.

Every op call takes its implementation from an `OpContext` owned by the root network (Generator/Discriminator),
so `G.impl = 'ref'` switches every layer at once without a process-global flag.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from stylegan import fp16_recipe, ops
from stylegan.ops.build import VALID_IMPLS
from stylegan.ops.conv2d import WeightTransform, conv2d
from stylegan.ops.linear import linear
from stylegan.ops.upfirdn2d import filter2d_adjoint

LRELU_ALPHA = 0.2  # official leaky ReLU slope: max(x, 0.2x), no extra gain (docs/FORMATS.md §1.7)
PIXEL_NORM_EPS = 1e-8  # docs/FORMATS.md §1.7
INSTANCE_NORM_EPS = 1e-8  # docs/FORMATS.md §1.7 (rosinality: 1e-5, config field instance_norm_eps, §2.5)
MBSTD_EPS = 1e-8  # docs/FORMATS.md §1.9


class OpContext:
    """Which op implementation ('auto'|'cpu'|'cuda'|'ref') the layers of one network use; shared by reference."""

    __slots__ = ("_impl",)

    def __init__(self, impl: str = "auto") -> None:
        self.impl = impl

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in VALID_IMPLS:
            raise ValueError(f"impl={value!r} is invalid: expected one of {VALID_IMPLS}")
        self._impl = value

    def __repr__(self) -> str:
        return f"OpContext(impl={self._impl!r})"


class SwitchableImpl:
    """Mixin for a root network holding `self._ctx`: `net.impl` reads/sets the op implementation of every layer."""

    _ctx: OpContext

    @property
    def impl(self) -> str:
        """The op implementation ('auto'|'cpu'|'cuda'|'ref') used by every layer of this network."""
        return self._ctx.impl

    @impl.setter
    def impl(self, value: str) -> None:
        self._ctx.impl = value


def activation_gain(nonlinearity: str) -> float:
    """He-init gain used for the weights feeding `nonlinearity` (official: sqrt(2) for both relu and lrelu)."""
    if nonlinearity not in ("lrelu", "relu", "linear"):
        raise ValueError(f"nonlinearity={nonlinearity!r} is invalid: expected 'lrelu', 'relu' or 'linear'")
    return 1.0 if nonlinearity == "linear" else math.sqrt(2.0)


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], act: str, ctx: OpContext,
             clamp: Optional[float] = None) -> torch.Tensor:
    """x + b followed by the official activation (gain 1: official lrelu has no sqrt(2) output gain), fused.
    Under autocast x may be bfloat16 while the bias parameter is float32: the bias is cast to x's dtype.
    clamp: the fp16 recipe's conv_clamp (fp16_recipe.conv_clamp()), None otherwise."""
    if b is not None and b.dtype != x.dtype:
        b = b.to(x.dtype)
    if act == "linear":
        return ops.bias_act(x, b, act="linear", gain=1.0, clamp=clamp, impl=ctx.impl)
    return ops.bias_act(x, b, act=act, alpha=LRELU_ALPHA if act == "lrelu" else None, gain=1.0, clamp=clamp,
                        impl=ctx.impl)


class EqualizedWeight(nn.Module):
    """Base of the equalized-learning-rate layers (official get_weight, docs/FORMATS.md §1.6).

    Stored weight ~ N(0, 1/lrmul) (use_wscale) and scaled at run time by gain/sqrt(fan_in)*lrmul; without wscale
    init N(0, he_std/lrmul) and run-time x lrmul. The bias is stored / lrmul and used x lrmul.
    """

    def __init__(self, shape: Sequence[int], fan_in: int, gain: float, lrmul: float, use_wscale: bool,
                 bias_size: Optional[int]) -> None:
        super().__init__()
        he_std = gain / math.sqrt(fan_in)
        init_std, self.weight_gain = (1.0 / lrmul, he_std * lrmul) if use_wscale else (he_std / lrmul, lrmul)
        self.weight = nn.Parameter(torch.randn(*shape) * init_std)
        self.bias = nn.Parameter(torch.zeros(bias_size)) if bias_size else None
        self.bias_gain = lrmul

    def scaled_weight(self) -> torch.Tensor:
        """The run-time weight (stored weight x gain/sqrt(fan_in) x lrmul)."""
        return self.weight * self.weight_gain

    def weight_transform(self, **fused: object) -> WeightTransform:
        """scaled_weight() as a transform of the stored weight, for the conv ops (which compute it and save only
        the parameter for backward); `fused` adds WeightTransform's transpose / fused / fused_gain."""
        return WeightTransform(gain=float(self.weight_gain), **fused)  # type: ignore[arg-type]

    def scaled_bias(self) -> Optional[torch.Tensor]:
        """The run-time bias (stored bias x lrmul), or None."""
        if self.bias is None:
            return None
        return self.bias * self.bias_gain if self.bias_gain != 1 else self.bias


class EqualizedLinear(EqualizedWeight):
    """Official `dense` + `apply_bias` (+ activation): weight [out, in] (= TF [in, out] transposed)."""

    def __init__(self, in_features: int, out_features: int, ctx: OpContext, gain: float = 1.0, lrmul: float = 1.0,
                 use_wscale: bool = True, bias: bool = True, act: str = "linear") -> None:
        super().__init__([out_features, in_features], in_features, gain, lrmul, use_wscale,
                         out_features if bias else None)
        self.ctx = ctx
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.scaled_bias()
        # ops.linear = F.linear(x, weight * weight_gain, b) keeping only the parameter for backward
        if self.act == "linear":
            return linear(x, self.weight, b, self.weight_gain, impl=self.ctx.impl)  # addmm: bias fused by BLAS
        return bias_act(linear(x, self.weight, None, self.weight_gain, impl=self.ctx.impl), b, self.act, self.ctx)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, act={self.act}"


class EqualizedConv2d(EqualizedWeight):
    """Official `conv2d` (SAME padding) + optional bias/activation: weight [out, in, k, k] (TF permuted 3,2,0,1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, ctx: OpContext, gain: float = 1.0,
                 use_wscale: bool = True, bias: bool = True, act: str = "linear") -> None:
        if kernel % 2 != 1:
            raise ValueError(f"kernel={kernel} is invalid: expected an odd size (SAME padding)")
        super().__init__([out_channels, in_channels, kernel, kernel], in_channels * kernel * kernel, gain, 1.0,
                         use_wscale, out_channels if bias else None)
        self.ctx = ctx
        self.act = act

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution only (no bias): the bias belongs to the epilogue that follows."""
        return conv2d(x, self.weight, padding=self.weight.shape[-1] // 2, impl=self.ctx.impl,
                      transform=self.weight_transform())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clamp = fp16_recipe.conv_clamp()  # None except under the fp16 recipe
        if self.act == "linear" and clamp is None:
            return conv2d(x, self.weight, self.scaled_bias(), padding=self.weight.shape[-1] // 2,
                          impl=self.ctx.impl, transform=self.weight_transform())
        return bias_act(self.conv(x), self.scaled_bias(), self.act, self.ctx, clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"in={i}, out={o}, kernel={k}, act={self.act}"


def upscale2d_nearest(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling (official upscale2d, gain 1) as a broadcast copy.

    Bit-identical to upfirdn2d(up=2, f=2x2 ones) and to F.interpolate('nearest'), and much faster on CPU
    (docs/PERFORMANCE.md §3.2); it is pure data movement, so no kernel needed.
    """
    if factor == 1:
        return x
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, factor, w, factor).reshape(n, c, h * factor, w * factor)


class Resample(nn.Module):
    """Holds the constant FIR filters (blur, 2x2 box) and applies them through the fused upfirdn2d ops."""

    def __init__(self, ctx: OpContext, blur_filter: Optional[Sequence[float]]) -> None:
        super().__init__()
        self.ctx = ctx
        # Official blur2d: outer product of the 1-D taps, normalized to sum 1, correlation with SAME padding.
        f = ops.setup_filter(list(blur_filter), separable=False) if blur_filter else None
        self.register_buffer("blur_f", f, persistent=False)
        self.register_buffer("box_f", ops.setup_filter([1, 1], separable=False), persistent=False)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Official blur2d (identity when blur_filter is None)."""
        if self.blur_f is None:
            return x
        return ops.filter2d(x, self.blur_f, flip_filter=True, impl=self.ctx.impl)

    def blur_op(self) -> Optional["BlurOp"]:
        """The blur as a linear op for a conv's `pre` (recomputed in backward instead of kept), or None."""
        return None if self.blur_f is None else BlurOp(self.blur_f, self.ctx.impl)

    def box_down(self, x: torch.Tensor) -> torch.Tensor:
        """Official downscale2d by 2: exact 2x2 box average."""
        return ops.downsample2d(x, self.box_f, down=2, impl=self.ctx.impl)


class BlurOp:
    """Resample.blur (official blur2d) and its adjoint, as a linear op for stylegan.ops.conv2d's `pre`."""

    __slots__ = ("f", "impl")

    def __init__(self, f: torch.Tensor, impl: str) -> None:
        self.f, self.impl = f, impl

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ops.filter2d(x, self.f, flip_filter=True, impl=self.impl)

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        return filter2d_adjoint(g, self.f, flip_filter=True, impl=self.impl)


def pixel_norm(x: torch.Tensor, eps: float = PIXEL_NORM_EPS, dim: int = 1) -> torch.Tensor:
    """x * rsqrt(mean(x^2 over `dim`) + eps) (official pixel_norm)."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


def instance_norm_modulate(x: torch.Tensor, scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
                           normalize: bool = True, eps: float = INSTANCE_NORM_EPS) -> torch.Tensor:
    """Instance norm (biased variance, no affine) then style modulation y = x*scale + shift.

    Why this form: the map is centred before its variance is taken, as the official code does, and what the
    rounded mean leaves (m2, the mean of the centred map) is taken out of the variance and folded into the shift,
    so a constant map (var = 0, e.g. the const layer at init) gives `shift` to within float rounding instead of
    its rounding amplified by rsqrt(eps) = 1e4. Plain sums instead of torch.var_mean (whose per-element update is
    many times slower on the CPU); every per-(n,c) factor is a tiny [N, C, 1, 1] tensor. float32 (and float16,
    converted) maps are normalised in float32. A bf16 map stays bf16: torch's sums of bf16 accumulate in float32
    (the result is rounded to bf16 once) and the per-(n,c) factors are float32; float16 is not kept (squaring a centred value above 256, which the fp16
    recipe's +-256 clamp allows, overflows it).
    scale/shift: [N, C, 1, 1] (scale already includes the official "+1"), or None for use_styles=False.
    """
    if not normalize:
        return x if scale is None else torch.addcmul(shift, x, scale)
    orig_dtype = x.dtype
    work_dtype = torch.bfloat16 if orig_dtype == torch.bfloat16 else torch.float32
    xw = x.to(work_dtype)
    hw = x.shape[2] * x.shape[3]
    mean = xw.sum(dim=(2, 3), keepdim=True).float() / hw
    xc = xw - mean.to(work_dtype)
    m2 = xc.sum(dim=(2, 3), keepdim=True).float() / hw
    var = (xc.square().sum(dim=(2, 3), keepdim=True).float() / hw - m2.square()).clamp_min(0.0)
    a = torch.rsqrt(var + eps)
    if scale is not None:
        a = a * scale.float()
    offset = -m2 * a if shift is None else shift.float() - m2 * a
    y = (xc * a.to(work_dtype)).add_(offset.to(work_dtype))  # not addcmul: its broadcast CPU kernel is slower
    return y.to(orig_dtype)


def minibatch_stddev(x: torch.Tensor, group_size: int, num_features: int = 1, eps: float = MBSTD_EPS
                     ) -> torch.Tensor:
    """Appends the official minibatch-stddev feature maps: STRIDED groups, samples m, m+M, m+2M, ...
    (docs/FORMATS.md §1.9).

    G = min(group_size, N); the official code reshapes [G, M, ...], which fails unless N % G == 0, so we raise.
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    if n % g:
        raise ValueError(f"minibatch stddev: batch size {n} is not divisible by the group size {g} "
                         f"(mbstd_group_size={group_size}); the official network cannot run it either")
    if c % num_features:
        raise ValueError(f"minibatch stddev: {c} channels are not divisible by num_features={num_features}")
    y = x.float().reshape(g, n // g, num_features, c // num_features, h, w)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + eps).sqrt()  # [M, n, C/n, H, W]
    y = y.mean(dim=(2, 3, 4))  # [M, n]
    y = y.to(x.dtype)[:, :, None, None].repeat(g, 1, h, w)  # sample g*M + m gets group m's value
    return torch.cat([x, y], dim=1)


__all__ = ["OpContext", "SwitchableImpl", "EqualizedLinear", "EqualizedConv2d", "Resample", "upscale2d_nearest",
           "pixel_norm", "instance_norm_modulate", "minibatch_stddev", "activation_gain", "bias_act"]
