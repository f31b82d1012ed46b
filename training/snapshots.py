"""What a run shows of itself: the reals grid, G_ema's sample grids, the SWD and the `--metrics` logged at
snapshots.

The grid latents are drawn once from their own seeded generator, so every `fakes*.png` of a run shows the same
latents and the training RNG stream is never touched. Only rank 0 makes snapshots.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from ..images import save_image_grid
from ..metrics import (MIN_RESOLUTION, DescriptorSet, MetricOptions, Processes, RealImages, compute_metric,
                       protocol_for, real_descriptors, swd_for_generator)
from .config import TrainConfig
from .dataset import ImageDataset, to_float
from .schedule import Phase

SNAPSHOT_PSIS = (1.0, 0.7)
GRID_COLS = 8
GRID_ROWS_PER_PSI = 2
GRID_SEED_OFFSET = 12345  # grid latents come from seed + this, apart from the training stream


def one_hot(labels: torch.Tensor, label_size: int) -> torch.Tensor:
    """Class indices -> float one-hot rows (the label format of G and D)."""
    return torch.nn.functional.one_hot(labels.long(), label_size).float()


class Snapshots:
    """Writes reals.png and fakes<kimg>.png, and computes the snapshot SWD of G_ema."""

    def __init__(self, cfg: TrainConfig, outdir: Path, dataset: ImageDataset, label_size: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.outdir = outdir
        self.dataset = dataset
        self.device = device
        g = torch.Generator().manual_seed(cfg.seed + GRID_SEED_OFFSET)
        n = GRID_COLS * GRID_ROWS_PER_PSI
        self.grid_z = torch.randn(n, cfg.latent_size, generator=g)
        self.grid_c = one_hot(torch.arange(n) % label_size, label_size) if label_size else None
        self._swd_reals: Dict[int, DescriptorSet] = {}  # resolution -> descriptors of the reals (one at a time)

    def save_reals(self) -> Path:
        n = min(GRID_COLS * GRID_ROWS_PER_PSI, len(self.dataset))
        x = torch.stack([self.dataset[i][0] for i in range(n)])
        path = self.outdir / "reals.png"
        save_image_grid(to_float(x), path, GRID_COLS)
        return path

    @torch.no_grad()
    def save_fakes(self, G_ema: torch.nn.Module, phase: Phase, images_shown: int) -> Path:
        """G_ema on the grid latents at psi 1 and 0.7 (official cutoff), const noise, upscaled to the final size."""
        G_ema.eval()
        z = self.grid_z.to(self.device)
        c = self.grid_c.to(self.device) if self.grid_c is not None else None
        images = []
        for psi in SNAPSHOT_PSIS:
            ws = G_ema.truncate(G_ema.mapping(z, c), psi, G_ema.config.truncation_cutoff)
            images.append(G_ema.synthesis(ws, lod=phase.lod, noise_mode="const"))
        path = self.outdir / f"fakes{images_shown // 1000:06d}.png"
        save_image_grid(torch.cat(images), path, GRID_COLS, upscale_to=self.cfg.resolution)
        return path

    def metrics(self, G_ema: torch.nn.Module, phase: Phase) -> Dict[str, Any]:
        """SWD x 1e3 of G_ema against the reals at the current resolution (`swd_num` images per set; nothing below
        16 px, where the protocol has no pyramid level). The reals' descriptors are made once per resolution."""
        num = min(self.cfg.swd_num, len(self.dataset))
        if num < 1 or phase.resolution < MIN_RESOLUTION:
            return {}
        if phase.resolution not in self._swd_reals:
            self._swd_reals = {phase.resolution: real_descriptors(self.dataset, num, phase.resolution,
                                                                  seed=self.cfg.seed)}
        G_ema.eval()
        result = swd_for_generator(G_ema, self._swd_reals[phase.resolution], num, lod=phase.lod,
                                   seed=self.cfg.seed, device=self.device)
        return {k: round(v, 4) for k, v in result.items()}

    def chosen_metrics(self, G_ema: torch.nn.Module, phase: Phase) -> Dict[str, Any]:
        """The `--metrics` of G_ema at the current resolution (reals box-downsampled to it), by their protocols
        with `metrics_num` generated images when set, seeded by the run's seed: the numbers `stylegan metrics`
        prints for the checkpoint. Rank 0 alone computes them (one process; the other ranks do not wait)."""
        cfg = self.cfg
        if not cfg.metric_names:
            return {}
        G_ema.eval()
        reals = RealImages.of(self.dataset, phase.resolution, name=cfg.data)
        opts = MetricOptions(inception=cfg.inception, vgg16=cfg.vgg16, seed=cfg.seed, lod=phase.lod,
                             device=self.device, processes=Processes())
        record: Dict[str, Any] = {}
        for name in cfg.metric_names:
            result = compute_metric(protocol_for(name, cfg.metrics_num), G=G_ema, reals=reals, opts=opts)
            record.update({k: round(v, 6) for k, v in result.results.items()})
            record.update(result.details)
            record[f"{result.name}_time_s"] = round(result.seconds, 2)
        return record
