"""linear(x, w, b, gain): F.linear(x, w * gain, b) that saves only the raw weight for backward (pure torch).

Why: an equalized-lr dense layer multiplies its weight by a constant at run time; through autograd that product is
a fresh tensor kept alive by every call's graph (D's 8192 x 512 dense layer: 16 MiB per call, three calls per
WGAN-GP D step). Here the product is made inside the Function and recomputed in backward. The forward is the same
call as `F.linear(x, w * gain, b)` (bit-identical); gradients are the same products (to float rounding);
derivatives of any order (the gradient penalty's double backward) go through torch ops. Like stylegan.ops.conv2d, a backward
computes only the gradients the running backward pass consumes. `impl='ref'` uses autograd directly.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .autocast import captured_dtype, replay
from .build import VALID_IMPLS, forced_reference
from .conv2d import _alias_leaf, _will_run


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], gain: float) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.gain, ctx.has_bias = gain, b is not None
        ctx.amp = captured_dtype(x.device.type)  # the backward's matmuls run in the forward's dtype
        with torch.no_grad():
            return F.linear(x, w * gain, b)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        with replay(gy.device.type, ctx.amp):
            return _Linear._backward(ctx, gy)

    @staticmethod
    def _backward(ctx, gy: torch.Tensor):
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if _will_run(ctx, 0):
            gx = gy.mm(w * ctx.gain)  # graph to w when differentiated again (create_graph)
        if _will_run(ctx, 1):
            gw = gy.t().mm(x) * ctx.gain
        if ctx.has_bias and _will_run(ctx, 2):
            gb = gy.sum(0)
        return gx, gw, gb, None


def linear(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None, gain: float = 1.0,
           impl: str = "auto") -> torch.Tensor:
    """Returns F.linear(x, w * gain, b) for x [N, in], w [out, in]; only w (not w * gain) is kept for backward.

    impl 'auto'/'cpu'/'cuda': the autograd Function above; 'ref': autograd through F.linear(x, w * gain, b).
    """
    if impl not in VALID_IMPLS:
        raise ValueError(f"impl must be one of {VALID_IMPLS}, got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"linear: x must be a 2-D tensor [N, in], got "
                         f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(w, torch.Tensor) or w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"linear: w must be [out, in={x.shape[1]}], got "
                         f"{list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}")
    if impl == "ref" or forced_reference():
        return F.linear(x, w * gain, b)
    return _Linear.apply(x, _alias_leaf(w), _alias_leaf(b), float(gain))


__all__ = ["linear"]
