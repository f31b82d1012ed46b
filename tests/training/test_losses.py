"""Each loss's value and parameter gradient vs an independent closed-form formula on a tiny float64 MLP D."""
import pytest
import torch
import torch.nn as nn

from stylegan.training.losses import d_hinge, d_logistic_r1, d_wgan_gp, g_logistic_ns, g_wgan, get_loss



def make():
    torch.manual_seed(1)
    D = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    reals = torch.randn(6, 2, 4, 4, dtype=torch.float64)
    fakes = torch.randn(6, 2, 4, 4, dtype=torch.float64)
    return D, reals, fakes


def closed_form(D, x):
    """D(x) and dD/dx for D(x) = w2·tanh(W1 x + b1) + b2, written out by hand (differentiable in the params)."""
    W1, b1, w2, b2 = D[1].weight, D[1].bias, D[3].weight, D[3].bias
    h = x.flatten(1) @ W1.T + b1
    score = torch.tanh(h) @ w2.T + b2
    grad = ((1 - torch.tanh(h) ** 2) * w2) @ W1
    return score, grad


def grads(D, loss):
    D.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in D.parameters()]


def test_wgan_gp():
    D, reals, fakes = make()
    loss, terms = d_wgan_gp(D, reals, fakes, generator=torch.Generator().manual_seed(7))
    g1 = grads(D, loss)
    u = torch.rand(6, 1, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    xr, _ = closed_form(D, reals)
    xf, _ = closed_form(D, fakes)
    _, gm = closed_form(D, reals + (fakes - reals) * u)
    gp = (gm.norm(dim=1) - 1) ** 2
    ref = xf.mean() - xr.mean() + 10 * gp.mean() + 0.001 * (xr ** 2).mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert float(terms["penalty"]) == pytest.approx(gp.mean().item(), rel=1e-12)
    for a, b in zip(g1, grads(D, ref)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert any(g.abs().max() > 0 for g in g1)


def test_logistic_r1():
    D, reals, fakes = make()
    loss, terms = d_logistic_r1(D, reals, fakes)
    g1 = grads(D, loss)
    xr, gr = closed_form(D, reals)
    xf, _ = closed_form(D, fakes)
    r1 = (gr ** 2).sum(1)
    ref = torch.log1p(torch.exp(xf)).mean() + torch.log1p(torch.exp(-xr)).mean() + 5.0 * r1.mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert float(terms["penalty"]) == pytest.approx(r1.mean().item(), rel=1e-12)
    for a, b in zip(g1, grads(D, ref)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_hinge_and_g_losses():
    D, reals, fakes = make()
    with torch.no_grad():
        D[3].bias.fill_(0.3)  # put some scores on both sides of the hinges
    loss, terms = d_hinge(D, reals, fakes)
    xr, _ = closed_form(D, reals)
    xf, _ = closed_form(D, fakes)
    ref = torch.clamp(1 - xr, min=0).mean() + torch.clamp(1 + xf, min=0).mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12) and float(terms["penalty"]) == 0.0
    lg, _ = g_wgan(D, fakes)
    assert lg.item() == pytest.approx(-xf.mean().item(), rel=1e-12)
    ln, _ = g_logistic_ns(D, fakes)
    assert ln.item() == pytest.approx(torch.log1p(torch.exp(-xf)).mean().item(), rel=1e-12)
    # the G loss gradient reaches the fakes (that is how G learns)
    f = fakes.clone().requires_grad_(True)
    g_wgan(D, f)[0].backward()
    assert f.grad.abs().sum() > 0


def test_get_loss():
    g_fn, d_fn = get_loss("wgan-gp")
    assert g_fn is g_wgan and d_fn.func is d_wgan_gp and d_fn.keywords == {"gp_lambda": 10.0}
    assert get_loss("hinge") == (g_wgan, d_hinge)  # hinge G loss = -E[D(G(z))]
    with pytest.raises(ValueError, match="hinge"):
        get_loss("lsgan")


def test_penalty_weights_reach_the_loss():
    """--r1-gamma / --gp-lambda: the D loss changes by exactly the weight times the penalty."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1)).double()
    reals, fakes = torch.randn(4, 3, 2, 2, dtype=torch.float64), torch.randn(4, 3, 2, 2, dtype=torch.float64)
    for name, key in (("logistic", "r1_gamma"), ("wgan-gp", "wgan_lambda")):
        torch.manual_seed(1)
        loss_a, terms = get_loss(name, **{key: 10.0})[1](D, reals, fakes)
        torch.manual_seed(1)
        loss_b, _ = get_loss(name, **{key: 0.5})[1](D, reals, fakes)
        scale = 0.5 if name == "logistic" else 1.0  # R1 enters as gamma / 2
        assert float((loss_a - loss_b).detach()) == pytest.approx((10.0 - 0.5) * scale * float(terms["penalty"]), rel=1e-9)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("wasserstein")
