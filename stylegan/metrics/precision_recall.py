"""Improved precision and recall (Kynkäänniemi et al. 2019) of generated vs real VGG16 features.

Protocol (NVlabs stylegan2-ada-pytorch `metrics/precision_recall.py`, `pr50k3`): features are stored in float16;
the manifold of a set is the union of balls around its points whose radius is the distance to the point's k-th
nearest neighbour in the same set (k = `nhood_size` = 3; the point itself is the 0th); precision = the share of
generated points inside the real manifold, recall = the share of real points inside the generated manifold.
Distances are computed in blocks (`row_batch`) and rounded to float16 as the official code's float16 `cdist` output
is; here the products run in float32 on any device (float16 `cdist` does not exist on CPUs).
"""
from __future__ import annotations

from typing import Dict

import torch

NHOOD_SIZE = 3
ROW_BATCH = 10000


def _distances(rows: torch.Tensor, cols: torch.Tensor, col_batch: int) -> torch.Tensor:
    """Euclidean distances [len(rows), len(cols)] as float16 (float32 arithmetic, rounded like the official)."""
    return torch.cat([torch.cdist(rows.float(), c.float()).to(torch.float16) for c in cols.split(col_batch)], dim=1)


def manifold_radii(manifold: torch.Tensor, nhood_size: int = NHOOD_SIZE, row_batch: int = ROW_BATCH) -> torch.Tensor:
    """Distance of each point of `manifold` to its `nhood_size`-th nearest neighbour in the set (float16)."""
    if manifold.shape[0] <= nhood_size:
        raise ValueError(f"precision/recall needs more than nhood_size={nhood_size} images per set, "
                         f"got {manifold.shape[0]}")
    return torch.cat([_distances(rows, manifold, row_batch).float().kthvalue(nhood_size + 1, dim=1).values
                      .to(torch.float16) for rows in manifold.split(row_batch)])


def coverage(manifold: torch.Tensor, probes: torch.Tensor, nhood_size: int = NHOOD_SIZE,
             row_batch: int = ROW_BATCH) -> float:
    """Share of `probes` inside the k-NN manifold of `manifold` (precision: real manifold, generated probes)."""
    radii = manifold_radii(manifold, nhood_size, row_batch)
    inside = [(_distances(rows, manifold, row_batch) <= radii[None, :]).any(dim=1) for rows in probes.split(row_batch)]
    return float(torch.cat(inside).float().mean())


def precision_recall(gen_features: torch.Tensor, real_features: torch.Tensor, nhood_size: int = NHOOD_SIZE,
                     row_batch: int = ROW_BATCH) -> Dict[str, float]:
    """{'precision', 'recall'} of feature sets [N, D] and [M, D] (stored as float16 first, as official)."""
    gen = torch.as_tensor(gen_features).to(torch.float16)
    real = torch.as_tensor(real_features).to(torch.float16)
    if gen.ndim != 2 or real.ndim != 2 or gen.shape[1] != real.shape[1]:
        raise ValueError(f"features of shape {list(gen.shape)} and {list(real.shape)}: expected [N, D] and [M, D]")
    return {"precision": coverage(real, gen, nhood_size, row_batch),
            "recall": coverage(gen, real, nhood_size, row_batch)}
