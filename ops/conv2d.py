"""conv2d / conv_transpose2d whose derivatives are again these convolutions, to any order (pure torch).

Why: torch's built-in double backward of a convolution (`_convolution_double_backward`) computes the weight
gradient of the gradient - the part a gradient penalty needs - as one convolution with an H x W kernel over the
batch-transposed tensors, which oneDNN runs far below its normal speed (a training-step profile at 32 px, 512
channels, batch 16: 1.0 s for what its own weight-gradient kernel does in ~0.4 s). Here the backward of a
convolution is expressed with the same autograd Functions - input gradient = the transposed convolution, weight
gradient = `aten.convolution_backward` asked for the weight only - so a double backward (WGAN-GP, R1) always runs
the library's fast forward / input-gradient / weight-gradient kernels. The idea is NVlabs' `conv2d_gradfix`.

Forward results are bit-identical to `F.conv2d` / `F.conv_transpose2d` (the same call); first-order gradients
come from the same `convolution_backward` kernels torch's own backward uses. A backward computes only the
gradients the running backward pass will consume (not merely those whose inputs require grad), so e.g. the
gradient penalty's `autograd.grad(scores, images, create_graph=True)` computes no weight gradients.

`impl='ref'` (or STYLEGAN_OPS=ref) calls the torch functions directly. groups=1 and dilation=1 only (StyleGAN
needs nothing else).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .build import VALID_IMPLS, forced_reference

Pair = Tuple[int, int]
IntOrPair = Union[int, Sequence[int]]


def _pair(value: IntOrPair, name: str, minimum: int) -> Pair:
    if isinstance(value, bool):
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
        ok = all(int(v) == v for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}") from None
    if not ok or a < minimum or b < minimum:
        raise ValueError(f"conv2d: {name} must be integers >= {minimum}, got {value!r}")
    return a, b


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


# (transposed, stride, padding, output_padding) -> (Conv Function, WeightGrad Function)
_FUNCTIONS: Dict[Tuple[bool, Pair, Pair, Pair], Tuple[type, type]] = {}


def _functions(transposed: bool, stride: Pair, padding: Pair, output_padding: Pair) -> Tuple[type, type]:
    key = (transposed, stride, padding, output_padding)
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]

    def run(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
        if transposed:
            return F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding)
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    def input_grad(g: torch.Tensor, w: torch.Tensor, in_hw: Sequence[int]) -> torch.Tensor:
        """Gradient wrt this op's input for upstream g: the adjoint convolution, as a differentiable Function."""
        if transposed:
            return _functions(False, stride, padding, (0, 0))[0].apply(g, w, None)
        op = _transpose_output_padding(in_hw, g.shape[2:], w.shape[2:], stride, padding)
        return _functions(True, stride, padding, op)[0].apply(g, w, None)

    class Conv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(x, w)
            ctx.has_bias = b is not None
            return run(x, w, b)

        @staticmethod
        def backward(ctx, gy):
            x, w = ctx.saved_tensors
            gx = gw = gb = None
            if _will_run(ctx, 0):
                gx = input_grad(gy, w, x.shape[2:])
            if _will_run(ctx, 1):
                gw = WeightGrad.apply(gy, x, w)
            if ctx.has_bias and _will_run(ctx, 2):
                gb = gy.sum(dim=(0, 2, 3))
            return gx, gw, gb

    class WeightGrad(torch.autograd.Function):
        """(gy, x) -> dL/dw of this op; bilinear, so its derivatives are this op and its adjoint again."""

        @staticmethod
        def forward(ctx, gy, x, w):
            ctx.save_for_backward(gy, x, w)
            return torch.ops.aten.convolution_backward(gy, x, w, None, list(stride), list(padding), [1, 1],
                                                       transposed, list(output_padding), 1,
                                                       [False, True, False])[1]

        @staticmethod
        def backward(ctx, ggw):
            gy, x, w = ctx.saved_tensors
            d_gy = d_x = None
            if _will_run(ctx, 0):
                d_gy = Conv.apply(x, ggw, None)
            if _will_run(ctx, 1):
                d_x = input_grad(gy, ggw, x.shape[2:])
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


def conv2d(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None, stride: IntOrPair = 1,
           padding: IntOrPair = 0, impl: str = "auto") -> torch.Tensor:
    """Returns F.conv2d(x, w, b, stride, padding), with derivatives of every order as fast convolutions.

    impl 'auto'/'cpu'/'cuda': the autograd Functions of this module; 'ref': F.conv2d itself.
    """
    _check(x, w, b, impl)
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    if impl == "ref" or forced_reference():
        return F.conv2d(x, w, b, stride=s, padding=p)
    return _functions(False, s, p, (0, 0))[0].apply(x, w, b)


def conv_transpose2d(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, impl: str = "auto") -> torch.Tensor:
    """Returns F.conv_transpose2d(x, w, b, stride, padding, output_padding) (w: [in, out, kh, kw]), with
    derivatives of every order as fast convolutions; impl 'ref' calls F.conv_transpose2d itself."""
    _check(x, w, b, impl)
    s, p, op = _pair(stride, "stride", 1), _pair(padding, "padding", 0), _pair(output_padding, "output_padding", 0)
    if impl == "ref" or forced_reference():
        return F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
    return _functions(True, s, p, op)[0].apply(x, w, b)


__all__ = ["conv2d", "conv_transpose2d"]
