"""The NVlabs float16 recipe (stylegan2-ada-pytorch) for `--precision fp16`: which layers run in float16, the clamp
of their outputs, and the repair of non-finite gradients.

Why a recipe and not plain float16 autocast: float16's range ends at 65504 and its low resolutions carry most of
the per-pixel magnitude, so NVlabs runs only the `num_fp16_res` highest resolutions in float16 (default 4), clamps
every convolution layer's output to +-256 (`conv_clamp`, through bias_act's clamp) and replaces NaN/Inf in the
parameter gradients before each optimiser step instead of using a loss scaler. Sources (facts only):
stylegan2-ada-pytorch train.py (`num_fp16_res = 4`, `conv_clamp = 256` when fp16 is on), training/networks.py
(`fp16_resolution = max(2 ** (log2(img_resolution) + 1 - num_fp16_res), 8)`; a block uses fp16 when
`resolution >= fp16_resolution`; the conv layers and ToRGB pass `clamp=conv_clamp` to bias_act) and
training/training_loop.py (`nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5)` for every parameter).

The recipe is device-independent logic; only its speed needs a CUDA device (stylegan/precision.py refuses fp16 on
a CPU). The networks ask this module, per layer, whether a recipe is active (`active()`, set by
`Precision.autocast()` for fp16); without one (fp32, bf16) nothing here changes a result.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

from stylegan.ops.autocast import run_in_float32

DEFAULT_NUM_FP16_RES = 4      # stylegan2-ada-pytorch train.py: num_fp16_res = 4
CONV_CLAMP = 256.0            # stylegan2-ada-pytorch train.py: conv_clamp = 256
MIN_FP16_RESOLUTION = 8       # training/networks.py: max(..., 8): 4x4 never runs in fp16
GRAD_POSINF, GRAD_NEGINF = 1e5, -1e5  # training/training_loop.py: nan_to_num(nan=0, posinf=1e5, neginf=-1e5)


def fp16_resolution(max_resolution: int, num_fp16_res: int) -> int:
    """The lowest resolution that runs in float16 for a network of `max_resolution` (official formula); a value
    above max_resolution (num_fp16_res 0) means no layer does."""
    if max_resolution < 4 or max_resolution & (max_resolution - 1):
        raise ValueError(f"max_resolution={max_resolution} is invalid: expected a power of two >= 4")
    if isinstance(num_fp16_res, bool) or not isinstance(num_fp16_res, int) or num_fp16_res < 0:
        raise ValueError(f"num_fp16_res={num_fp16_res!r} is invalid: expected an int >= 0")
    if num_fp16_res == 0:
        return 2 * max_resolution
    return max(2 ** (int(math.log2(max_resolution)) + 1 - num_fp16_res), MIN_FP16_RESOLUTION)


@dataclass(frozen=True)
class Recipe:
    """The recipe's settings while a float16 region runs."""

    num_fp16_res: int = DEFAULT_NUM_FP16_RES
    conv_clamp: Optional[float] = CONV_CLAMP

    def uses_fp16(self, resolution: int, max_resolution: int) -> bool:
        return resolution >= fp16_resolution(max_resolution, self.num_fp16_res)


_ACTIVE: contextvars.ContextVar[Optional[Recipe]] = contextvars.ContextVar("stylegan_fp16_recipe", default=None)


def active() -> Optional[Recipe]:
    """The recipe of the float16 region running now, or None (fp32, bf16, or outside any region)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def recipe_region(recipe: Recipe) -> Iterator[Recipe]:
    """Makes `recipe` the active one while the block runs (Precision.autocast does this for fp16)."""
    token = _ACTIVE.set(recipe)
    try:
        yield recipe
    finally:
        _ACTIVE.reset(token)


def conv_clamp() -> Optional[float]:
    """bias_act's clamp for a convolution layer's output now: CONV_CLAMP under the recipe, else None (no clamp)."""
    recipe = active()
    return None if recipe is None else recipe.conv_clamp


def run_at_resolution(resolution: int, max_resolution: int, fn: Callable[..., torch.Tensor], *args: Any
                      ) -> torch.Tensor:
    """fn(*args) for a layer at `resolution`: as it is without a recipe or where the recipe runs float16, else in
    float32 (autocast off, float32 inputs: the official float32 blocks cast their inputs to their own dtype)."""
    recipe = active()
    if recipe is None or recipe.uses_fp16(resolution, max_resolution):
        return fn(*args)
    return run_in_float32(fn, *args)


@torch.no_grad()
def nan_to_num_grads_(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replaces NaN by 0 and +-Inf by +-1e5 in every parameter gradient, in place (the official loop's repair of
    float16 overflow before the optimiser step; no loss scaler)."""
    for p in parameters:
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0.0, posinf=GRAD_POSINF, neginf=GRAD_NEGINF, out=p.grad)


__all__ = ["DEFAULT_NUM_FP16_RES", "CONV_CLAMP", "Recipe", "fp16_resolution", "active", "recipe_region",
           "conv_clamp", "run_at_resolution", "nan_to_num_grads_"]
