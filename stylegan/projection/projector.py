"""`stylegan.project(G, targets)`: find the latents (and noise maps) whose image reproduces each target.

The optimisation of NVlabs stylegan2-ada-pytorch `projector.py` (W space): start at the mean w of
`w_avg_samples` mapped latents (np.random.RandomState(123)), Adam (0.9, 0.999) on w and the noise maps together,
the learning-rate ramp and the w noise of `schedule.py`, the noise penalty weighted 1e5 and the maps renormalised
after every step (`noise_regularization.py`). `space='wplus'` optimises one w per layer from the same start
(Image2StyleGAN); `noise_steps` then runs that many steps on the noise maps alone with the latents fixed, same lr
schedule over its own length (peak noise_learning_rate) and no w noise (Image2StyleGAN++'s order). Several targets are one batch: each has
its own latents and noise maps, and the summed loss gives each only its own gradient.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from ..generate import labels_for, model_device, synthesize
from ..image_similarity import psnr, ssim
from ..images import to_uint8, to_uint8_nchw
from ..metrics.path_length import noise_shapes
from ..precision import FP32, Precision
from .config import ProjectionConfig
from .encoder import Encoder, EncoderConfig
from .losses import PixelLoss
from .noise_regularization import noise_regularization, normalize_noise_
from .schedule import learning_rate_at, w_noise_scale_at
from .targets import uint8_to_float

MAPPING_BATCH = 1000
DEFAULT_FRAMES = 50  # progress frames kept by default over the whole run


@dataclass
class Projection:
    """The result for N targets: ws [N, num_layers, dlatent_size] and noise maps (each [N, 1, H, W], None for a
    network without noise) on the CPU; images = their rendering (uint8 [N, H, W, C], what proj.png holds);
    log = one record per step; frames = (step, uint8 [N, H, W, C]) snapshots of the optimisation."""

    ws: torch.Tensor
    noise: Optional[List[torch.Tensor]]
    images: np.ndarray
    targets: np.ndarray
    psnr: List[float]
    ssim: List[float]
    log: List[Dict[str, Any]] = field(default_factory=list)
    frames: List[Any] = field(default_factory=list)
    w_std: List[float] = field(default_factory=list)  # per target: the RMS spread of its class' mapped latents


@torch.no_grad()
def w_statistics(G: torch.nn.Module, samples: int, seed: int = 123, class_idx: Optional[int] = None):
    """(w_avg [dlatent_size] float32, w_std): mean and RMS distance to it of `samples` mapped latents (official
    projector.py). ValueError when the mapping network gives no usable statistics (non-finite or no spread)."""
    device = model_device(G)
    z = torch.from_numpy(np.random.RandomState(seed).randn(samples, int(G.config.latent_size))).to(torch.float32)
    ws = []
    for start in range(0, samples, MAPPING_BATCH):
        chunk = z[start:start + MAPPING_BATCH].to(device)
        ws.append(G.mapping(chunk, labels_for(G, class_idx, chunk.shape[0]))[:, 0].float().cpu())
    w = torch.cat(ws)
    w_avg = w.mean(dim=0)
    w_std = float(((w - w_avg).square().sum() / samples).sqrt())
    if not torch.isfinite(w_avg).all() or not np.isfinite(w_std) or w_std <= 0:
        raise ValueError(f"the network's mapping network has no usable statistics (w_std={w_std!r} over {samples} "
                         f"mapped latents): its mapping weights are missing, degenerate or non-finite")
    return w_avg, w_std


def _check_targets(G: torch.nn.Module, targets: torch.Tensor) -> torch.Tensor:
    if targets.ndim == 3:
        targets = targets[None]
    res, ch = int(G.config.resolution), int(G.config.num_channels)
    if targets.dtype != torch.uint8 or targets.ndim != 4 or tuple(targets.shape[1:]) != (ch, res, res) \
            or targets.shape[0] < 1:
        raise ValueError(f"targets are {targets.dtype} {list(targets.shape)}: expected uint8 [N, {ch}, {res}, {res}] "
                         f"(stylegan.projection.load_target prepares image files)")
    return targets


def targets_as_saved(targets: torch.Tensor) -> np.ndarray:
    """uint8 [N, R, R, C] of uint8 targets [N, C, R, R] through the float range and back: what target.png holds."""
    return to_uint8(targets.float() / 127.5 - 1)


def _image_scores(images: torch.Tensor, targets: torch.Tensor):
    """(PSNR, SSIM) lists of float [-1, 1] images quantised as saved (to_uint8_nchw) against uint8 targets."""
    pixels = to_uint8_nchw(images).float()
    t = targets.to(pixels.device).float()
    return psnr(pixels, t).tolist(), ssim(pixels, t).tolist()


def project(G: torch.nn.Module, targets: torch.Tensor, config: Optional[ProjectionConfig] = None,
            loss: Optional[Callable[[torch.Tensor], Dict[str, torch.Tensor]]] = None,
            class_idx: Optional[Union[int, Sequence[int]]] = None, seed: int = 0, progress: Optional[bool] = None,
            frame_every: Optional[int] = None, encoder: Optional[Encoder] = None,
            on_step: Optional[Callable[[int, int, Dict[str, Any], torch.Tensor], None]] = None,
            precision: Precision = FP32) -> Projection:
    """Projects uint8 targets [N, C, R, R] (or [C, R, R]) into G's latent space; see the module docstring.

    loss: maps images [N, C, R, R] in [-1, 1] to a dict of [N] terms with 'loss' (losses.LpipsLoss / PixelLoss;
    default PixelLoss of the targets). seed: the noise maps' start and the w noise. class_idx: the label of a
    conditional network (its w_avg and w_std start the search), one for all targets or one per target.
    frame_every: steps between progress frames.
    encoder: start from its ws of the targets (encoder.py; their mean over layers for space 'w') instead of w_avg.
    on_step(step, total, record, images): called after every step with that step's log record and the images it
    scored (`stylegan serve` shows progress, answers other requests and cancels by raising from it).
    precision (stylegan.precision): the synthesis network's arithmetic during the optimisation steps; the loss
    takes its images in float32, and the result (images, PSNR, SSIM) is always rendered in float32 by `render`,
    so proj.png is what `stylegan generate --ws` draws from the same file.
    """
    cfg = config or ProjectionConfig()
    targets = _check_targets(G, targets)
    n, device = targets.shape[0], model_device(G)
    loss = loss or PixelLoss(targets.to(device))
    classes = _classes_per_target(class_idx, n)
    for c in set(classes):
        labels_for(G, c, 1)  # the class check, before any work
    if encoder is not None and encoder.config != EncoderConfig.for_generator(G):
        raise ValueError(f"the encoder was built for {encoder.config.to_dict()}, not this generator "
                         f"({EncoderConfig.for_generator(G).to_dict()})")
    total = cfg.num_steps + cfg.noise_steps
    frame_every = frame_every or max(1, total // DEFAULT_FRAMES)
    grad_flags = [p.requires_grad for p in G.parameters()]
    G.eval().requires_grad_(False)
    try:
        stats = {c: w_statistics(G, cfg.w_avg_samples, cfg.w_avg_seed, c) for c in dict.fromkeys(classes)}
        w_std = [stats[c][1] for c in classes]
        rng = torch.Generator().manual_seed(int(seed))
        layers = int(G.num_layers) if cfg.space == "wplus" else 1
        if encoder is None:
            w_start = torch.stack([stats[c][0] for c in classes]).view(n, 1, -1).repeat(1, layers, 1)
        else:
            w_start = encoder_start(encoder, targets, classes)
            w_start = w_start if cfg.space == "wplus" else w_start.mean(dim=1, keepdim=True)
        w_opt = w_start.to(device).requires_grad_(True)
        shapes = noise_shapes(G) or []
        noise = [torch.randn((n, 1) + tuple(s[2:]), generator=rng).to(device).requires_grad_(True) for s in shapes]
        result = Projection(ws=w_opt, noise=noise or None, images=np.zeros(0), targets=targets_as_saved(targets),
                            psnr=[], ssim=[], w_std=w_std)
        stages = [("latent", cfg.num_steps, [w_opt] + noise, cfg.initial_learning_rate)]
        if cfg.noise_steps and noise:
            stages.append(("noise", cfg.noise_steps, noise, cfg.noise_learning_rate))
        bar = tqdm(total=sum(s[1] for s in stages), desc="projecting", unit="step", disable=progress is False,
                   leave=False)
        step_count = 0
        with bar:
            for stage, steps, params, peak_lr in stages:
                optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=peak_lr)
                for step in range(steps):
                    lr = learning_rate_at(step, steps, cfg) * peak_lr / cfg.initial_learning_rate
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    w = w_opt
                    if stage == "latent":
                        scale = torch.tensor([w_noise_scale_at(step, steps, s, cfg) for s in w_std]).view(n, 1, 1)
                        # one noise vector per target shared by all its layers: exploration in W, also for W+
                        w = w_opt + (torch.randn((n, 1, w_opt.shape[2]), generator=rng) * scale).to(device)
                    ws = w.expand(n, int(G.num_layers), -1)
                    images = precision.run(G.synthesis, ws, noise_mode="const", noise=noise or None)
                    terms = loss(images)
                    reg = noise_regularization(noise) if noise else torch.zeros(n, device=device)
                    total_loss = terms["loss"].sum() + reg.sum() * cfg.regularize_noise_weight
                    optimizer.zero_grad(set_to_none=True)
                    total_loss.backward()
                    optimizer.step()
                    if noise:
                        normalize_noise_(noise)
                    step_count += 1
                    scores = _image_scores(images.detach(), targets)
                    record = {"step": step_count, "stage": stage, "lr": lr,
                              **{k: v.detach().float().cpu().tolist() for k, v in terms.items()},
                              "noise_reg": reg.detach().float().cpu().tolist(), "psnr": scores[0],
                              "ssim": scores[1]}
                    result.log.append(record)
                    if step_count % frame_every == 0 or step_count == 1:
                        result.frames.append((step_count, to_uint8(images.detach())))
                    bar.set_postfix_str(f"PSNR {np.mean(scores[0]):.2f} dB")
                    bar.update(1)
                    if on_step is not None:
                        on_step(step_count, bar.total, record, images.detach())
        final_ws = w_opt.detach().expand(n, int(G.num_layers), -1).clone()
        final_noise = [m.detach().clone() for m in noise] or None
        result.ws = final_ws.cpu()
        result.noise = None if final_noise is None else [m.cpu() for m in final_noise]
        result.images = np.concatenate([render(G, final_ws[i:i + 1], None if final_noise is None else
                                               [m[i:i + 1] for m in final_noise]) for i in range(n)])
        pixels = torch.from_numpy(result.images).permute(0, 3, 1, 2).float()
        result.psnr = psnr(pixels, targets.cpu().float()).tolist()
        result.ssim = ssim(pixels, targets.cpu().float()).tolist()
        if not result.frames or result.frames[-1][0] != step_count:
            result.frames.append((step_count, result.images))
        return result
    finally:
        for p, flag in zip(G.parameters(), grad_flags):
            p.requires_grad_(flag)


def _classes_per_target(class_idx: Optional[Union[int, Sequence[int]]], n: int) -> List[Optional[int]]:
    if class_idx is None or isinstance(class_idx, (int, np.integer)):
        return [None if class_idx is None else int(class_idx)] * n
    classes = list(class_idx)
    if len(classes) != n:
        raise ValueError(f"class_idx has {len(classes)} entries for {n} targets: expected one class, or one per target")
    return classes


@torch.no_grad()
def encoder_start(encoder: Encoder, targets: torch.Tensor,
                  class_idx: Optional[Union[int, Sequence[int]]] = None) -> torch.Tensor:
    """ws [N, num_layers, dlatent_size] float32 on the CPU: the encoder's guess for uint8 targets [N, C, R, R]
    (class_idx: for a label-conditional encoder, one class for all targets or one per target)."""
    device = next(encoder.parameters()).device
    labels = None
    if encoder.config.label_size:
        classes = _classes_per_target(class_idx, targets.shape[0])
        bad = [c for c in classes if c is None or not 0 <= int(c) < encoder.config.label_size]
        if bad:
            raise ValueError(f"class_idx={class_idx!r}: the encoder is label-conditional, expected a class in "
                             f"[0, {encoder.config.label_size}) for every target")
        labels = torch.zeros(targets.shape[0], encoder.config.label_size)
        labels[torch.arange(targets.shape[0]), torch.tensor(classes)] = 1.0
    was_training = encoder.training
    try:
        return encoder.eval()(uint8_to_float(targets).to(device), labels).float().cpu()
    finally:
        encoder.train(was_training)


def render(G: torch.nn.Module, ws: torch.Tensor, noise: Optional[List[torch.Tensor]] = None) -> np.ndarray:
    """uint8 [N, H, W, C] of ws with explicit noise maps (or the stored ones), one image per forward: the one
    rendering that proj.png, `stylegan generate --ws` and `stylegan edit` share, so their pixels agree exactly."""
    return synthesize(G, ws, noise_mode="const", batch_size=1, progress=False, noise=noise)


__all__ = ["project", "Projection", "render", "w_statistics", "encoder_start"]
