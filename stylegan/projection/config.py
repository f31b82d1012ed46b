"""ProjectionConfig: every knob of `stylegan.project`, field names and defaults as NVlabs stylegan2-ada-pytorch
`projector.py` (`project(...)` keyword arguments), plus the W+ space, the noise-only stage and the loss choice."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import JsonConfig

SPACES = ("w", "wplus")
LOSSES = ("auto", "lpips", "pixel")


@dataclass(frozen=True)
class ProjectionConfig(JsonConfig):
    """W: one w for every layer (projector.py); W+: one w per layer (Image2StyleGAN), same schedule.
    noise_steps: then that many steps on the noise maps alone, latents fixed (Image2StyleGAN++ order)."""

    space: str = "w"
    num_steps: int = 1000
    noise_steps: int = 0
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    noise_learning_rate: float = 0.01  # peak lr of the noise-only stage (ours: its maps start converged already)
    mse_weight: float = 0.0  # added to the LPIPS distance (Image2StyleGAN's MSE term); the pixel loss has its own
    w_avg_seed: int = 123    # projector.py: np.random.RandomState(123) draws the w_avg_samples latents

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"space={self.space!r} is invalid: expected one of {', '.join(SPACES)}")
        for name, minimum in (("num_steps", 1), ("noise_steps", 0), ("w_avg_samples", 2), ("w_avg_seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}={value!r} is invalid: expected an int >= {minimum}")
        for name in ("initial_learning_rate", "noise_learning_rate", "initial_noise_factor", "regularize_noise_weight", "mse_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"{name}={value!r} is invalid: expected a finite number >= 0")
        for name in ("lr_rampdown_length", "lr_rampup_length", "noise_ramp_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValueError(f"{name}={value!r} is invalid: expected a fraction of the steps in (0, 1]")


__all__ = ["ProjectionConfig", "SPACES", "LOSSES"]
