"""GAN losses: WGAN-GP (default, ProGAN/StyleGAN-CelebA-HQ), non-saturating logistic + R1 (StyleGAN FFHQ), hinge,
and for comparison the original WGAN (weight clipping) and LSGAN. Formulas and papers: docs/LOSSES.md.

Formulas follow NVlabs stylegan `training/loss.py` (G_wgan, D_wgan_gp with wgan_lambda=10, wgan_epsilon=0.001,
wgan_target=1; G_logistic_nonsaturating, D_logistic_simplegp with r1_gamma=10; D_hinge). The official code returns
per-sample losses that the optimizer averages; these functions return the batch mean directly. `wgan` is Arjovsky
et al. 2017 (Algorithm 1: critic clipped to [-c, c] after every update, RMSprop, n_critic 5); `lsgan` is Mao et al.
2017 (eq. 2 with the 0-1 coding a=0, b=c=1), with an optional R1 penalty.

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
WGAN_CLIP = 0.01       # Arjovsky et al. 2017, Algorithm 1: c = 0.01
WGAN_LRATE = 5e-5      # Algorithm 1: alpha = 0.00005 (RMSprop)
WGAN_D_REPEATS = 5     # Algorithm 1: n_critic = 5


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


def _with_r1(D: DFn, reals: torch.Tensor, fakes: torch.Tensor, r1_gamma: float,
             loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Tuple[torch.Tensor, Terms]:
    """loss_of(real_scores, fake_scores) + γ/2·E[‖∇ₓD(real)‖²] (the R1 term only when γ != 0)."""
    reals = reals.detach().requires_grad_(r1_gamma != 0.0)
    real_scores = D(reals)
    fake_scores = D(fakes)
    loss = loss_of(real_scores, fake_scores)
    r1 = torch.zeros((), dtype=real_scores.dtype, device=real_scores.device)
    if r1_gamma != 0.0:
        (grad,) = torch.autograd.grad(real_scores.sum(), reals, create_graph=True)
        r1 = grad.flatten(1).square().sum(1)
        loss = loss + r1.mean() * (r1_gamma * 0.5)
    return loss, {"loss": _f(loss), "real_score": _f(real_scores), "fake_score": _f(fake_scores),
                  "penalty": _f(r1), "real_sign": _real_sign(real_scores)}


def d_logistic_r1(D: DFn, reals: torch.Tensor, fakes: torch.Tensor,
                  r1_gamma: float = R1_GAMMA) -> Tuple[torch.Tensor, Terms]:
    """D loss E[softplus(D(fake))] + E[softplus(-D(real))] + γ/2·E[‖∇ₓD(real)‖²] (official D_logistic_simplegp)."""
    return _with_r1(D, reals, fakes, r1_gamma,
                    lambda real, fake: F.softplus(fake).mean() + F.softplus(-real).mean())


def g_lsgan(D: DFn, fakes: torch.Tensor) -> Tuple[torch.Tensor, Terms]:
    """G loss ½·E[(D(G(z)) - 1)²] (Mao et al. 2017, eq. 2, c = 1)."""
    scores = D(fakes)
    loss = (scores - 1.0).square().mean() * 0.5
    return loss, {"loss": _f(loss), "fake_score": _f(scores), "penalty": _zero(loss)}


def d_lsgan(D: DFn, reals: torch.Tensor, fakes: torch.Tensor, r1_gamma: float = 0.0) -> Tuple[torch.Tensor, Terms]:
    """D loss ½·E[(D(x) - 1)²] + ½·E[D(G(z))²] (Mao et al. 2017, eq. 2, a = 0, b = 1) + γ/2·E[‖∇ₓD(real)‖²]."""
    return _with_r1(D, reals, fakes, r1_gamma,
                    lambda real, fake: (real - 1.0).square().mean() * 0.5 + fake.square().mean() * 0.5)


def d_wgan(D: DFn, reals: torch.Tensor, fakes: torch.Tensor) -> Tuple[torch.Tensor, Terms]:
    """Critic loss E[D(G(z))] - E[D(x)] (Arjovsky et al. 2017); Lipschitz only through `clip_weights_` after
    every D step, which the training loop applies for `wgan`. Pair it with g_wgan."""
    real_scores = D(reals)
    fake_scores = D(fakes)
    loss = fake_scores.mean() - real_scores.mean()
    return loss, {"loss": _f(loss), "real_score": _f(real_scores), "fake_score": _f(fake_scores),
                  "penalty": _zero(loss), "real_sign": _real_sign(real_scores)}


@torch.no_grad()
def clip_weights_(module: torch.nn.Module, clip: float) -> None:
    """Clamps every parameter of `module` to [-clip, clip] in place (WGAN, Algorithm 1 line 7: all of the critic's
    parameters). With equalized learning rate these are the stored weights, before the runtime He gain. Frozen
    parameters (Freeze-D: requires_grad off) are left exactly as they are."""
    for p in module.parameters():
        if p.requires_grad:
            p.clamp_(-clip, clip)


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
    "wgan": (g_wgan, d_wgan),
    "lsgan": (g_lsgan, d_lsgan),
}

# What `--loss NAME` also sets unless those options are given (config.apply_options): the settings of the paper
# that defines the loss. lsgan's R1 is opt-in (--r1-gamma), wgan trains as in Arjovsky et al. 2017, Algorithm 1.
LOSS_PRESETS: Dict[str, Dict[str, object]] = {
    "wgan": {"optimizer": "rmsprop", "G_lrate_base": WGAN_LRATE, "D_lrate_base": WGAN_LRATE, "G_lrate_dict": {},
             "D_lrate_dict": {}, "D_repeats": WGAN_D_REPEATS},
    "lsgan": {"r1_gamma": 0.0},
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
    if d_fn in (d_logistic_r1, d_lsgan):
        return g_fn, functools.partial(d_fn, r1_gamma=r1_gamma)
    return g_fn, d_fn
