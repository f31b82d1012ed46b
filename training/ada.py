"""The ADA controller: adapts the augmentation probability p from D's overfitting heuristic r_t.

Rule (NVlabs stylegan2-ada-pytorch training_loop.py, "Execute ADA heuristic"): every `ada_interval` minibatches,
r_t = E[sign(D(reals))] over the minibatches since the last update, and
    p += sign(r_t - ada_target) * batch * ada_interval / (ada_kimg * 1000),
so p can move from 0 to 1 in ada_kimg kimg. The official code only clamps at 0; p is a probability, so it is
clamped to [0, 1] here (the two agree while p <= 1, which a target below 1 keeps in practice).
Under torchrun r_t is the mean over ranks of each rank's mean (equal per-rank batches: the global mean), so K ranks
follow the same p as one process. The accumulated signs are part of the checkpoint, so a resume mid-interval is
exact.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import torch

ADA_INTERVAL = 4      # official ada_interval
ADA_TARGET = 0.6      # official ada_target (train.py --target)
ADA_KIMG = 500.0      # official ada_kimg
ADA_KIMG_RESUME = 100.0  # official train.py: "make ADA react faster at the beginning" when resuming a network


class AdaController:
    """Accumulates sign(D(reals)) per D step; every `interval` steps moves p (returned by `update`). The values are
    validated once, as TrainConfig fields (ada_target, ada_kimg, ada_interval)."""

    def __init__(self, target: float = ADA_TARGET, ada_kimg: float = ADA_KIMG, interval: int = ADA_INTERVAL,
                 reduce_mean: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> None:
        self.target = float(target)
        self.ada_kimg = float(ada_kimg)
        self.interval = int(interval)
        self.reduce_mean = reduce_mean
        self.sign_sum: Optional[torch.Tensor] = None   # sum over the interval's steps of this rank's mean sign
        self.steps = 0                                 # D steps since the last update

    def add(self, real_sign_mean: torch.Tensor) -> None:
        """One D step's mean sign of D's raw scores on (augmented) reals (a 0-d tensor; no host sync)."""
        v = real_sign_mean.detach().to(torch.float64)
        self.sign_sum = v if self.sign_sum is None else self.sign_sum + v
        self.steps += 1

    def due(self) -> bool:
        return self.steps >= self.interval

    def update(self, p: float, batch: int) -> float:
        """The new p after an interval of minibatches of `batch` images (the global minibatch)."""
        assert self.sign_sum is not None
        rt = float(self.reduce_mean((self.sign_sum / self.steps).reshape(1).clone()).item())
        step = batch * self.interval / (self.ada_kimg * 1000.0)
        sign = (rt > self.target) - (rt < self.target)
        self.sign_sum, self.steps = None, 0
        return min(max(p + sign * step, 0.0), 1.0)

    def state_dict(self) -> Dict[str, Any]:
        return {"sign_sum": None if self.sign_sum is None else self.sign_sum.detach().cpu().clone(),
                "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        s = state["sign_sum"]
        self.sign_sum = None if s is None else s.to(device)
        self.steps = int(state["steps"])
