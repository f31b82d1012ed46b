"""How fast two runs of one config drift apart when only their arithmetic differs (docs/PERFORMANCE.md §8.8.2).

Usage: python docs/scripts/precision_divergence.py CONFIG_JSON IMPL PRECISION [STEPS]
e.g.   ... runs/glyphs/config.json ref fp32 100     # fp32 with the pure-torch ops: float32 rounding differences only
       ... runs/glyphs/config.json cpu bf16 100     # bf16 with the kernels

Builds two Trainers from the run's config.json (fresh outdirs, no snapshot metrics): A with impl 'cpu' in fp32
(what `stylegan train` runs) and B with IMPL and PRECISION. Both start from the same weights and draw the same
random numbers at every step (B's step starts from the RNG state A's started from, and must end where A's ended),
and read the same minibatches. Prints both runs' losses and the relative RMS distance of G's parameters.
"""
from __future__ import annotations

import json
import sys
import tempfile

import torch

from stylegan.training.config import TrainConfig
from stylegan.training.dataset import make_loader
from stylegan.training.loop import Trainer, deterministic_algorithms


def trainer(config: dict, impl: str, precision: str) -> Trainer:
    fields = {k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__}
    fields.update(outdir=tempfile.mkdtemp(prefix="divergence-"), metrics="", precision=precision)
    return Trainer(TrainConfig(**fields), impl=impl, progress=False, log=lambda line: None)


@torch.no_grad()
def relative_distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    num = sum((p.double() - q.double()).square().sum() for p, q in zip(a.parameters(), b.parameters()))
    den = sum(p.double().square().sum() for p in a.parameters())
    return float((num / den).sqrt())


def main(config_path: str, impl: str, precision: str, steps: str = "100") -> None:
    torch.set_num_threads(1)
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    A, B = trainer(config, "cpu", "fp32"), trainer(config, impl, precision)
    loaders = [make_loader(t.dataset, t.phase(0).batch, start=0, seed=t.cfg.seed, workers=0) for t in (A, B)]
    print(f"before the first step G parameters apart {relative_distance(A.G, B.G):.2e}")
    with deterministic_algorithms(A.cfg.deterministic):
        for step in range(int(steps)):
            before = torch.random.get_rng_state()
            a = A.step(A.phase(A.state.images_shown), loaders[0])
            after = torch.random.get_rng_state()
            torch.random.set_rng_state(before)
            b = B.step(B.phase(B.state.images_shown), loaders[1])
            if not torch.equal(after, torch.random.get_rng_state()):
                raise SystemExit("the two runs drew different random numbers: not a comparison of arithmetic")
            if step < 5 or step % 10 == 0 or step == int(steps) - 1:
                print(f"step {step:4d}  loss_G {a['loss_G'].item():.6f} / {b['loss_G'].item():.6f}  loss_D "
                      f"{a['loss_D'].item():.6f} / {b['loss_D'].item():.6f}  G parameters apart "
                      f"{relative_distance(A.G, B.G):.2e}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
