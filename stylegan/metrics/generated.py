"""Generated images for the metrics: image i is a pure function of (seed, i), so runs, batch sizes and ranks agree.

Why seeded per image: the same command must give the same number whatever --batch is, and under torchrun each rank
makes only its share of the batches; drawing every image's latents, labels and noise from its own generators makes
image i the same whoever makes it, in whatever batch. As the official metrics code: truncation psi 1 by default, labels of the
fakes drawn from the dataset's labels (uniform over the classes when the data has none), images converted with
x * 127.5 + 128, clamped, to uint8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from ..generate import model_device
from ..images import to_uint8_nchw
from ..precision import FP32, Precision
from .path_length import noise_shapes

STREAM_LATENTS, STREAM_LABELS, STREAM_NOISE, STREAM_PATH = 11, 12, 13, 14


def batch_generator(seed: int, stream: int, index: int) -> torch.Generator:
    """A CPU torch.Generator for one (seed, stream, index) - an image, or a PPL batch: independent streams."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, stream, index]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def draw_labels(G: torch.nn.Module, n: int, label_pool: Optional[np.ndarray],
                generator: torch.Generator) -> Optional[torch.Tensor]:
    """One-hot labels [n, label_size] of a conditional G drawn from `label_pool` (the dataset's labels), uniform
    over the classes without a pool; None for an unconditional G."""
    label_size = int(G.config.label_size)
    if label_size == 0:
        return None
    if label_pool is not None and len(label_pool):
        idx = torch.randint(len(label_pool), (n,), generator=generator)
        classes = torch.from_numpy(np.asarray(label_pool, dtype=np.int64))[idx]
        if int(classes.max()) >= label_size or int(classes.min()) < 0:
            raise ValueError(f"the dataset's labels reach {int(classes.max())} but the network has {label_size} "
                             f"classes")
    else:
        classes = torch.randint(label_size, (n,), generator=generator)
    return torch.nn.functional.one_hot(classes, label_size).float()


def draw_noise(G: torch.nn.Module, n: int, generator: torch.Generator) -> Optional[List[torch.Tensor]]:
    """Noise maps [n, 1, H, W] in G's layout (one per layer, or one per block), None if G has no noise inputs."""
    shapes = noise_shapes(G)
    if shapes is None:
        return None
    return [torch.randn((n,) + tuple(s[1:]), generator=generator) for s in shapes]


@dataclass(frozen=True)
class GeneratedImages:
    """`num` images of G in global batches of `batch`; `images(b)` is batch b (images b*batch ...) as uint8 NCHW on
    G's device."""

    G: torch.nn.Module
    num: int
    batch: int
    seed: int = 0
    psi: float = 1.0
    lod: float = 0.0
    label_pool: Optional[np.ndarray] = None
    precision: Precision = FP32  # the synthesis network's arithmetic (stylegan.precision)
    classes: Optional[torch.Tensor] = None  # int64 [num]: the class of each image (glyph_acc), instead of the pool
    noise_mode: str = "random"   # 'random': seeded per batch; 'const' / 'none' as G defines them

    def batch_size(self, b: int) -> int:
        return min(self.batch, self.num - b * self.batch)

    def inputs(self, b: int):
        """(z, c, noise) of batch b, on the CPU: image i's draws come from its own generators (seed, stream, i),
        so neither the batch size nor the number of processes changes any image."""
        first, n = b * self.batch, self.batch_size(b)
        gens = {stream: [batch_generator(self.seed, stream, i) for i in range(first, first + n)]
                for stream in (STREAM_LATENTS, STREAM_LABELS, STREAM_NOISE)}
        latent_size = int(self.G.config.latent_size)
        z = torch.stack([torch.randn(latent_size, generator=g) for g in gens[STREAM_LATENTS]])
        if self.classes is not None:
            c = torch.nn.functional.one_hot(self.classes[first:first + n].long(),
                                            int(self.G.config.label_size)).float()
        else:
            labels = [draw_labels(self.G, 1, self.label_pool, g) for g in gens[STREAM_LABELS]]
            c = None if labels[0] is None else torch.cat(labels)
        noise = None
        if self.noise_mode == "random":
            maps = [draw_noise(self.G, 1, g) for g in gens[STREAM_NOISE]]
            noise = None if maps[0] is None else [torch.cat(layer) for layer in zip(*maps)]
        return z, c, noise

    @torch.no_grad()
    def images(self, b: int) -> torch.Tensor:
        device = model_device(self.G)
        z, c, noise = self.inputs(b)
        img = self.precision.run(self.G, z.to(device), None if c is None else c.to(device), psi=self.psi,
                     cutoff=None if self.psi == 1.0 else self.G.config.truncation_cutoff, lod=self.lod,
                     noise_mode=self.noise_mode if noise is None else "random",
                     noise=None if noise is None else [t.to(device) for t in noise])
        return to_uint8_nchw(img)
