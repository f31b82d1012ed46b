"""The projection schedule of NVlabs stylegan2-ada-pytorch `projector.py`, as pure functions of the step.

At t = step / num_steps: lr = initial_lr * rampdown * rampup with rampdown = 0.5 - 0.5 cos(pi * min(1, (1 - t) /
lr_rampdown_length)) and rampup = min(1, t / lr_rampup_length); the w noise std is w_std * initial_noise_factor *
max(0, 1 - t / noise_ramp_length)^2.
"""
from __future__ import annotations

import math

from .config import ProjectionConfig


def learning_rate_at(step: int, num_steps: int, cfg: ProjectionConfig) -> float:
    """Adam's learning rate at `step` of `num_steps` (0 at step 0: the ramp-up starts from zero, as official)."""
    t = step / num_steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / cfg.lr_rampup_length)
    return cfg.initial_learning_rate * ramp


def w_noise_scale_at(step: int, num_steps: int, w_std: float, cfg: ProjectionConfig) -> float:
    """Standard deviation of the Gaussian noise added to the latents at `step` (exploration early on, 0 after
    noise_ramp_length)."""
    t = step / num_steps
    return w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2


__all__ = ["learning_rate_at", "w_noise_scale_at"]
