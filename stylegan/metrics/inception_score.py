"""Inception score (Salimans et al. 2016) of generated images' class probabilities.

Protocol (NVlabs stylegan2-ada-pytorch `metrics/inception_score.py`, `is50k`): probabilities from Inception without
the output bias; the N samples are cut into 10 consecutive splits; per split exp(mean_i KL(p_i || mean_j p_j));
the result is the mean and the standard deviation (population) over splits.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

NUM_SPLITS = 10


def inception_score(probabilities: np.ndarray, num_splits: int = NUM_SPLITS) -> Tuple[float, float]:
    """(mean, std) of the Inception score over `num_splits` splits of probabilities [N, classes]."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < num_splits or num_splits < 1:
        raise ValueError(f"probabilities of shape {list(probs.shape)}: expected [N, classes] with N >= "
                         f"num_splits={num_splits}")
    if (probs < 0).any() or not np.isfinite(probs).all():
        raise ValueError("probabilities must be finite and >= 0 (is the network called with no_output_bias=True?)")
    n = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        kl = np.nan_to_num(kl, nan=0.0)  # 0 * log 0 = 0
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
