"""Latent edits: move ws along a direction on chosen layers only, and the strip/grid of such edits.

Why exact: layers outside the edit keep their ws bit for bit and strength 0 leaves ws untouched (not ws + 0 * d,
which is also exact for finite d, but the rule is simpler stated), so a strip's 0 column is the unedited image and
a coarse-only edit provably changes nothing of the fine styles.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from .images import tile
from .projection.projector import render


def edit_ws(ws: torch.Tensor, direction: torch.Tensor, strength: float, layers: Sequence[int]) -> torch.Tensor:
    """ws [N, L, D] with `strength * direction` ([D]) added to the layers in `layers`; a copy."""
    out = ws.clone()
    layers = list(layers)
    if strength != 0 and layers:
        out[:, layers] = ws[:, layers] + float(strength) * direction.to(ws)
    return out


def direction_vector(directions, index: int) -> torch.Tensor:
    """Direction `index` of a Directions set scaled to strength 1 (its unit vector times the latents' spread along
    it), float32 [D]: what `stylegan edit --strengths` multiplies."""
    return torch.from_numpy(directions.vectors[index] * directions.sigmas[index]).float()


def edit_images(G: torch.nn.Module, ws: torch.Tensor, direction: torch.Tensor, strengths: Sequence[float],
                layers: Sequence[int], noise: Optional[List[torch.Tensor]] = None) -> np.ndarray:
    """uint8 [len(strengths), N, H, W, C]: each source's image at each strength (rendered as proj.png is)."""
    return np.stack([render(G, edit_ws(ws, direction, s, layers), noise) for s in strengths])


def edit_strip(images: np.ndarray) -> np.ndarray:
    """One image of edit_images' output: a row per source, a column per strength."""
    return tile([[images[s, i] for s in range(images.shape[0])] for i in range(images.shape[1])])


__all__ = ["edit_ws", "direction_vector", "edit_images", "edit_strip"]
