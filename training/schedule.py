"""The progressive-growing schedule as a pure function of the number of real images shown.

Same semantics as NVlabs stylegan `training/training_loop.py` `training_schedule()` (1-GPU defaults from
`train.py`): starting at `lod_initial_resolution`, each level is trained for `lod_training_kimg` (stabilise) and
then the next level is faded in over `lod_transition_kimg`; `lod` = log2(final) - log2(current) counts down to 0.
Being a pure function of `images_shown` is what makes `--resume` exact: the loop never keeps schedule state.

Also here: where each level starts (`level_starts`, and its inverse `images_at_lod`), and the small training
helpers whose constants come from the official code (EMA beta, level-change test, real-image fading).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from ..images import box_down2
from ..layers import upscale2d_nearest
from .config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """Training parameters at one moment; `lod` has the official meaning (0 = full resolution)."""

    images_shown: int
    kimg: float
    lod: float                 # official level of detail, >= 0
    resolution: int            # resolution the networks run at: 2 ** (R - floor(lod)) (official s.resolution)
    alpha: float               # weight of the newest (fading-in) layers: 1 - frac(lod); 1.0 when stable
    fading: bool               # True while a new level is being faded in (lod not an integer)
    batch: int                 # minibatch size (official s.minibatch)
    lr_G: float
    lr_D: float
    level_index: int           # 0 at lod_initial_resolution, +1 per doubling (counts the level being faded in)
    phase_index: int           # official phase_idx = floor(kimg / (training + transition))
    num_active_layers: int     # synthesis layers that run at this resolution: 2*log2(resolution) - 2
    done: bool                 # images_shown >= total_kimg * 1000


def resolution_at(lod: float, resolution_log2: int) -> int:
    """Resolution the networks run at for a given lod (official: 2 ** (R - floor(lod)))."""
    return 2 ** (resolution_log2 - int(math.floor(lod)))


def phase_at(images_shown: int, cfg: TrainConfig, world_size: int = 1) -> Phase:
    """Return the Phase (lod, resolution, batch, learning rates, ...) after `images_shown` real images.

    Official training_schedule(), line by line: phase_dur = training + transition kimg; phase_idx =
    floor(kimg / phase_dur); lod = R - log2(initial) - phase_idx - max(phase_kimg - training, 0) / transition,
    clipped at 0; resolution = 2 ** (R - floor(lod)); minibatch and learning rates looked up by that resolution.
    `cfg.batch` (the `--batch` option) replaces the minibatch dict at every resolution.
    """
    if images_shown < 0:
        raise ValueError(f"images_shown must be >= 0, got {images_shown}")
    kimg = images_shown / 1000.0
    R = cfg.resolution_log2
    phase_dur = cfg.lod_training_kimg + cfg.lod_transition_kimg
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur

    lod = float(R - math.floor(math.log2(cfg.lod_initial_resolution)))
    lod -= phase_idx
    if cfg.lod_transition_kimg > 0:
        lod -= max(phase_kimg - cfg.lod_training_kimg, 0.0) / cfg.lod_transition_kimg
    lod = max(lod, 0.0)
    resolution = resolution_at(lod, R)

    if cfg.batch is not None:
        batch = cfg.batch
    else:
        batch = cfg.minibatch_dict.get(resolution, cfg.minibatch_base)
    batch -= batch % world_size
    if batch < 1:
        raise ValueError(f"minibatch {batch} at {resolution}px is smaller than world_size {world_size}")

    lr_G = cfg.G_lrate_dict.get(resolution, cfg.G_lrate_base)
    lr_D = cfg.D_lrate_dict.get(resolution, cfg.D_lrate_base)
    if cfg.lrate_rampup_kimg > 0:
        rampup = min(kimg / cfg.lrate_rampup_kimg, 1.0)
        lr_G *= rampup
        lr_D *= rampup

    frac = lod - math.floor(lod)
    start_log2 = int(math.log2(cfg.lod_initial_resolution))
    level_index = (R - start_log2) - int(math.floor(lod))
    return Phase(
        images_shown=images_shown,
        kimg=kimg,
        lod=lod,
        resolution=resolution,
        alpha=1.0 - frac,
        fading=frac > 0.0,
        batch=batch,
        lr_G=lr_G,
        lr_D=lr_D,
        level_index=level_index,
        phase_index=phase_idx,
        num_active_layers=2 * int(math.log2(resolution)) - 2,
        done=images_shown >= cfg.total_kimg * 1000,
    )


def level_starts(cfg: TrainConfig) -> List[int]:
    """images_shown at which each level begins: 0 for the first, then the first image of each fade-in.

    Every resolution (and so every minibatch size) the run will use is in effect at one of these points.
    """
    levels = cfg.resolution_log2 - int(math.log2(cfg.lod_initial_resolution))
    training = int(cfg.lod_training_kimg * 1000)
    phase = int((cfg.lod_training_kimg + cfg.lod_transition_kimg) * 1000)
    return [0] + [training + 1 + i * phase for i in range(levels)]


def images_at_lod(cfg: TrainConfig, lod: float) -> int:
    """The first images_shown at which the schedule reaches `lod` (the inverse of phase_at's lod).

    ValueError when the run never reaches it (lod above the start level or below 0).
    """
    start_lod = cfg.resolution_log2 - int(math.log2(cfg.lod_initial_resolution))
    if not 0.0 <= lod <= start_lod:
        raise ValueError(f"lod {lod} is never reached: the run goes from lod {start_lod} to 0")
    levels_done = start_lod - math.ceil(lod)            # complete levels (stabilise + fade) before lod's fade
    fade = math.ceil(lod) - lod                         # how far into that fade
    kimg = levels_done * (cfg.lod_training_kimg + cfg.lod_transition_kimg)
    if fade > 0:
        kimg += cfg.lod_training_kimg + fade * cfg.lod_transition_kimg
    return int(round(kimg * 1000))


def level_key(lod: float) -> Tuple[int, int]:
    """(floor(lod), ceil(lod)): changes when a fade starts AND when it ends, like the official reset test."""
    return int(math.floor(lod)), int(math.ceil(lod))


def is_level_change(prev_lod: Optional[float], lod: float) -> bool:
    """True when Adam state should be reset (official `reset_opt_for_new_lod`: floor or ceil of lod changed).

    The official loop starts with prev_lod = -1, so the very first step also counts as a change; we return True
    for prev_lod None too (a fresh optimizer is already reset, so that is harmless).
    """
    if prev_lod is None:
        return True
    return level_key(prev_lod) != level_key(lod)


def ema_beta(batch: int, G_smoothing_kimg: float) -> float:
    """G_ema decay per step: 0.5 ** (batch / (G_smoothing_kimg * 1000)) (official Gs_beta; half-life in images)."""
    if G_smoothing_kimg <= 0:
        return 0.0
    return 0.5 ** (batch / (G_smoothing_kimg * 1000.0))


def fade_reals(x: torch.Tensor, lod: float) -> torch.Tensor:
    """Blend reals with their 2x-coarser version by frac(lod) (official process_reals 'FadeLOD').

    x must already be at resolution_at(lod). While a new level fades in, G's output is a blend of the new
    layers and the upsampled old ones, so D would otherwise see sharp reals vs half-blurry fakes.
    """
    t = lod - math.floor(lod)
    if t == 0.0:
        return x
    y = upscale2d_nearest(box_down2(x))
    return x + (y - x) * t
