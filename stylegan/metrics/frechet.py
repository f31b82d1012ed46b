"""Fréchet distance between two Gaussians fitted to feature sets: FID when the features are Inception's.

Protocol (Heusel et al. 2017; NVlabs stylegan2-ada-pytorch `metrics/frechet_inception_distance.py`):
FID = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2)), with the population covariance (divided by N, as the
official `FeatureStats.get_mean_cov`, not N - 1). The official code takes `scipy.linalg.sqrtm` of the product; for
covariance matrices (symmetric positive semi-definite) tr (S_g S_r)^(1/2) equals the sum of the square roots of the
eigenvalues of S_r^(1/2) S_g S_r^(1/2), a symmetric matrix, which numpy's `eigh` handles stably in float64 (the tests
check the two agree).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (sigma1 sigma2)^(1/2) for two covariance matrices."""
    root2 = _sqrt_psd(sigma2)
    inner = root2 @ sigma1 @ root2
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def _check_gaussian(mu: np.ndarray, sigma: np.ndarray, name: str) -> Tuple[np.ndarray, np.ndarray]:
    mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: mean {list(mu.shape)} and covariance {list(sigma.shape)} do not match: expected "
                         f"[D] and [D, D]")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{name}: the feature statistics are not finite (did the feature network return NaN?)")
    return mu, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2): FID of Inception feature statistics."""
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "first set")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "second set")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two feature sets have {mu1.shape[0]} and {mu2.shape[0]} dimensions: they come from "
                         f"different feature networks")
    mean_term = float(np.square(mu1 - mu2).sum())
    value = mean_term + float(np.trace(sigma1) + np.trace(sigma2)) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets
