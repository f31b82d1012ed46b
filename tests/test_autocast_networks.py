"""G and D under the bf16 autocast region (stylegan.precision) on the CPU: every lod runs, stays finite, tracks
float32 within a stated band, the fused ops' kernels (never their references) take the bfloat16 tensors, and the
gradient penalty's double backward is finite and close to float32's.

Bands (relative RMS error against float32), about twice what was measured on the official small fixture
networks (random init): G's images and D's scores < 5% (measured 0.2-0.7%); the penalty's input gradient and D's
parameter gradients < 25% (measured 11-13% and 7-11%). The gradients are far more sensitive than the outputs:
rounding only D's weights to bfloat16 in a float32 run already moves the input gradient by 7%, only the input
by 3.7%, while float32 vs float64 differ by 5e-7 - the quantity is ill-conditioned at init, not mis-computed
(the pure-torch reference under autocast gives the same 11%).
"""
from __future__ import annotations

import importlib

import pytest
import torch

import stylegan
from stylegan.precision import resolve_precision
from network_test_support import SMALL_PKL, cpu_kernels_unavailable

bias_act_module = importlib.import_module("stylegan.ops.bias_act")
upfirdn2d_module = importlib.import_module("stylegan.ops.upfirdn2d")

BF16 = resolve_precision("bf16", torch.device("cpu"), warn=False)

pytestmark = [pytest.mark.skipif(cpu_kernels_unavailable() is not None, reason=str(cpu_kernels_unavailable())),
              pytest.mark.usefixtures("single_thread")]


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS of a - b relative to the RMS of b."""
    return float((a.double() - b.double()).square().mean().sqrt() / b.double().square().mean().sqrt())


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    n = stylegan.load(SMALL_PKL, "cpu")
    return n.generator, n.D


@pytest.fixture
def no_reference(monkeypatch):
    """Fails any test in which a fused op falls back to its pure-torch reference."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a reference op was called on the kernel path under autocast")

    monkeypatch.setattr(bias_act_module, "bias_act_ref", forbidden)
    monkeypatch.setattr(upfirdn2d_module, "upfirdn2d_ref", forbidden)


def test_generator_every_lod_in_bf16_tracks_fp32(nets, no_reference):
    G, _ = nets
    z = torch.randn(4, G.config.latent_size, generator=torch.Generator().manual_seed(1))
    for lod in [float(k) / 2 for k in range(2 * G.config.max_lod + 1)]:
        with torch.no_grad():
            want = G(z, psi=0.7, lod=lod, noise_mode="const")
            got = BF16.run(G, z, psi=0.7, lod=lod, noise_mode="const")
        assert got.dtype == torch.float32 and torch.isfinite(got).all(), f"lod {lod}"
        assert rel_rms(got, want) < 0.05, f"lod {lod}: {rel_rms(got, want):.3f}"


def test_the_mapping_network_stays_float32_under_bf16(nets):
    """As in stylegan2-ada, the mapping network runs in float32 inside a mixed-precision region (its gradient
    collects every layer's style gradient); its ws equal the fp32 ones exactly, and its backward is float32 too."""
    G, _ = nets
    z = torch.randn(4, G.config.latent_size, generator=torch.Generator().manual_seed(2))
    want = G.mapping(z)
    with BF16.autocast():
        got = G.mapping(z.requires_grad_(True))
    assert got.dtype == torch.float32 and torch.equal(got, want)
    (grad,) = torch.autograd.grad(got.square().sum(), z)
    (grad_fp32,) = torch.autograd.grad(G.mapping(z).square().sum(), z)
    assert torch.equal(grad, grad_fp32)


def test_bf16_tensors_reach_the_kernels(nets, monkeypatch):
    """Under autocast the conv outputs are bfloat16, and bias_act / upfirdn2d run their kernels on them."""
    G, D = nets
    dtypes = {"bias_act": set(), "upfirdn2d": set()}
    real_bias_act, real_upfirdn2d = bias_act_module._bias_act_kernel, upfirdn2d_module._upfirdn2d_kernel

    def spy_bias_act(module, x, *args):
        dtypes["bias_act"].add(x.dtype)
        return real_bias_act(module, x, *args)

    def spy_upfirdn2d(module, x, *args):
        dtypes["upfirdn2d"].add(x.dtype)
        return real_upfirdn2d(module, x, *args)

    monkeypatch.setattr(bias_act_module, "_bias_act_kernel", spy_bias_act)
    monkeypatch.setattr(upfirdn2d_module, "_upfirdn2d_kernel", spy_upfirdn2d)
    with torch.no_grad():
        img = BF16.run(G, torch.randn(2, G.config.latent_size), noise_mode="const")
        BF16.run(D, img)
    assert torch.bfloat16 in dtypes["bias_act"] and torch.bfloat16 in dtypes["upfirdn2d"]


@pytest.mark.parametrize("lod", [0.0, 0.5, 1.0])
def test_gradient_penalty_double_backward_in_bf16_is_finite_and_tracks_fp32(nets, no_reference, lod):
    """WGAN-GP's penalty (official D_wgan_gp): grad of D wrt its input with create_graph, then backward into D."""
    _, D = nets
    res = D.config.resolution_at(lod)
    x0 = torch.randn(4, D.config.num_channels, res, res, generator=torch.Generator().manual_seed(2))
    results = []
    for prec in (None, BF16):
        D.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        scores = D(x, lod=lod) if prec is None else prec.run(D, x, lod=lod)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1).square().mean()
        penalty.backward()
        params = torch.cat([p.grad.flatten() for p in D.parameters() if p.grad is not None])
        results.append((scores.detach(), grad.detach(), params))
    (s32, g32, p32), (s16, g16, p16) = results
    assert s16.dtype == g16.dtype == p16.dtype == torch.float32
    assert all(torch.isfinite(t).all() for t in (s16, g16, p16))
    assert rel_rms(s16, s32) < 0.05
    assert rel_rms(g16, g32) < 0.25
    assert rel_rms(p16, p32) < 0.25
