"""GAN losses: WGAN-GP (default, ProGAN/StyleGAN-CelebA-HQ), non-saturating logistic + R1 (StyleGAN FFHQ), hinge.

Formulas follow NVlabs stylegan `training/loss.py` (G_wgan, D_wgan_gp with wgan_lambda=10, wgan_epsilon=0.001,
wgan_target=1; G_logistic_nonsaturating, D_logistic_simplegp with r1_gamma=10; D_hinge). The official code returns
per-sample losses that the optimizer averages; these functions return the batch mean directly.

Interface: `D` is any callable img -> scores [N, 1] (the loop passes `lambda img: D(img, c, lod)`); fakes for the
D loss should be detached by the caller. Each function returns (loss, terms) where terms holds detached 0-d tensors
for logging (still on the device: reading them would synchronise with it, so the training loop does that once per
tick), always including 'penalty' (0 when the loss has none); D losses also give 'real_sign' (ADA's r_t). The
penalties differentiate D's output with `torch.autograd.grad(create_graph=True)`, so the D update back-propagates
through that gradient (double backward through D's ops).
"""
from __future__ import annotations

import functools

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

DFn = Callable[[torch.Tensor], torch.Tensor]
Terms = Dict[str, torch.Tensor]

WGAN_LAMBDA = 10.0     # official D_wgan_gp wgan_lambda
WGAN_EPSILON = 0.001   # official wgan_epsilon (epsilon_drift)
WGAN_TARGET = 1.0      # official wgan_target
R1_GAMMA = 10.0        # official D_logistic_simplegp r1_gamma (train.py StyleGAN default)


def _f(x: torch.Tensor) -> torch.Tensor:
    return x.detach().mean()


def _zero(like: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=like.dtype, device=like.device)


def _real_sign(real_scores: torch.Tensor) -> torch.Tensor:
    """E[sign(D(reals))] of D's raw scores: ADA's overfitting heuristic r_t (training/ada.py), for every loss."""
    return real_scores.detach().sign().mean()


def g_wgan(D: DFn, fakes: torch.Tensor) -> Tuple[torch.Tensor, Terms]:
    """G loss -E[D(G(z))] (official G_wgan; also used with the hinge D loss)."""
    scores = D(fakes)
    loss = -scores.mean()
    return loss, {"loss": _f(loss), "fake_score": _f(scores), "penalty": _zero(loss)}


def d_wgan_gp(D: DFn, reals: torch.Tensor, fakes: torch.Tensor, gp_lambda: float = WGAN_LAMBDA,
              eps_drift: float = WGAN_EPSILON, target: float = WGAN_TARGET,
              generator: Optional[torch.Generator] = None, u: Optional[torch.Tensor] = None
              ) -> Tuple[torch.Tensor, Terms]:
    """D loss E[D(fake)] - E[D(real)] + λ/t²·E[(‖∇D(x̂)‖₂ - t)²] + ε·E[D(real)²] (official D_wgan_gp).

    x̂ = real + (fake - real)·u with u ~ U(0, 1) drawn per sample (here, unless given as `u` [N]: the training
    loop draws it for the global batch so that ranks stay equivalent to one process).
    """
    real_scores = D(reals)
    fake_scores = D(fakes)
    if u is None:
        u = torch.rand(reals.shape[0], dtype=fakes.dtype, device=fakes.device, generator=generator)
    if u.shape != (reals.shape[0],):
        raise ValueError(f"u has shape {list(u.shape)}: expected [{reals.shape[0]}] (one weight per sample)")
    u = u.to(device=fakes.device, dtype=fakes.dtype).view(-1, 1, 1, 1)
    mixed = (reals.to(fakes.dtype) + (fakes - reals.to(fakes.dtype)) * u).detach().requires_grad_(True)
    mixed_scores = D(mixed)
    (grad,) = torch.autograd.grad(mixed_scores.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).square().sum(1).sqrt()
    gp = (norms - target).square()
    drift = real_scores.square()
    loss = (fake_scores - real_scores).mean() + gp.mean() * (gp_lambda / target ** 2) + drift.mean() * eps_drift
    return loss, {"loss": _f(loss), "real_score": _f(real_scores), "fake_score": _f(fake_scores),
                  "penalty": _f(gp), "grad_norm": _f(norms), "drift": _f(drift), "real_sign": _real_sign(real_scores)}


def g_logistic_ns(D: DFn, fakes: torch.Tensor) -> Tuple[torch.Tensor, Terms]:
    """Non-saturating G loss E[softplus(-D(G(z)))] = -log sigmoid(D(G(z))) (official G_logistic_nonsaturating)."""
    scores = D(fakes)
    loss = F.softplus(-scores).mean()
    return loss, {"loss": _f(loss), "fake_score": _f(scores), "penalty": _zero(loss)}


def d_logistic_r1(D: DFn, reals: torch.Tensor, fakes: torch.Tensor,
                  r1_gamma: float = R1_GAMMA) -> Tuple[torch.Tensor, Terms]:
    """D loss E[softplus(D(fake))] + E[softplus(-D(real))] + γ/2·E[‖∇ₓD(real)‖²] (official D_logistic_simplegp)."""
    reals = reals.detach().requires_grad_(r1_gamma != 0.0)
    real_scores = D(reals)
    fake_scores = D(fakes)
    loss = F.softplus(fake_scores).mean() + F.softplus(-real_scores).mean()
    r1 = torch.zeros((), dtype=real_scores.dtype, device=real_scores.device)
    if r1_gamma != 0.0:
        (grad,) = torch.autograd.grad(real_scores.sum(), reals, create_graph=True)
        r1 = grad.flatten(1).square().sum(1)
        loss = loss + r1.mean() * (r1_gamma * 0.5)
    return loss, {"loss": _f(loss), "real_score": _f(real_scores), "fake_score": _f(fake_scores),
                  "penalty": _f(r1), "real_sign": _real_sign(real_scores)}


def d_hinge(D: DFn, reals: torch.Tensor, fakes: torch.Tensor) -> Tuple[torch.Tensor, Terms]:
    """D loss E[relu(1 - D(real))] + E[relu(1 + D(fake))] (official D_hinge); pair it with g_wgan."""
    real_scores = D(reals)
    fake_scores = D(fakes)
    loss = F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()
    return loss, {"loss": _f(loss), "real_score": _f(real_scores), "fake_score": _f(fake_scores),
                  "penalty": _zero(loss), "real_sign": _real_sign(real_scores)}


# name -> (G loss, D loss)
LOSSES: Dict[str, Tuple[Callable[..., Tuple[torch.Tensor, Terms]], Callable[..., Tuple[torch.Tensor, Terms]]]] = {
    "wgan-gp": (g_wgan, d_wgan_gp),
    "logistic": (g_logistic_ns, d_logistic_r1),
    "hinge": (g_wgan, d_hinge),
}


def get_loss(name: str, wgan_lambda: float = WGAN_LAMBDA, r1_gamma: float = R1_GAMMA
             ) -> Tuple[Callable[..., Tuple[torch.Tensor, Terms]], Callable[..., Tuple[torch.Tensor, Terms]]]:
    """(G loss fn, D loss fn) for a `--loss` name with its penalty weight; ValueError for an unknown name."""
    try:
        g_fn, d_fn = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
    if d_fn is d_wgan_gp:
        return g_fn, functools.partial(d_fn, gp_lambda=wgan_lambda)
    if d_fn is d_logistic_r1:
        return g_fn, functools.partial(d_fn, r1_gamma=r1_gamma)
    return g_fn, d_fn
