"""The StyleGAN generator: mapping + synthesis + w_avg, truncation and style mixing (official G_style).

Truncation and lod as official: docs/FORMATS.md §1.10.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from .config import GeneratorConfig
from .layers import OpContext, SwitchableImpl
from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork

Crossover = Union[int, torch.Tensor]


def random_crossover_point(num_active_layers: int, prob: Optional[float],
                           generator: Optional[torch.Generator] = None) -> int:
    """Official mixing-regularization crossover (G_style 'StyleMix') for one batch: with probability `prob` a
    point uniform in [1, num_active_layers), else num_active_layers (no mixing)."""
    if not prob or num_active_layers < 2 or float(torch.rand((), generator=generator)) >= prob:
        return num_active_layers
    return int(torch.randint(1, num_active_layers, (), generator=generator))


class Generator(SwitchableImpl, nn.Module):
    """z (+ labels) -> images; `G.mapping`, `G.synthesis`, buffer `G.w_avg` (official dlatent_avg).

    `impl` ('auto'|'cpu'|'cuda'|'ref') is read by every op call of both sub-networks from one shared OpContext,
    so `G.impl = 'ref'` switches the whole network.
    """

    def __init__(self, config: Optional[GeneratorConfig] = None, impl: str = "auto") -> None:
        super().__init__()
        if config is None:
            config = GeneratorConfig()
        if not isinstance(config, GeneratorConfig):
            raise TypeError(f"config must be a GeneratorConfig, got {type(config).__name__}")
        self.config = config
        self._ctx = OpContext(impl)
        self.mapping = MappingNetwork(config, self._ctx)
        self.synthesis = SynthesisNetwork(config, self._ctx)
        self.register_buffer("w_avg", torch.zeros(config.dlatent_size))

    @property
    def num_layers(self) -> int:
        """Number of synthesis layers = entries of ws."""
        return self.config.num_layers

    def truncate(self, ws: torch.Tensor, psi: Optional[float], cutoff: Optional[int]) -> torch.Tensor:
        """Official truncation trick: layers i < cutoff lerp toward w_avg by psi; the rest unchanged.

        As G_style (docs/FORMATS.md §1.10), psi None or 1, or cutoff None or <= 0, disables it (returns ws itself).
        """
        if psi is None or psi == 1 or cutoff is None or cutoff <= 0:
            return ws
        layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
        coefs = torch.where(layer < cutoff, torch.as_tensor(float(psi), dtype=ws.dtype, device=ws.device),
                            torch.ones((), dtype=ws.dtype, device=ws.device))
        avg = self.w_avg.to(ws.dtype)
        return avg + (ws - avg) * coefs  # tfutil.lerp(avg, ws, coefs)

    @staticmethod
    def mix(ws: torch.Tensor, ws2: torch.Tensor, crossover: Crossover) -> torch.Tensor:
        """Style mixing: layers < crossover from ws, layers >= crossover from ws2.

        crossover: an int (one point for the batch, as the official mixing regularization) or a tensor [N] of
        per-sample points.
        """
        if ws.shape != ws2.shape:
            raise ValueError(f"ws2 has shape {list(ws2.shape)}: expected the shape of ws {list(ws.shape)}")
        layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
        if isinstance(crossover, torch.Tensor):
            if crossover.ndim == 1 and crossover.shape[0] == ws.shape[0]:
                cut = crossover.to(ws.device)[:, None, None]
            elif crossover.ndim == 0:
                cut = crossover.to(ws.device)
            else:
                raise ValueError(f"crossover has shape {list(crossover.shape)}: expected [] or [N={ws.shape[0]}]")
        elif isinstance(crossover, int) and not isinstance(crossover, bool):
            cut = crossover
        else:
            raise ValueError(f"crossover={crossover!r} is invalid: expected an int or a tensor [N]")
        return torch.where(layer < cut, ws, ws2)

    @torch.no_grad()
    def update_w_avg(self, ws: torch.Tensor, beta: Optional[float] = None,
                     reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        """Training update of w_avg: lerp(batch mean of ws[:, 0], w_avg, beta) (official dlatent_avg_beta).

        `reduce` maps the batch mean to the global one (multi-process training: the mean over ranks)."""
        beta = self.config.dlatent_avg_beta if beta is None else beta
        if beta is None:
            return
        batch_avg = ws[:, 0].detach().float().mean(dim=0)
        if reduce is not None:
            batch_avg = reduce(batch_avg)
        self.w_avg.copy_(torch.lerp(batch_avg, self.w_avg.float(), float(beta)))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, psi: Optional[float] = 1.0,
                cutoff: Optional[int] = None, lod: float = 0.0, noise_mode: str = "random",
                noise: Optional[Sequence[torch.Tensor]] = None, z2: Optional[torch.Tensor] = None,
                c2: Optional[torch.Tensor] = None, crossover: Optional[Crossover] = None) -> torch.Tensor:
        """Returns images [N, num_channels, R', R'] (R' = resolution_at(lod)) for latents z.

        Order as official G_style: mapping -> style mixing (z2 from layer `crossover` on) -> truncation -> synthesis.
        Defaults mean no truncation; pass psi=config.truncation_psi, cutoff=config.truncation_cutoff to reproduce
        `Gs.run(z, None)`.
        """
        ws = self.mapping(z, c)
        if z2 is not None:
            if crossover is None:
                raise ValueError("z2 was given without crossover: pass the first layer index taken from z2")
            ws = self.mix(ws, self.mapping(z2, c if c2 is None else c2), crossover)
        elif crossover is not None:
            raise ValueError("crossover was given without z2")
        ws = self.truncate(ws, psi, cutoff)
        return self.synthesis(ws, lod=lod, noise_mode=noise_mode, noise=noise)


__all__ = ["Generator"]
