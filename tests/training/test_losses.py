"""Each loss's value and parameter gradient vs an independent closed-form formula on a tiny float64 MLP D."""
import pytest
import torch
import torch.nn as nn

from stylegan.training.losses import (clip_weights_, d_hinge, d_logistic_r1, d_lsgan, d_wgan, d_wgan_gp, g_logistic_ns,
                                      g_lsgan, g_wgan, get_loss)



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
    assert get_loss("wgan") == (g_wgan, d_wgan)
    g_fn, d_fn = get_loss("lsgan", r1_gamma=0.25)
    assert g_fn is g_lsgan and d_fn.func is d_lsgan and d_fn.keywords == {"r1_gamma": 0.25}
    with pytest.raises(ValueError, match="hinge, wgan, lsgan"):
        get_loss("lsgan-gp")


def test_penalty_weights_reach_the_loss():
    """--r1-gamma / --gp-lambda: the D loss changes by exactly the weight times the penalty."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1)).double()
    reals, fakes = torch.randn(4, 3, 2, 2, dtype=torch.float64), torch.randn(4, 3, 2, 2, dtype=torch.float64)
    for name, key in (("logistic", "r1_gamma"), ("lsgan", "r1_gamma"), ("wgan-gp", "wgan_lambda")):
        torch.manual_seed(1)
        loss_a, terms = get_loss(name, **{key: 10.0})[1](D, reals, fakes)
        torch.manual_seed(1)
        loss_b, _ = get_loss(name, **{key: 0.5})[1](D, reals, fakes)
        scale = 0.5 if key == "r1_gamma" else 1.0  # R1 enters as gamma / 2
        assert float((loss_a - loss_b).detach()) == pytest.approx((10.0 - 0.5) * scale * float(terms["penalty"]), rel=1e-9)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("wasserstein")


# ----------------------------------------------------------------------------------------------------------------
# The comparison losses on fixed scores: D returns given numbers, so each loss is checked against its formula
# evaluated by hand (numbers chosen so that a wrong sign, a missing half or a swapped target changes the value).

REAL_SCORES = torch.tensor([[2.0], [0.5], [-1.0]], dtype=torch.float64)
FAKE_SCORES = torch.tensor([[-0.5], [1.5], [0.0]], dtype=torch.float64)


def fixed_D(x):
    """'Scores' = the first pixel of each image, so scores are exactly the numbers put there."""
    return x.flatten(1)[:, :1]


def images(scores):
    x = torch.zeros(scores.shape[0], 1, 2, 2, dtype=torch.float64)
    x[:, 0, 0, 0] = scores[:, 0]
    return x


def test_lsgan_on_fixed_scores():
    loss, terms = d_lsgan(fixed_D, images(REAL_SCORES), images(FAKE_SCORES))
    # 1/2 mean((D(x) - 1)^2) + 1/2 mean(D(G(z))^2) = 1/2 * (1 + 0.25 + 4) / 3 + 1/2 * (0.25 + 2.25 + 0) / 3
    assert loss.item() == pytest.approx(0.5 * 5.25 / 3 + 0.5 * 2.5 / 3, rel=1e-15)
    assert float(terms["penalty"]) == 0.0
    g, _ = g_lsgan(fixed_D, images(FAKE_SCORES))
    # 1/2 mean((D(G(z)) - 1)^2) = 1/2 * (2.25 + 0.25 + 1) / 3
    assert g.item() == pytest.approx(0.5 * 3.5 / 3, rel=1e-15)
    # with R1: dD/dx is the unit vector on the first pixel, |grad|^2 = 1 per sample, so + gamma / 2
    loss_r1, terms_r1 = d_lsgan(fixed_D, images(REAL_SCORES), images(FAKE_SCORES), r1_gamma=3.0)
    assert loss_r1.item() == pytest.approx(loss.item() + 1.5, rel=1e-15) and float(terms_r1["penalty"]) == 1.0


def test_wgan_on_fixed_scores_and_clipping():
    loss, terms = d_wgan(fixed_D, images(REAL_SCORES), images(FAKE_SCORES))
    # mean(D(G(z))) - mean(D(x)) = 1/3 - 1/2
    assert loss.item() == pytest.approx(1.0 / 3 - 0.5, rel=1e-15)
    assert float(terms["real_score"]) == pytest.approx(0.5) and float(terms["penalty"]) == 0.0
    g, _ = g_wgan(fixed_D, images(FAKE_SCORES))
    assert g.item() == pytest.approx(-1.0 / 3, rel=1e-15)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.linspace(-0.03, 0.03, 12).view(4, 3))
        net[1].bias.fill_(-5.0)
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights_(net, 0.01)
    for b, p in zip(before, net.parameters()):  # every parameter, biases included (Algorithm 1)
        assert torch.equal(p, b.clamp(-0.01, 0.01))
    assert float(net[0].weight.detach().max()) == 0.01 and float(net[1].bias.detach()[0]) == -0.01
    assert (net[0].weight.abs() < 0.01).any()  # values inside the box are untouched


def test_comparison_losses_gradients_match_closed_form():
    D, reals, fakes = make()

    def lsgan_ref():
        (xr, gr), (xf, _) = closed_form(D, reals), closed_form(D, fakes)
        return 0.5 * ((xr - 1) ** 2).mean() + 0.5 * (xf ** 2).mean() + 0.35 * (gr ** 2).sum(1).mean()

    def wgan_ref():
        return closed_form(D, fakes)[0].mean() - closed_form(D, reals)[0].mean()

    for loss_fn, ref_fn in ((lambda: d_lsgan(D, reals, fakes, r1_gamma=0.7)[0], lsgan_ref),
                            (lambda: d_wgan(D, reals, fakes)[0], wgan_ref)):
        loss, ref = loss_fn(), ref_fn()
        assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
        got = grads(D, loss)
        assert any(g.abs().max() > 0 for g in got)
        for a, b in zip(got, grads(D, ref)):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
