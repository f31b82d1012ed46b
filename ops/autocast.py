"""Autocast state carried from an autograd Function's forward into its backward (what torch.amp.custom_fwd /
custom_bwd do, for whichever device the tensors are on).

Why: `loss.backward()` normally runs outside the autocast region, so a custom Function's backward would see no
autocast and hand float32 tensors and bfloat16 gradients to one convolution. Replaying the forward's state makes the
backward's convolutions and matmuls (and a double backward's) run in the forward's dtype, as torch's own backward
of an autocast op does. Without autocast at forward time nothing changes: the float32 path stays bit-identical.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Optional

import torch


def captured_dtype(device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype active for `device_type` now, or None when autocast is off there."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def replay(device_type: str, dtype: Optional[torch.dtype]) -> ContextManager:
    """The autocast region a backward runs in: the forward's (captured_dtype), or nothing at all."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def compute_dtype(device_type: str, *tensors: torch.Tensor) -> torch.dtype:
    """The dtype an op outside autocast's lists (aten.convolution_backward) must run its operands in: the active
    autocast dtype, else the first operand's."""
    return captured_dtype(device_type) or tensors[0].dtype


def run_in_float32(fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """fn(*args) with autocast switched off and the floating-point tensor arguments cast to float32, when an
    autocast region is active on their device; otherwise exactly fn(*args) (the float32 path is untouched)."""
    device_type = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
    if captured_dtype(device_type) is None:
        return fn(*args)
    args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    with torch.autocast(device_type=device_type, enabled=False):
        return fn(*args)


__all__ = ["captured_dtype", "replay", "compute_dtype", "run_in_float32"]
