"""Shared pieces of the projection / directions / edit tests: a small network whose own images are the targets,
and the VGG16 stand-in scripted once per process (TorchScript refuses to script the same class twice)."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from stylegan.config import GeneratorConfig
from stylegan.generator import Generator
from stylegan.images import to_uint8_nchw

from feature_net_standins import StandinDetector, WrongShapeDetector

# 16 px, 8 layers: every projection step is a few ms. Random init scaled so images mostly stay in [-1, 1]
# (an untrained ToRGB gives values up to ~10, which uint8 targets clip) and with non-zero noise strengths, so
# the noise maps matter.
SMALL = dict(resolution=16, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16,
             mapping_layers=2)


def small_generator(seed: int = 0, label_size: int = 0, noise_strength: float = 0.1) -> Generator:
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**SMALL, label_size=label_size)).eval()
    with torch.no_grad():
        for torgb in G.synthesis.torgb:
            torgb.weight.mul_(0.3)
        for layer in G.synthesis.layers:
            layer.noise_strength.normal_(0, noise_strength)
        G.w_avg.copy_(G.mapping(torch.randn(1000, SMALL["latent_size"]),
                                None if not label_size else torch.eye(label_size)[torch.arange(1000) % label_size]
                                )[:, 0].mean(0))
    return G


def own_targets(G: Generator, count: int = 2, psi: float = 0.5, seed: int = 1) -> torch.Tensor:
    """uint8 images of G itself (stored noise) at latents truncated towards the mean by psi."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ws = G.truncate(G.mapping(torch.randn(count, G.config.latent_size, generator=g)), psi, G.num_layers)
        return to_uint8_nchw(G.synthesis(ws, noise_mode="const"))


@functools.lru_cache(maxsize=None)
def _scripted(kind: str) -> torch.jit.ScriptModule:
    return torch.jit.script(StandinDetector() if kind == "standin" else WrongShapeDetector())


def standin_file(path: Path, kind: str = "standin") -> Path:
    """A TorchScript stand-in of NVIDIA's vgg16.pt (official signature) at `path`; kind 'wrong' answers 1-D."""
    _scripted(kind).save(str(path))
    return path
