"""The peer row of `stylegan bench train --rosinality DIR`: rosinality's style-based-gan-pytorch, fp32, timed beside
ours in the same run (same machine, allocator setting and thread count, its own subprocess).

Why a peer row: the issue-16 targets are ratios against that implementation's CPU training step, and ratios are
only meaningful within one run. The user supplies a checkout of https://github.com/rosinality/style-based-gan-pytorch
(nothing of it ships here); its `model.py` provides `StyledGenerator(code_dim)` and
`Discriminator(from_rgb_activate=True)`, called as `G(z or [z1, z2], step=, alpha=)` and `D(img, step=, alpha=)`
with step = log2(resolution) - 2.

The iteration re-enacts the WGAN-GP branch of that project's train.py (read for the facts, not copied): D on reals
with its 0.001 drift term, fakes from G, the gradient penalty (weight 10) on interpolates with its double
backward, a D Adam step; then a G step on new latents and the running-average update. Mixing regularisation on
(two latents per sample, as its `--mixing` flag with probability 0.9 does; always on here so every timed iteration
does the same work). Adam betas (0, 0.99), lr 0.001, G's mapping at lr x 0.01, as there.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import resource
import sys
from pathlib import Path
from typing import Dict, Tuple

import torch

from .timing import measure, run_with_env, write_point

PUBLISHED_AT = "https://github.com/rosinality/style-based-gan-pytorch"
CODE_SIZE = 512  # train.py's code_size
GP_WEIGHT, DRIFT = 10.0, 0.001
LR, BETAS, EMA_DECAY = 0.001, (0.0, 0.99), 0.999


def checkout_problem(path: str) -> str:
    """'' when `path` looks like a checkout of the peer project, else what is wrong and where to get it."""
    model = Path(path) / "model.py"
    if not model.is_file():
        return f"{path!r} has no model.py: expected a checkout of {PUBLISHED_AT}"
    text = model.read_text(encoding="utf-8", errors="replace")
    missing = [name for name in ("class StyledGenerator", "class Discriminator") if name not in text]
    if missing:
        return f"{model} defines no {' / '.join(n.split()[1] for n in missing)}: expected {PUBLISHED_AT}'s model.py"
    return ""


def _load_model_module(path: str):
    problem = checkout_problem(path)
    if problem:
        raise ValueError(problem)
    spec = importlib.util.spec_from_file_location("rosinality_model", Path(path) / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path)))  # its model.py may import siblings
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def step_for(resolution: int) -> int:
    """The peer's `step` for an image size: 8 px is step 1."""
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution {resolution} is invalid for the peer: expected a power of two >= 8")
    return int(math.log2(resolution)) - 2


def _networks(module) -> Tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    G = module.StyledGenerator(CODE_SIZE)
    D = module.Discriminator(from_rgb_activate=True)
    G_running = module.StyledGenerator(CODE_SIZE)
    G_running.load_state_dict(G.state_dict())
    G_running.train(False)
    return G, D, G_running


def _set_requires_grad(net: torch.nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


def measure_point(path: str, resolution: int, batch: int, repeat: int, alpha: float = 0.5) -> Dict[str, float]:
    """G forward and WGAN-GP iteration images/s of the peer at `resolution`, in THIS process; peak RSS."""
    module = _load_model_module(path)
    step = step_for(resolution)
    G, D, G_running = _networks(module)
    g_opt = torch.optim.Adam([{"params": G.generator.parameters()},
                              {"params": G.style.parameters(), "lr": LR * 0.01}], lr=LR, betas=BETAS)
    d_opt = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    reals = torch.rand(batch, 3, resolution, resolution) * 2 - 1

    def latents():
        return list(torch.randn(2, batch, CODE_SIZE).unbind(0))

    def iteration() -> None:
        D.zero_grad()
        _set_requires_grad(G, False)
        _set_requires_grad(D, True)
        real_score = D(reals, step=step, alpha=alpha)
        real_term = real_score.mean() - DRIFT * real_score.square().mean()
        (-real_term).backward()
        fake = G(latents(), step=step, alpha=alpha)
        D(fake, step=step, alpha=alpha).mean().backward()
        eps = torch.rand(batch, 1, 1, 1)
        x_hat = (eps * reals + (1 - eps) * fake.detach()).requires_grad_(True)
        grad_x_hat, = torch.autograd.grad(D(x_hat, step=step, alpha=alpha).sum(), x_hat, create_graph=True)
        penalty = GP_WEIGHT * (grad_x_hat.flatten(1).norm(2, dim=1) - 1).square().mean()
        penalty.backward()
        d_opt.step()
        G.zero_grad()
        _set_requires_grad(G, True)
        _set_requires_grad(D, False)
        (-D(G(latents(), step=step, alpha=alpha), step=step, alpha=alpha).mean()).backward()
        g_opt.step()
        with torch.no_grad():
            for p_run, p in zip(G_running.parameters(), G.parameters()):
                p_run.mul_(EMA_DECAY).add_(p, alpha=1 - EMA_DECAY)

    def g_forward() -> None:
        with torch.no_grad():
            G_running(torch.randn(batch, CODE_SIZE), step=step, alpha=alpha)

    fwd = measure(g_forward, repeat=repeat, warmup=1)
    it = measure(iteration, repeat=repeat, warmup=1)
    return {"resolution": resolution, "impl": "rosinality", "precision": "fp32", "batch": batch, "lod": None,
            "g_forward_img_s": batch / fwd.median_s, "g_forward_ms": fwd.median_ms,
            "g_forward_cpu_s": fwd.cpu_median_s, "train_img_s": batch / it.median_s, "train_step_s": it.median_s,
            "train_step_cpu_s": it.cpu_median_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def run_point(path: str, resolution: int, batch: int, repeat: int, env: Dict[str, str]) -> dict:
    """measure_point in a fresh subprocess under `env` (the benchmark's allocator setting)."""
    return run_with_env(__name__, ["--path", str(Path(path).resolve()), "--resolution", str(resolution),
                                   "--batch", str(batch), "--repeat", str(repeat)], env)


def _main(argv=None) -> None:
    p = argparse.ArgumentParser(description="One peer point of `stylegan bench train --rosinality DIR`.")
    p.add_argument("--path", required=True)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json-out", required=True)
    a = p.parse_args(argv)
    write_point(a.json_out, lambda: measure_point(a.path, a.resolution, a.batch, a.repeat))


if __name__ == "__main__":
    _main()
