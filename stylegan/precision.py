"""The one numeric-precision setting of every command: parse `--precision`, resolve `auto`, and the autocast region.

Why one place: train, generate, style-mixing, interpolate, metrics and bench all run G (and train runs D) under the
same rule, and the choice must be printed and saved the same way everywhere.

- `fp32`: no autocast at all; the exact, official-equal path.
- `bf16`: `torch.autocast(device, torch.bfloat16)` around the forward of G and D: convolutions and dense layers run
  in bfloat16 (oneDNN on CPU, tensor cores on CUDA); the fused ops (bias_act, upfirdn2d) take bfloat16 in their
  kernels; parameters, optimiser state, G_ema, w_avg, losses and penalties stay float32. No clamp is needed
  (bfloat16 has float32's exponent range).
- `fp16` (CUDA only): the NVlabs stylegan2-ada recipe (stylegan/fp16_recipe.py): autocast to float16 in the
  `num_fp16_res` highest resolutions only, conv outputs clamped to +-256, non-finite gradients replaced before each
  optimiser step. On a CPU it is refused: CPUs have no fast float16 convolutions, and bf16 (same speed where the
  CPU has native bf16, no overflow) is the CPU's mixed precision.
- `auto`: bf16 on a CPU with native bf16 (`amx_bf16` / `avx512_bf16` in its flags) and on CUDA devices with bf16
  (compute capability >= 8.0), the fp16 recipe on older CUDA devices, else fp32.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Optional, Sequence, Tuple

import torch

from .fp16_recipe import DEFAULT_NUM_FP16_RES, Recipe, recipe_region

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic: Intel AMX, AVX512-BF16 (Intel Cooper Lake+, AMD Zen 4+).
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_CUDA_CAPABILITY = (8, 0)
FP16_ON_CPU = ("precision 'fp16' is for CUDA devices only (the NVlabs fp16 recipe); on a CPU use bf16 (fast where "
               "the CPU has native bf16) or fp32")


class SlowPrecisionWarning(UserWarning):
    """bf16 requested on a CPU without native bf16 arithmetic: it runs, emulated, and slower than fp32."""


def parse_precision(value: object) -> str:
    """'auto' | 'fp32' | 'bf16' | 'fp16' (case-insensitive); ValueError naming the value otherwise."""
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in PRECISIONS:
        raise ValueError(f"precision {value!r} is invalid: expected one of {', '.join(PRECISIONS)}")
    return text


def cpu_flags() -> Tuple[str, ...]:
    """This CPU's instruction-set flags (the ones the kernel build is keyed on)."""
    from .ops.build import cpu_identity

    return tuple(cpu_identity().split())


def native_bf16_flag(flags: Iterable[str]) -> Optional[str]:
    """The first flag of NATIVE_BF16_CPU_FLAGS present in `flags`, or None."""
    present = set(flags)
    return next((f for f in NATIVE_BF16_CPU_FLAGS if f in present), None)


@dataclass(frozen=True)
class Precision:
    """A resolved precision: `name` is 'fp32', 'bf16' or 'fp16' for `device_type`; `reason` says why (printed);
    `num_fp16_res`: the fp16 recipe's number of float16 resolutions (unused otherwise)."""

    name: str
    device_type: str
    requested: str = "fp32"
    reason: str = ""
    num_fp16_res: int = DEFAULT_NUM_FP16_RES

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def mixed(self) -> bool:
        return self.name != "fp32"

    def autocast(self) -> ContextManager:
        """The region G's and D's forward run in: nothing for fp32, torch.autocast otherwise."""
        if not self.mixed:
            return contextlib.nullcontext()
        region = torch.autocast(device_type=self.device_type, dtype=self.dtype)
        if self.name != "fp16":
            return region
        stack = contextlib.ExitStack()  # fp16: the recipe decides per layer (stylegan/fp16_recipe.py)
        stack.enter_context(recipe_region(Recipe(self.num_fp16_res)))
        stack.enter_context(region)
        return stack

    def run(self, fn: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        """fn(*args, **kwargs) in the autocast region, its tensor result returned in float32 (what consumes G's
        images and D's scores - losses, penalties, uint8 conversion - stays float32)."""
        if not self.mixed:
            return fn(*args, **kwargs)
        with self.autocast():
            out = fn(*args, **kwargs)
        return out.float()

    def describe(self) -> str:
        """One line for the start of a run: what runs and why."""
        why = f" ({self.reason})" if self.reason else ""
        recipe = f", float16 in the {self.num_fp16_res} highest resolutions" if self.name == "fp16" else ""
        return f"precision {self.name}{why}{recipe}"


FP32 = Precision("fp32", "cpu", "fp32", "")


def resolve_precision(requested: str, device: torch.device, flags: Optional[Sequence[str]] = None,
                      cuda_capability: Optional[Tuple[int, int]] = None, warn: bool = True,
                      num_fp16_res: int = DEFAULT_NUM_FP16_RES) -> Precision:
    """The precision `requested` means on `device`. `flags` (CPU) and `cuda_capability` (CUDA) default to this
    machine's; tests inject them. fp16 on a CPU is a ValueError (the recipe is for GPUs); bf16 on a CPU without
    native bf16 runs after one SlowPrecisionWarning; bf16 on a CUDA device without it is a ValueError.
    `num_fp16_res`: the fp16 recipe's float16 resolutions (`stylegan train --fp16-res`)."""
    requested = parse_precision(requested)
    if isinstance(num_fp16_res, bool) or not isinstance(num_fp16_res, int) or num_fp16_res < 0:
        raise ValueError(f"num_fp16_res={num_fp16_res!r} is invalid: expected an int >= 0")
    device = torch.device(device)
    kind = device.type
    if requested == "fp32":
        return Precision("fp32", kind, requested, "requested")
    if kind == "cpu":
        flag = native_bf16_flag(cpu_flags() if flags is None else flags)
        if requested == "fp16":
            raise ValueError(FP16_ON_CPU)
        if requested == "auto":
            if flag:
                return Precision("bf16", kind, requested, f"auto: the CPU has native bf16 ({flag})")
            return Precision("fp32", kind, requested, "auto: the CPU has no native bf16 (amx_bf16 / avx512_bf16)")
        if not flag and warn:
            warnings.warn("precision bf16: this CPU has no native bf16 arithmetic (no amx_bf16 / avx512_bf16 "
                          "flag), so bf16 is emulated and slower than fp32", SlowPrecisionWarning, stacklevel=2)
        return Precision("bf16", kind, requested, "requested" + ("" if flag else ", emulated: slow on this CPU"))
    if kind == "cuda":
        cap = tuple(cuda_capability) if cuda_capability is not None else torch.cuda.get_device_capability(device)
        name = f"sm{cap[0]}{cap[1]}"
        if requested == "auto":
            if cap >= BF16_CUDA_CAPABILITY:
                return Precision("bf16", kind, requested, f"auto: {name} has bf16")
            return Precision("fp16", kind, requested, f"auto: {name} has no bf16: the fp16 recipe",
                             num_fp16_res=num_fp16_res)
        if requested == "fp16":
            return Precision("fp16", kind, requested, "requested", num_fp16_res=num_fp16_res)
        if cap < BF16_CUDA_CAPABILITY:
            raise ValueError(f"precision 'bf16' needs a CUDA device of compute capability >= 8.0; {device} is "
                             f"{name} (use fp32)")
        return Precision(requested, kind, requested, "requested")
    if requested == "auto":
        return Precision("fp32", kind, requested, f"auto: no mixed precision on {kind}")
    raise ValueError(f"precision {requested!r} is not available on device {device}; use fp32")


__all__ = ["PRECISIONS", "Precision", "FP32", "parse_precision", "resolve_precision", "native_bf16_flag",
           "cpu_flags", "SlowPrecisionWarning", "FP16_ON_CPU"]
