"""Kernel Inception distance (KID): the unbiased squared MMD with a cubic polynomial kernel, averaged over subsets.

Protocol (Bińkowski et al. 2018; NVlabs stylegan2-ada-pytorch `metrics/kernel_inception_distance.py`): kernel
k(x, y) = (x.y / D + 1)^3; `num_subsets` = 100 times draw m = min(N_gen, N_real, max_subset_size = 1000) features of
each set without replacement, add the unbiased MMD^2 estimate of that pair; report the mean. The official code draws
from numpy's global, unseeded generator; here the draws come from `seed`, so the same call gives the same number.
"""
from __future__ import annotations

import numpy as np

NUM_SUBSETS = 100
MAX_SUBSET_SIZE = 1000


def kernel_distance(gen_features: np.ndarray, real_features: np.ndarray, num_subsets: int = NUM_SUBSETS,
                    max_subset_size: int = MAX_SUBSET_SIZE, seed: int = 0) -> float:
    """KID of two feature sets [N, D] (the official estimator; seeded subsets)."""
    gen = np.asarray(gen_features, dtype=np.float64)
    real = np.asarray(real_features, dtype=np.float64)
    if gen.ndim != 2 or real.ndim != 2 or gen.shape[1] != real.shape[1]:
        raise ValueError(f"features of shape {list(gen.shape)} and {list(real.shape)}: expected [N, D] and [M, D]")
    if num_subsets < 1 or max_subset_size < 2:
        raise ValueError(f"num_subsets={num_subsets}, max_subset_size={max_subset_size}: expected >= 1 and >= 2")
    n = gen.shape[1]
    m = min(gen.shape[0], real.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {gen.shape[0]} and {real.shape[0]}")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / num_subsets / m)
