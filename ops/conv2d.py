"""conv2d / conv_transpose2d whose derivatives are again these convolutions, to any order (pure torch).

Why: torch's built-in double backward of a convolution (`_convolution_double_backward`) computes the weight
gradient of the gradient - the part a gradient penalty needs - as one convolution with an H x W kernel over the
batch-transposed tensors, which oneDNN runs far below its normal speed (profile: docs/PERFORMANCE.md §4.2). Here the
backward of a convolution is expressed with the same autograd Functions - input gradient = the transposed
convolution, weight gradient = `aten.convolution_backward` asked for the weight only - so a double backward
(WGAN-GP, R1) always runs the library's fast forward / input-gradient / weight-gradient kernels. The idea is NVlabs' `conv2d_gradfix`.

Forward results are bit-identical to `F.conv2d` / `F.conv_transpose2d` (the same call); first-order gradients
come from the same `convolution_backward` kernels torch's own backward uses. A backward computes only the
gradients the running backward pass will consume (not merely those whose inputs require grad), so e.g. the
gradient penalty's `autograd.grad(scores, images, create_graph=True)` computes no weight gradients.

Weight transforms: equalized-lr layers convolve with `w * gain` (and StyleGAN's fused up/down-convs with a 4x4
kernel summed from it). Passed as `transform=WeightTransform(...)`, the effective weight is computed inside the
op and only the raw parameter is saved for backward (recomputed there), instead of autograd keeping one
effective-weight copy per call (D runs three times in a WGAN-GP D step): a training step's peak memory drops, its
CPU time does not grow (docs/PERFORMANCE.md §4.2).

`impl='ref'` (or STYLEGAN_OPS=ref) calls the torch functions directly (on the effective weight, built with
autograd). groups=1 and dilation=1 only (StyleGAN needs nothing else).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Protocol, Sequence, Tuple

import torch
import torch.nn.functional as F

from .args import IntOrPair, int_pair
from .autocast import captured_dtype, compute_dtype, replay
from .build import VALID_IMPLS, forced_reference

Pair = Tuple[int, int]


def _pair(value: IntOrPair, name: str, minimum: int) -> Pair:
    return int_pair(value, "conv2d", name, minimum)


def _will_run(ctx, index: int) -> bool:
    """Whether the running backward pass consumes the gradient of forward input `index`.

    ctx.needs_input_grad only says the input requires grad; torch.autograd.grad(y, x) would then still compute
    weight gradients nobody reads. The engine knows which nodes it will execute; a leaf under autograd.grad()
    is not queryable, so we fall back to needs_input_grad there.
    """
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    if node is None:
        return False
    try:
        return bool(torch._C._will_engine_execute_node(node))
    except (RuntimeError, AttributeError):
        return True


def _transpose_output_padding(in_hw: Sequence[int], out_hw: Sequence[int], k_hw: Sequence[int], stride: Pair,
                              padding: Pair) -> Pair:
    """output_padding of the transposed convolution that maps a conv2d's output (out_hw) back to in_hw."""
    return tuple(int(in_hw[i]) - ((int(out_hw[i]) - 1) * stride[i] - 2 * padding[i] + int(k_hw[i]))
                 for i in range(2))  # type: ignore[return-value]


def fused_kernel_sum(w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """[O, I, 3, 3] -> [O, I, 4, 4]: zero-pad by 1 and sum the four shifted windows, times gain (contiguous).

    Per element ((w[i,j] + w[i-1,j]) + w[i,j-1]) + w[i-1,j-1] (terms outside the kernel skipped): the order of
    the pad-and-add `F.pad(w, [1]*4)` -> [1:,1:] + [:-1,1:] + [1:,:-1] + [:-1,:-1], so bit-identical to it.
    Working on [3, 3, O, I] makes each window one contiguous block (much faster than slicing the tiny trailing dims,
    docs/PERFORMANCE.md §3.2); the result is made contiguous once (a convolution would copy a permuted view on
    every call).
    """
    p = w.permute(2, 3, 0, 1)
    out = w.new_empty((4, 4) + tuple(w.shape[:2]))
    out[:3, :3] = p
    out[3].zero_()
    out[:3, 3].zero_()
    out[1:, :3] += p
    out[:3, 1:] += p
    out[1:, 1:] += p
    if gain != 1:
        out *= gain
    return out.permute(2, 3, 0, 1).contiguous()


def fused_kernel_sum_adjoint(g: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """The adjoint of fused_kernel_sum: [O, I, 4, 4] -> [O, I, 3, 3], the 'valid' 2x2 window sum (times gain)."""
    q = g.permute(2, 3, 0, 1).contiguous()
    if gain != 1:
        q = q * gain
    r = q[:3, :3] + q[1:, :3]
    r = r + q[:3, 1:]
    r = r + q[1:, 1:]
    return r.permute(2, 3, 0, 1)


class FusedKernel(torch.autograd.Function):
    """fused_kernel_sum with its adjoint as backward (differentiable again through torch ops)."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, gain: float) -> torch.Tensor:
        ctx.gain = gain
        return fused_kernel_sum(w, gain)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return fused_kernel_sum_adjoint(g, ctx.gain), None


class LinearOp(Protocol):
    """A linear map of a conv's input (e.g. a blur): calling it applies the map, `adjoint` its transpose."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def adjoint(self, g: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class WeightTransform:
    """The effective convolution weight of a raw parameter: w * gain, then [in, out] swapped (transpose), then
    the fused 4x4 kernel times fused_gain (fused). Linear in w; `vjp` is its adjoint, in the order autograd
    would apply the same ops (so gradients are bit-identical to building the effective weight with autograd)."""

    gain: float = 1.0
    transpose: bool = False
    fused: bool = False
    fused_gain: float = 1.0

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        w = w * self.gain
        if self.transpose:
            w = w.transpose(0, 1)
        if self.fused:
            w = FusedKernel.apply(w, self.fused_gain)
        return w

    def vjp(self, g: torch.Tensor) -> torch.Tensor:
        if self.fused:
            g = fused_kernel_sum_adjoint(g, self.fused_gain)
        if self.transpose:
            g = g.transpose(0, 1)
        return g * self.gain

    def shape(self, w_shape: Sequence[int]) -> Tuple[int, ...]:
        """Shape of the effective weight for a raw weight of shape w_shape."""
        o, i, kh, kw = w_shape
        if self.transpose:
            o, i = i, o
        if self.fused:
            kh, kw = kh + 1, kw + 1
        return (o, i, kh, kw)


def _effective(w: torch.Tensor, transform: Optional[WeightTransform]) -> torch.Tensor:
    return w if transform is None else transform(w)


# (transposed, stride, padding, output_padding, transform) -> (Conv Function, WeightGrad Function)
_FUNCTIONS: Dict[Tuple[bool, Pair, Pair, Pair, Optional[WeightTransform]], Tuple[type, type]] = {}


def _functions(transposed: bool, stride: Pair, padding: Pair, output_padding: Pair,
               transform: Optional[WeightTransform] = None) -> Tuple[type, type]:
    key = (transposed, stride, padding, output_padding, transform)
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]

    def run(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
        if transposed:
            return F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding)
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    def input_grad(g: torch.Tensor, w: torch.Tensor, in_hw: Sequence[int], k_hw: Sequence[int],
                   tf: Optional[WeightTransform]) -> torch.Tensor:
        """Gradient wrt this op's input for upstream g: the adjoint convolution (same raw weight and transform),
        as a differentiable Function. k_hw: the effective kernel size."""
        if transposed:
            return _functions(False, stride, padding, (0, 0), tf)[0].apply(g, w, None)
        op = _transpose_output_padding(in_hw, g.shape[2:], k_hw, stride, padding)
        return _functions(True, stride, padding, op, tf)[0].apply(g, w, None)

    class Conv(torch.autograd.Function):
        """y = conv(pre(x), transform(w)) + b; saves x and the RAW w: the effective weight and pre(x) are
        recomputed in backward."""

        @staticmethod
        def forward(ctx, x, w, b, pre=None):
            ctx.save_for_backward(x, w)
            ctx.has_bias, ctx.pre = b is not None, pre
            ctx.amp = captured_dtype(x.device.type)  # the backward's convolutions run in the forward's dtype
            with torch.no_grad():
                w_eff = _effective(w, transform)
                xp = x if pre is None else pre(x)
            ctx.k_hw, ctx.xp_hw = tuple(w_eff.shape[2:]), tuple(xp.shape[2:])
            return run(xp, w_eff, b)

        @staticmethod
        def backward(ctx, gy):
            with replay(gy.device.type, ctx.amp):
                return Conv._backward(ctx, gy)

        @staticmethod
        def _backward(ctx, gy):
            x, w = ctx.saved_tensors
            pre = ctx.pre
            gx = gw = gb = None
            if _will_run(ctx, 0):
                gx = input_grad(gy, w, ctx.xp_hw, ctx.k_hw, transform)
                if pre is not None:
                    gx = pre.adjoint(gx)
            if _will_run(ctx, 1):
                w_shape = w.shape if transform is None else transform.shape(w.shape)
                gw = WeightGrad.apply(gy, x if pre is None else pre(x), w_shape)
                if transform is not None:
                    gw = transform.vjp(gw)
            if ctx.has_bias and _will_run(ctx, 2):
                gb = gy.sum(dim=(0, 2, 3))
            return gx, gw, gb, None

    class WeightGrad(torch.autograd.Function):
        """(gy, x) -> dL/d(effective w) of this op; bilinear, so its derivatives are this op (no transform: its
        weight is then an effective weight) and its adjoint again."""

        @staticmethod
        def forward(ctx, gy, x, w_shape):
            ctx.save_for_backward(gy, x)
            ctx.amp = captured_dtype(gy.device.type)
            # convolution_backward is not an autocast op: its operands get one dtype here (a no-op in float32)
            dtype = compute_dtype(gy.device.type, gy, x)
            gy, x = gy.to(dtype), x.to(dtype)
            # Only the weight's shape matters for the weight gradient: an empty tensor (never written or read).
            w = gy.new_empty(w_shape)
            return torch.ops.aten.convolution_backward(gy, x, w, None, list(stride), list(padding), [1, 1],
                                                       transposed, list(output_padding), 1,
                                                       [False, True, False])[1]

        @staticmethod
        def backward(ctx, ggw):
            with replay(ggw.device.type, ctx.amp):
                return WeightGrad._backward(ctx, ggw)

        @staticmethod
        def _backward(ctx, ggw):
            gy, x = ctx.saved_tensors
            d_gy = d_x = None
            plain = _functions(transposed, stride, padding, output_padding, None)[0]
            if _will_run(ctx, 0):
                d_gy = plain.apply(x, ggw, None)
            if _will_run(ctx, 1):
                d_x = input_grad(gy, ggw, x.shape[2:], ggw.shape[2:], None)
            return d_gy, d_x, None

    _FUNCTIONS[key] = (Conv, WeightGrad)
    return Conv, WeightGrad


def _check(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], impl: str) -> None:
    if impl not in VALID_IMPLS:
        raise ValueError(f"impl must be one of {VALID_IMPLS}, got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"conv2d: x must be a 4-D tensor [N, C, H, W], got "
                         f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        raise ValueError(f"conv2d: w must be a 4-D tensor, got "
                         f"{list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}")
    if b is not None and (not isinstance(b, torch.Tensor) or b.ndim != 1):
        raise ValueError("conv2d: b must be None or a 1-D tensor")


def _alias_leaf(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A parameter enters the Function through a view, so _will_run can ask the engine about its node (the
    engine cannot answer for a leaf under autograd.grad, e.g. the gradient penalty's first pass)."""
    return t.view_as(t) if t is not None and t.is_leaf and t.requires_grad else t


def conv2d(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None, stride: IntOrPair = 1,
           padding: IntOrPair = 0, impl: str = "auto", transform: Optional[WeightTransform] = None,
           pre: Optional[LinearOp] = None) -> torch.Tensor:
    """Returns F.conv2d(pre(x), transform(w), b, stride, padding), with derivatives of every order as fast convs.

    pre: a linear op on x (e.g. a blur) with an `adjoint`; pre(x) is recomputed in backward instead of being kept
    alive by the graph (x itself usually is anyway, e.g. saved by the activation before it).
    impl 'auto'/'cpu'/'cuda': the autograd Functions of this module; 'ref': F.conv2d itself (with autograd
    through pre and transform).
    """
    _check(x, w, b, impl)
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    if impl == "ref" or forced_reference():
        return F.conv2d(x if pre is None else pre(x), _effective(w, transform), b, stride=s, padding=p)
    return _functions(False, s, p, (0, 0), transform)[0].apply(x, _alias_leaf(w), _alias_leaf(b), pre)


def conv_transpose2d(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, impl: str = "auto",
                     transform: Optional[WeightTransform] = None) -> torch.Tensor:
    """Returns F.conv_transpose2d(x, transform(w), b, stride, padding, output_padding) (effective weight
    [in, out, kh, kw]), with derivatives of every order as fast convolutions; impl 'ref' calls
    F.conv_transpose2d itself."""
    _check(x, w, b, impl)
    s, p, op = _pair(stride, "stride", 1), _pair(padding, "padding", 0), _pair(output_padding, "output_padding", 0)
    if impl == "ref" or forced_reference():
        return F.conv_transpose2d(x, _effective(w, transform), b, stride=s, padding=p, output_padding=op)
    return _functions(True, s, p, op, transform)[0].apply(x, _alias_leaf(w), _alias_leaf(b))


__all__ = ["WeightTransform", "conv2d", "conv_transpose2d", "fused_kernel_sum", "fused_kernel_sum_adjoint",
           "FusedKernel"]
