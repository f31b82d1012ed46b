"""bias_act: y = clamp(act(x + b, alpha) * gain, -clamp, clamp) in one pass, with a pure-torch reference.

Same signature and semantics as NVlabs' `torch_utils.ops.bias_act` (stylegan2-ada-pytorch), so results match
to rounding. Every StyleGAN layer ends in bias + leaky ReLU; the fused kernel reads and writes memory once.

CPU kernel notes: outputs of 1 MiB and more come from a small pool of already-mapped blocks kept by the extension
(freed outputs return to it), so glibc's default allocator does not make every call pay fresh page faults; at most
STYLEGAN_OPS_POOL_MB (default 256) idle MiB are kept, 0 disables it (`pool_stats()`, `set_pool_limit()` and
`trim_pool()` on the extension module). Pooled outputs are ordinary resizable tensors: a resize moves the data to
torch's allocator and gives the block back. Outputs of 16 MiB and more are written with streaming stores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

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
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"bias_act: dim must be an int, got {type(dim).__name__} {dim!r}")
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"bias_act: clamp must be None or >= 0, got {clamp!r}")
    if b is not None:
        if x.ndim == 0:
            raise ValueError("bias_act: x is a 0-dim tensor; a bias b needs x with at least one dimension")
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"bias_act: b must be a torch.Tensor or None, got {type(b).__name__}")
        if b.dtype != x.dtype:
            raise TypeError(f"bias_act: b has dtype {b.dtype} but x has {x.dtype}; expected the same dtype")
        if b.device != x.device:
            raise ValueError(f"bias_act: b is on {b.device} but x is on {x.device}; expected the same device")
        if not 0 <= dim < x.ndim:
            raise ValueError(f"bias_act: dim={dim} is out of range for x of rank {x.ndim}; expected 0 <= dim < {x.ndim}")
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
    chosen, module = build.resolve_impl("bias_act", impl, x.device, x.dtype)
    if chosen == "ref":
        return bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_kernel(module, x, b, dim, act, alpha, gain, clamp)


# ---------------------------------------------------------------------------------------------------------------
# Kernel path: nested autograd Functions, so that first AND second derivatives run in the kernel.
#
#   BiasActKernel.forward:      y = kernel mode 0 (x, b); saves x / y as the spec's grad_needs (and clamp) need
#   BiasActKernel.backward:     dx, db = BiasActKernelGrad(dy, x, b, y); db is fused into the kernel's loop
#   BiasActKernelGrad.backward  (the double backward, e.g. of a gradient penalty), g = gradient of dx (+ gradient
#       of db spread along `dim`): d_dy = BiasActKernelGrad(g, ...) (mode 1 again: dx is linear in dy);
#       d_x = kernel mode 2 (g, dy, x) for activations with a second derivative, d_b = its sum (fused).
# The y saved by the forward is only a cheap stand-in for act(x + b): BiasActKernelGrad returns no gradient for
# it, its d_x is the whole derivative with respect to x.

_KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64, torch.bfloat16),  # bfloat16: float32 math, rounded stores
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


@dataclass(frozen=True)
class _KernelConfig:
    """Everything but the tensors: the key of the Function cache."""

    dim: int
    act: str
    alpha: float
    gain: float
    clamp: float  # < 0: no clamp

    @property
    def spec(self) -> Activation:
        return ACTIVATIONS[self.act]

    @property
    def saves_x(self) -> bool:
        return self.spec.grad_needs == "x" or self.spec.has_2nd_grad

    @property
    def saves_y(self) -> bool:
        return self.spec.grad_needs == "y" or self.clamp >= 0


def _run(module, cfg: _KernelConfig, mode: int, x: torch.Tensor, b: Optional[torch.Tensor],
         xref: Optional[torch.Tensor], yref: Optional[torch.Tensor], dy: Optional[torch.Tensor],
         want_bias_grad: bool):
    """One kernel call; returns (out, bias_grad or None). The kernel ignores references it does not need."""
    out, bias_grad = module.bias_act(x, b, xref, yref, dy, mode, cfg.dim, cfg.spec.kernel_index, cfg.alpha,
                                     cfg.gain, cfg.clamp, want_bias_grad)
    return out, bias_grad


def _bias_shape(cfg: _KernelConfig, ndim: int):
    return [-1 if i == cfg.dim else 1 for i in range(ndim)]


def _make_functions(module, cfg: _KernelConfig):
    """Builds the (forward, gradient) pair of autograd Functions for one kernel module and configuration."""

    class BiasActKernelGrad(torch.autograd.Function):
        """dy -> (dx, db) through kernel mode 1; differentiable again (mode 1 for dy, mode 2 for x and b)."""

        @staticmethod
        def forward(ctx, dy, x, b, y):
            dx, db = _run(module, cfg, 1, dy, b, x, y, None, want_bias_grad=b is not None)
            if db is None:
                db = dx.new_empty([0])
                ctx.mark_non_differentiable(db)
            ctx.set_materialize_grads(False)
            ctx.x_shape = dy.shape
            ctx.save_for_backward(dy if cfg.spec.has_2nd_grad else None, x, b, y)
            return dx, db

        @staticmethod
        def backward(ctx, g_dx, g_db):
            dy, x, b, y = ctx.saved_tensors
            g = g_dx
            if g_db is not None and b is not None:
                spread = g_db.reshape(_bias_shape(cfg, len(ctx.x_shape)))
                g = spread.expand(ctx.x_shape) if g is None else g + spread
            if g is None:
                return None, None, None, None
            d_dy = d_x = d_b = None
            if ctx.needs_input_grad[0]:
                d_dy = BiasActKernelGrad.apply(g, x, b, y)[0]
            if cfg.spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
                d_x, d_b = _run(module, cfg, 2, g, b, x, y, dy, want_bias_grad=b is not None)
                if not ctx.needs_input_grad[2]:
                    d_b = None
            return d_dy, d_x, d_b, None

    class BiasActKernel(torch.autograd.Function):
        """y = clamp(act(x + b) * gain) through kernel mode 0; backward is BiasActKernelGrad."""

        @staticmethod
        def forward(ctx, x, b):
            y, _ = _run(module, cfg, 0, x, b, None, None, None, want_bias_grad=False)
            # No zero-filled dy when no gradient reaches y: the double backward sends none through the y that
            # BiasActKernelGrad received, and must not pay a zeros tensor and a kernel pass for it.
            ctx.set_materialize_grads(False)
            ctx.save_for_backward(x if cfg.saves_x else None, b, y if cfg.saves_y else None)
            return y

        @staticmethod
        def backward(ctx, dy):
            x, b, y = ctx.saved_tensors
            if dy is None or not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
                return None, None
            dx, db = BiasActKernelGrad.apply(dy, x, b, y)
            return (dx if ctx.needs_input_grad[0] else None), (db if ctx.needs_input_grad[1] else None)

    return BiasActKernel, BiasActKernelGrad


# (module name, config) -> (BiasActKernel, BiasActKernelGrad): Functions are built once per configuration.
_FUNCTIONS: Dict[Tuple[str, _KernelConfig], Tuple[type, type]] = {}


def _bias_act_kernel(module, x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: str,
                     alpha: Optional[float], gain: Optional[float], clamp: Optional[float]) -> torch.Tensor:
    """Runs bias_act through the compiled kernel (forward, first and second derivative)."""
    allowed = _KERNEL_DTYPES[x.device.type]
    if x.dtype not in allowed:
        raise TypeError(f"bias_act: the {x.device.type} kernel supports dtypes {[str(d) for d in allowed]}, got "
                        f"dtype {x.dtype}; use impl='ref' or convert x")
    if x.ndim == 0:  # the kernel works on arrays; a scalar is a 1-element one
        return _bias_act_kernel(module, x.reshape(1), None, 0, act, alpha, gain, clamp).reshape(())
    if b is None:
        dim = 0  # without a bias `dim` means nothing (as in NVlabs); one config serves every value
    spec = ACTIVATIONS[act]
    cfg = _KernelConfig(dim=dim, act=act, alpha=float(alpha if alpha is not None else spec.def_alpha),
                        gain=float(gain if gain is not None else spec.def_gain),
                        clamp=float(clamp if clamp is not None else -1))
    key = (module.__name__, cfg)
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = _make_functions(module, cfg)
    return _FUNCTIONS[key][0].apply(x, b)
