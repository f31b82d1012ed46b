"""bias_act: y = clamp(act(x + b, alpha) * gain, -clamp, clamp) in one pass, with a pure-torch reference.

Same signature and semantics as NVlabs' `torch_utils.ops.bias_act` (stylegan2-ada-pytorch), so results match
to rounding. Every StyleGAN layer ends in bias + leaky ReLU; the fused kernel reads and writes memory once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from . import build


@dataclass(frozen=True)
class Activation:
    """One row of the activation spec table (defaults follow NVlabs' activation_funcs)."""

    name: str
    ref: Callable[[torch.Tensor, float], torch.Tensor]  # (x, alpha) -> act(x)
    def_alpha: float
    def_gain: float
    kernel_index: int  # the `act` code understood by cuda/bias_act.h
    grad_needs: str  # 'x' or 'y': which tensor the kernel needs to compute the derivative
    has_2nd_grad: bool  # whether d2y/dx2 is non-zero (needs a second-order kernel)


ACTIVATIONS = {
    a.name: a
    for a in [
        Activation("linear", lambda x, _: x, 0.0, 1.0, 1, "", False),
        Activation("relu", lambda x, _: F.relu(x), 0.0, math.sqrt(2), 2, "y", False),
        Activation("lrelu", lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2), 3, "y", False),
        Activation("tanh", lambda x, _: torch.tanh(x), 0.0, 1.0, 4, "y", True),
        Activation("sigmoid", lambda x, _: torch.sigmoid(x), 0.0, 1.0, 5, "y", True),
        Activation("elu", lambda x, _: F.elu(x), 0.0, 1.0, 6, "y", True),
        Activation("selu", lambda x, _: F.selu(x), 0.0, 1.0, 7, "y", True),
        Activation("softplus", lambda x, _: F.softplus(x), 0.0, 1.0, 8, "y", True),
        Activation("swish", lambda x, _: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 9, "x", True),
    ]
}


def _check_inputs(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: str, clamp: Optional[float]) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"bias_act: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"bias_act: x must be a floating-point tensor, got dtype {x.dtype}")
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown act {act!r}; expected one of {sorted(ACTIVATIONS)}")
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"bias_act: clamp must be None or >= 0, got {clamp!r}")
    if b is not None:
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"bias_act: b must be a torch.Tensor or None, got {type(b).__name__}")
        if b.dtype != x.dtype:
            raise TypeError(f"bias_act: b has dtype {b.dtype} but x has {x.dtype}; expected the same dtype")
        if b.device != x.device:
            raise ValueError(f"bias_act: b is on {b.device} but x is on {x.device}; expected the same device")
        if not 0 <= dim < x.ndim:
            raise ValueError(f"bias_act: dim={dim} is out of range for x of rank {x.ndim}")
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b must have shape [{x.shape[dim]}] (x.shape[{dim}]), got {list(b.shape)}")


def bias_act_ref(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
                 alpha: Optional[float] = None, gain: Optional[float] = None,
                 clamp: Optional[float] = None) -> torch.Tensor:
    """Pure-torch reference of `bias_act` (differentiable to any order through torch autograd)."""
    spec = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.ref(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: str = "auto") -> torch.Tensor:
    """Returns clamp(act(x + b, alpha) * gain, -clamp, clamp), fused in one kernel pass when one is available.

    b is 1-D, broadcast along `dim` of x. alpha/gain default to the activation's NVlabs defaults (lrelu: 0.2, sqrt 2).
    impl: 'auto' (kernel for x's device, else reference after one warning), 'cpu'/'cuda' (that kernel or an
    OpBuildError naming the build log), 'ref' (pure torch). Differentiable twice through the kernels.
    """
    _check_inputs(x, b, dim, act, clamp)
    chosen, module = build.resolve_impl("bias_act", impl, x.device)
    if chosen == "ref":
        return bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_kernel(module, x, b, dim, act, alpha, gain, clamp)


def _bias_act_kernel(module, x, b, dim, act, alpha, gain, clamp):  # filled in by the kernel work
    raise NotImplementedError
