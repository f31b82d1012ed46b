"""Kernel self-checks: a compiled kernel is compared with the pure-torch reference before it is trusted.

Why: a wrong index in a CUDA kernel gives silently wrong images and gradients, and the CUDA kernels cannot be run
by CI (only emulated). So the first use of a kernel per (op, device, dtype) in a process runs `quick` cases
(forward and backward, tiny tensors, milliseconds) and `build.resolve_impl` falls back to the reference (with one
warning) or raises, when they disagree. `stylegan doctor` runs the `full` set. Results are kept per process only:
a driver or GPU change between runs must never be covered by an old verdict.

The checks call the ops' kernel paths directly (`_bias_act_kernel`, `_upfirdn2d_kernel`), never `resolve_impl`,
so checking cannot recurse into itself.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch

# Largest accepted max|kernel - reference| / max(1, max|reference|), per dtype: a few units of the dtype's precision
# times the accumulation length of these small cases. An indexing error gives errors of order 1.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one self-check of one (op, device, dtype)."""

    ok: bool
    cases: int  # cases compared
    worst: float  # largest relative error seen
    problem: Optional[str]  # why it failed (None when ok)

    def describe(self) -> str:
        if self.ok:
            return f"OK ({self.cases} cases, max relative error {self.worst:.1e})"
        return f"FAILED: {self.problem}"


# A case: (name, function(impl_fn) -> list of tensors). impl_fn(kind) gives the callable of one implementation.
Case = Tuple[str, Callable[[bool], List[torch.Tensor]]]


def _randn(shape, seed: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).to(device=device, dtype=dtype)


def away_from_the_clamp(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: str, alpha: Optional[float],
                        gain: Optional[float], clamp: Optional[float]) -> torch.Tensor:
    """x (a float16 / bfloat16 tensor) with the elements whose unclamped bias_act output lies within 2 ulps of
    +-clamp moved off it. There a half type's stored, rounded y may land on the clamp (gradient masked) where
    float32 / float64 math stays just inside it (not masked): a difference by design - the kernel masks exactly the
    values it stored at the clamp - that a comparison with a wider reference must not count."""
    if clamp is None or x.dtype not in (torch.float16, torch.bfloat16):
        return x
    ba = importlib.import_module("stylegan.ops.bias_act")
    ulp = 2.0 ** (-7 if x.dtype == torch.bfloat16 else -10) * max(clamp, 2.0 ** -14)
    for _ in range(8):
        x64 = x.double()
        y = ba.bias_act_ref(x64, b.double() if b is not None else None, dim=dim, act=act, alpha=alpha, gain=gain)
        near = (y.abs() - clamp).abs() < 2 * ulp
        if not near.any():
            return x
        x = torch.where(near, x64 - 0.125 * torch.sign(y), x64).to(x.dtype)
    raise RuntimeError("could not move the inputs off the clamp")


def _bias_act_cases(module, device: torch.device, dtype: torch.dtype, full: bool) -> List[Case]:
    ba = importlib.import_module("stylegan.ops.bias_act")
    configs = [("lrelu", dict(clamp=256.0), "contiguous"), ("tanh", {}, "channels_last")]
    if full:
        configs = [(act, kw, layout) for act in ba.ACTIVATIONS for kw in ({}, dict(clamp=0.5, gain=2.0))
                   for layout in ("contiguous", "channels_last")]
    cases: List[Case] = []
    for k, (act, kwargs, layout) in enumerate(configs):
        def run(use_kernel: bool, act=act, kwargs=kwargs, layout=layout, k=k) -> List[torch.Tensor]:
            ref_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
            run_dtype = dtype if use_kernel else ref_dtype
            b = _randn((8,), 20 + k, device, dtype)
            x = away_from_the_clamp(_randn((2, 8, 5, 7), 10 + k, device, dtype), b, 1, act, None,
                                    kwargs.get("gain"), kwargs.get("clamp")).to(run_dtype)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            b = b.to(run_dtype)
            dy = _randn((2, 8, 5, 7), 30 + k, device, dtype).to(run_dtype)
            x.requires_grad_(True)
            b.requires_grad_(True)
            if use_kernel:
                y = ba._bias_act_kernel(module, x, b, 1, act, None, kwargs.get("gain"), kwargs.get("clamp"))
            else:
                y = ba.bias_act_ref(x, b, dim=1, act=act, gain=kwargs.get("gain"), clamp=kwargs.get("clamp"))
            dx, db = torch.autograd.grad(y, [x, b], dy)
            return [y.detach(), dx, db]

        cases.append((f"{act}{'-clamp' if kwargs else ''}-{layout}", run))
    return cases


def _upfirdn2d_cases(module, device: torch.device, dtype: torch.dtype, full: bool) -> List[Case]:
    U = importlib.import_module("stylegan.ops.upfirdn2d")
    configs = [((4, 4), 2, 1, (2, 1, 2, 1), "contiguous"), ((3,), (1, 2), 2, (1, 1, 0, 1), "channels_last")]
    if full:
        configs = [(f, up, down, pad, layout) for f in ((4, 4), (4,), (3, 2), (8,))
                   for up, down in ((1, 1), (2, 1), (1, 2), (4, 2), ((2, 1), (1, 2)))
                   for pad, layout in (((2, 1, 2, 1), "contiguous"), ((1, -1, 0, 2), "channels_last"))]
    cases: List[Case] = []
    for k, (fshape, up, down, padding, layout) in enumerate(configs):
        def run(use_kernel: bool, fshape=fshape, up=up, down=down, padding=padding, layout=layout,
                k=k) -> List[torch.Tensor]:
            ref_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
            run_dtype = dtype if use_kernel else ref_dtype
            x = _randn((2, 3, 11, 9), 40 + k, device, dtype).to(run_dtype)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            gen = torch.Generator().manual_seed(50 + k)
            f = (torch.rand(fshape, generator=gen) + 0.25).to(device)
            x.requires_grad_(True)
            upp, downp = U.parse_scaling(up, "up"), U.parse_scaling(down, "down")
            if use_kernel:
                y = U._upfirdn2d_kernel(module, x, f, upp, downp, padding, False, 1.0, device.type)
            else:
                y = U.upfirdn2d_ref(x, f, up=up, down=down, padding=padding)
            dy = _randn(tuple(y.shape), 60 + k, device, dtype).to(run_dtype)
            (dx,) = torch.autograd.grad(y, x, dy)
            return [y.detach(), dx]

        cases.append((f"f{'x'.join(map(str, fshape))}-up{up}-down{down}-{layout}", run))
    return cases


CASES = {"bias_act": _bias_act_cases, "upfirdn2d": _upfirdn2d_cases}


def check(op: str, module, device: torch.device, dtype: torch.dtype, full: bool = False) -> CheckResult:
    """Compares `module`'s kernel for `op` with the reference on `device` in `dtype` (forward and backward).

    An exception raised by the kernel (a launch error, say) is a failed check, reported with its message. An error
    that was already pending on the device before the check is not the kernel's: it is raised as it is.
    """
    if op not in CASES:
        raise ValueError(f"no self-check for op {op!r}; expected one of {sorted(CASES)}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # surfaces (and raises) earlier asynchronous errors before blaming ours
    tol = TOLERANCE[dtype]
    worst, count = 0.0, 0
    for name, run in CASES[op](module, device, dtype, full):
        try:
            got = run(True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # errors raised while our kernels ran belong to this case
        except Exception as exc:  # noqa: BLE001 - any failure of the kernel path fails the check
            return CheckResult(False, count, math.inf, f"case {name!r} raised {type(exc).__name__}: {exc}")
        want = run(False)
        for what, g, w in zip(("forward", "dx", "db"), got, want):
            if g.shape != w.shape:
                return CheckResult(False, count, math.inf, f"case {name!r} {what}: shape {list(g.shape)} vs "
                                                           f"{list(w.shape)}")
            err = ((g.double() - w.double()).abs().max() / w.double().abs().max().clamp(min=1)).item()
            if not err <= tol:  # NaN fails too
                return CheckResult(False, count, err, f"case {name!r} {what}: max relative error {err:.3g} > "
                                                      f"tolerance {tol:g}")
            worst = max(worst, err)
        count += 1
    return CheckResult(True, count, worst, None)
