"""Training the projection encoder (encoder.py) on the generator's own samples: image -> the ws that made it.

Each step draws z (and, for a conditional generator, a random class per sample), maps them to w, and with
probability mixing_prob per sample switches to a second latent's w from a random layer on (style mixing as in
training), so the encoder sees W+ points, not only W. The images are rendered with fresh random noise (the encoder
must not depend on it) without gradient. Loss: MSE of the predicted ws against the true ones in the normalised
space (w - w_mean) / w_std, plus image_weight x MSE of the predicted ws' image against the sample (optional: it
back-propagates through the generator, about three times the cost of a step without it). Adam (0.9, 0.99), lr with
a cosine decay to 0 over the run. Deterministic given `seed`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import JsonConfig
from ..generate import model_device
from ..metrics.path_length import noise_shapes
from .encoder import Encoder, EncoderConfig, EncoderFile

MAPPING_BATCH = 1000
LOG_EVERY_KIMG = 1.0


@dataclass(frozen=True)
class EncoderTrainConfig(JsonConfig):
    """`stylegan encoder train` options (total_kimg: thousands of generated images shown)."""

    total_kimg: float = 50.0
    batch: int = 32
    lrate: float = 0.001
    mixing_prob: float = 0.5
    image_weight: float = 0.0
    seed: int = 0
    w_stat_samples: int = 10000

    def __post_init__(self) -> None:
        for name, minimum in (("batch", 1), ("seed", 0), ("w_stat_samples", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}={value!r} is invalid: expected an int >= {minimum}")
        for name, positive in (("total_kimg", True), ("lrate", True), ("image_weight", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (positive and value == 0):
                raise ValueError(f"{name}={value!r} is invalid: expected a finite number {'>' if positive else '>='} 0")
        if not 0 <= self.mixing_prob <= 1:
            raise ValueError(f"mixing_prob={self.mixing_prob!r} is invalid: expected a probability in [0, 1]")


def _random_labels(G: torch.nn.Module, n: int, rng: torch.Generator) -> Optional[torch.Tensor]:
    label_size = int(G.config.label_size)
    if not label_size:
        return None
    return F.one_hot(torch.randint(label_size, (n,), generator=rng), label_size).to(torch.float32)


@torch.no_grad()
def w_dimension_statistics(G: torch.nn.Module, samples: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], std [D]) per dimension of `samples` mapped latents (random classes for a conditional G)."""
    device, rng = model_device(G), torch.Generator().manual_seed(seed)
    ws = []
    for start in range(0, samples, MAPPING_BATCH):
        n = min(MAPPING_BATCH, samples - start)
        z = torch.randn(n, int(G.config.latent_size), generator=rng)
        labels = _random_labels(G, n, rng)
        ws.append(G.mapping(z.to(device), None if labels is None else labels.to(device))[:, 0].float().cpu())
    w = torch.cat(ws)
    std = w.std(dim=0)
    if not torch.isfinite(w).all() or not (std > 0).all():
        raise ValueError(f"the network's mapping network has no usable statistics ({int((std <= 0).sum())} of "
                         f"{std.numel()} dimensions of w without spread, or non-finite values, over {samples} "
                         f"mapped latents)")
    return w.mean(dim=0), std


@torch.no_grad()
def sample_ws_and_images(G: torch.nn.Module, n: int, mixing_prob: float, rng: torch.Generator):
    """(ws [n, L, D], one-hot labels or None, images [n, C, R, R]) of n random style-mixed samples of G."""
    device, L = model_device(G), int(G.num_layers)
    labels = _random_labels(G, n, rng)
    labels_dev = None if labels is None else labels.to(device)
    z = torch.randn(2, n, int(G.config.latent_size), generator=rng).to(device)
    ws = G.mapping(z[0], labels_dev)
    mixed = G.mapping(z[1], labels_dev)
    cutoff = torch.randint(1, L, (n, 1), generator=rng)
    mix = (torch.rand(n, 1, generator=rng) < mixing_prob) & (torch.arange(L)[None] >= cutoff)
    ws = torch.where(mix[:, :, None].to(device), mixed, ws)
    shapes = noise_shapes(G) or []
    noise = [torch.randn((n,) + tuple(s[1:]), generator=rng).to(device) for s in shapes] or None
    images = G.synthesis(ws, noise_mode="none" if noise is None else "random", noise=noise)
    return ws, labels, images.float()


def train_encoder(G: torch.nn.Module, cfg: EncoderTrainConfig, G_sha256: str, network_sha256: str = "",
                  progress: Optional[bool] = None, log_fn=None) -> EncoderFile:
    """Trains an encoder for G (see the module docstring); G's parameters are left as they were."""
    device = model_device(G)
    grad_flags = [p.requires_grad for p in G.parameters()]
    G.eval().requires_grad_(False)
    try:
        with torch.random.fork_rng(devices=[]):  # the random noise of the samples; the caller's RNG is untouched
            torch.manual_seed(cfg.seed)
            w_mean, w_std = w_dimension_statistics(G, cfg.w_stat_samples, cfg.seed)
            encoder = Encoder(EncoderConfig.for_generator(G))
            encoder.set_w_statistics(w_mean, w_std)
            encoder.to(device).train()
            optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg.lrate, betas=(0.9, 0.99))
            rng = torch.Generator().manual_seed(cfg.seed + 1)
            steps = max(1, int(round(cfg.total_kimg * 1000 / cfg.batch)))
            log, totals, since, start = [], np.zeros(2), 0, time.time()
            bar = tqdm(total=steps, desc="training encoder", unit="step", disable=progress is False, leave=False)
            with bar:
                for step in range(steps):
                    for group in optimizer.param_groups:
                        group["lr"] = cfg.lrate * 0.5 * (1 + math.cos(math.pi * step / steps))
                    ws, labels, images = sample_ws_and_images(G, cfg.batch, cfg.mixing_prob, rng)
                    pred = encoder.forward_normalized(images, None if labels is None else labels.to(device))
                    ws_loss = (pred - encoder.normalize(ws)).square().mean()
                    loss = ws_loss
                    image_loss = torch.zeros(())
                    if cfg.image_weight > 0:
                        rendered = G.synthesis(pred * encoder.w_std + encoder.w_mean, noise_mode="const")
                        image_loss = (rendered.float() - images).square().mean()
                        loss = loss + cfg.image_weight * image_loss
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    totals += (float(ws_loss.detach()), float(image_loss.detach()))
                    since += 1
                    kimg = (step + 1) * cfg.batch / 1000
                    if kimg // LOG_EVERY_KIMG > step * cfg.batch / 1000 // LOG_EVERY_KIMG or step in (0, steps - 1):
                        record = {"kimg": round(kimg, 3), "ws_loss": float(totals[0] / since),
                                  "image_loss": float(totals[1] / since), "sec": round(time.time() - start, 1)}
                        log.append(record)
                        if log_fn:
                            log_fn(record)
                        totals, since = np.zeros(2), 0
                    bar.set_postfix_str(f"ws loss {float(ws_loss.detach()):.4f}")
                    bar.update(1)
        encoder.eval()
        return EncoderFile(encoder, G_sha256, network_sha256, G.config.to_dict(), cfg.to_dict(), log)
    finally:
        for p, flag in zip(G.parameters(), grad_flags):
            p.requires_grad_(flag)


__all__ = ["EncoderTrainConfig", "train_encoder", "w_dimension_statistics", "sample_ws_and_images"]
