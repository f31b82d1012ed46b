"""D augmentation (training/augment.py) and the ADA controller (training/ada.py) against direct computations."""
import math

import pytest
import torch

from stylegan.training.ada import AdaController
from stylegan.training.augment import (AUGPIPES, AdaPipeline, DiffAugment, apply_color, blit, diffaug_apply,
                                       geometric_warp, hue_rotate3d, luma_flip3d, rotate2d, saturation3d, scale2d,
                                       scale3d, translate2d, translate3d)
from stylegan.training.losses import LOSSES, d_logistic_r1, d_wgan_gp, get_loss

D64 = torch.float64


def _images(n=4, c=3, size=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, size, size, generator=g, dtype=dtype) * 2 - 1)


def _one(v):
    return torch.tensor([v], dtype=D64)


@pytest.mark.parametrize("pipe", list(AUGPIPES))
@pytest.mark.parametrize("channels", [1, 3])
def test_p0_is_exactly_the_identity(pipe, channels):
    x = _images(c=channels)
    aug = AdaPipeline(AUGPIPES[pipe], p=0.0, seed=3, impl="ref")
    for _ in range(3):
        assert torch.equal(aug(x), x)


def test_p1_applies_every_op():
    x = _images(n=64, size=8)
    aug = AdaPipeline(AUGPIPES["bgc"], p=1.0, seed=1, impl="ref")
    params = aug.draw(x)
    eye3, eye4 = torch.eye(3), torch.eye(4)
    # every gate is open: the drawn values themselves are used (flip/rot90 draw 0 for some samples by design)
    assert 0.3 < params.xflip.mean() < 0.7 and set(params.rot90.unique().tolist()) == {0.0, 1.0, 2.0, 3.0}
    assert (params.shift != 0).any(dim=1).float().mean() > 0.5
    assert params.geom_active.all() and params.color_active.all()
    assert not any(torch.equal(params.G_inv[i], eye3) for i in range(64))
    assert not any(torch.equal(params.C[i], eye4) for i in range(64))


def test_gates_follow_p_times_multiplier():
    x = _images(n=4000, c=3, size=4)
    aug = AdaPipeline({"brightness": 0.5}, p=0.6, seed=2, impl="ref")
    on = aug.draw(x).color_active.float().mean().item()
    assert abs(on - 0.3) < 0.03   # 4000 samples: the std of the fraction is 0.007


def test_same_seed_same_augmentation_and_other_seed_differs():
    x = _images()
    a, b, c = (AdaPipeline(AUGPIPES["bgc"], p=0.7, seed=s, impl="ref") for s in (5, 5, 6))
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb) and not torch.equal(ya, yc)
    state = a.state_dict()
    y_next = a(x)
    a.load_state_dict(state)
    assert torch.equal(a(x), y_next)  # the generator state restores the stream exactly


def test_blit_ops_are_exact_permutations():
    x = _images(n=4, size=8)
    zero, n = torch.zeros(4), 4
    flip = torch.tensor([1.0, 0.0, 1.0, 0.0])
    y = blit(x, flip, zero, torch.zeros(n, 2))
    assert torch.equal(y[0], x[0].flip(2)) and torch.equal(y[1], x[1])
    rot = torch.tensor([0.0, 1.0, 2.0, 3.0])
    y = blit(x, zero, rot, torch.zeros(n, 2))
    for i in range(4):
        assert torch.equal(y[i], torch.rot90(x[i], i, dims=(1, 2)))
    shift = torch.tensor([[1.0, 0.0], [0.0, -2.0], [-1.0, 1.0], [0.0, 0.0]])
    y = blit(x, zero, zero, shift)
    padded = torch.nn.functional.pad(x, [2, 2, 2, 2], mode="reflect")
    for i in range(4):
        dx, dy = int(shift[i, 0]), int(shift[i, 1])
        want = padded[i, :, 2 - dy:2 - dy + 8, 2 - dx:2 - dx + 8]  # out(y, x) = in(y - dy, x - dx)
        assert torch.equal(y[i], want)
    assert torch.equal(y[0, :, :, 1:], x[0, :, :, :-1])  # one pixel to the right


@pytest.mark.parametrize("name, G", [
    ("rotation", rotate2d(_one(0.4))),
    ("iso-scale", scale2d(_one(1.25), _one(1.25))),
    ("aniso", scale2d(_one(0.8), _one(1.25))),
    ("fractional shift", translate2d(_one(0.37), _one(-1.6))),
    ("composed", rotate2d(_one(-0.7)) @ scale2d(_one(0.9), _one(1.1)) @ translate2d(_one(1.5), _one(-0.25))),
])
def test_geometric_warp_matches_the_analytic_warp_of_a_smooth_image(name, G):
    size, k = 32, 0.1
    coords = torch.arange(size, dtype=D64) - (size - 1) / 2
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    f = lambda X, Y: torch.cos(k * X + 0.5 * k * Y + 0.3) + 0.5 * torch.sin(0.7 * k * Y - 0.4 * k * X)  # noqa: E731
    img = f(xs, ys).expand(1, 1, size, size).clone()
    out = geometric_warp(img, G, impl="ref")[0, 0]
    P = torch.stack([xs.flatten(), ys.flatten(), torch.ones(size * size, dtype=D64)])
    Q = G[0] @ P
    want = f(Q[0], Q[1]).view(size, size)
    inner = slice(8, 24)  # away from the reflect-padded border
    err = (out[inner, inner] - want[inner, inner]).abs().max().item()
    assert err < 1.5e-2, err   # the signal's amplitude is 1.5
    Q_wrong = torch.linalg.inv(G[0]) @ P if name != "fractional shift" else (translate2d(_one(-0.37), _one(1.6))[0] @ P)
    wrong = f(Q_wrong[0], Q_wrong[1]).view(size, size)
    assert (out[inner, inner] - wrong[inner, inner]).abs().max().item() > 10 * err  # the test can tell


def test_colour_matrices_equal_their_formulas():
    x = _images(n=2, dtype=D64)
    b, c = torch.tensor([0.3, -0.2], dtype=D64), torch.tensor([1.5, 0.5], dtype=D64)
    torch.testing.assert_close(apply_color(x, translate3d(b)), x + b.view(2, 1, 1, 1))
    torch.testing.assert_close(apply_color(x, scale3d(c)), x * c.view(2, 1, 1, 1))
    mean = x.mean(dim=1, keepdim=True)
    flip = torch.tensor([1.0, 0.0], dtype=D64)
    want = torch.stack([x[0] - 2 * mean[0], x[1]])  # reflection through the plane orthogonal to (1,1,1)/sqrt(3)
    torch.testing.assert_close(apply_color(x, luma_flip3d(flip)), want)
    s = torch.tensor([2.0, 0.25], dtype=D64)
    torch.testing.assert_close(apply_color(x, saturation3d(s)), mean + (x - mean) * s.view(2, 1, 1, 1))
    theta = torch.tensor([0.9, -2.0], dtype=D64)
    v = torch.full((3,), 1 / math.sqrt(3), dtype=D64)
    K = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=D64)
    for i in range(2):
        R = torch.linalg.matrix_exp(theta[i] * K)  # rotation about the luma axis
        want = (R @ x[i].reshape(3, -1)).reshape(x[i].shape)
        torch.testing.assert_close(apply_color(x[i:i + 1], hue_rotate3d(theta[i:i + 1]))[0], want)
    gray = x[:, :1]  # grayscale: the mean of the RGB rows' response
    torch.testing.assert_close(apply_color(gray, translate3d(b) @ scale3d(c)),
                               gray * c.view(2, 1, 1, 1) + b.view(2, 1, 1, 1))


def test_diffaugment_equals_its_direct_formulas():
    x = _images(n=2, size=8, dtype=D64)
    u = lambda *v: torch.tensor(v, dtype=D64).view(-1, 1, 1, 1)  # noqa: E731
    shift = torch.tensor([[1, 0], [-2, 1]])
    centre = torch.tensor([[0, 0], [5, 3]])
    out = diffaug_apply(x, u(0.7, 0.2), u(0.5, 0.9), u(0.1, 0.6), shift, centre, (4, 4))
    for i in range(2):
        y = x[i] + (u(0.7, 0.2)[i] - 0.5)
        m = y.mean(0, keepdim=True)
        y = (y - m) * (u(0.5, 0.9)[i] * 2) + m
        y = (y - y.mean()) * (u(0.1, 0.6)[i] + 0.5) + y.mean()
        want = torch.zeros_like(y)
        for r in range(8):
            for col in range(8):
                sr, sc = r - int(shift[i, 1]), col - int(shift[i, 0])
                if 0 <= sr < 8 and 0 <= sc < 8:
                    want[:, r, col] = y[:, sr, sc]
        cy, cx = int(centre[i, 1]), int(centre[i, 0])
        want[:, max(cy - 2, 0):cy + 2, max(cx - 2, 0):cx + 2] = 0
        torch.testing.assert_close(out[i], want)
    d = DiffAugment(seed=1)
    assert d(x).shape == x.shape and not torch.equal(d(x), x)


def test_gradcheck_of_the_augmentation_float64():
    x = _images(n=2, size=8, dtype=D64).requires_grad_(True)
    aug = AdaPipeline(AUGPIPES["bgc"], p=1.0, seed=4, impl="ref")
    params = aug.draw(x)
    assert torch.autograd.gradcheck(lambda t: aug.apply(t, params), (x,))
    assert torch.autograd.gradgradcheck(lambda t: aug.apply(t, params), (x,))
    d = DiffAugment(seed=2)
    state = d.state_dict()

    def diffaug(t):
        d.load_state_dict(state)
        return d(t)
    assert torch.autograd.gradcheck(diffaug, (x,))


class _TinyD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(4, 3, 3, 3, generator=g, dtype=D64) * 0.3)
        self.v = torch.nn.Parameter(torch.randn(4 * 6 * 6, generator=g, dtype=D64) * 0.1)

    def forward(self, img):
        h = torch.nn.functional.conv2d(img, self.w).tanh()
        return (h.flatten(1) @ self.v).unsqueeze(1)


def _jacobian_of_aug(aug, params, x):
    """The augmentation is affine in the image: its Jacobian, sample by sample ([N, out, in])."""
    jac = torch.autograd.functional.jacobian(lambda t: aug.apply(t, params), x)  # [N, C, H, W, N, C, H, W]
    n = x.shape[0]
    flat = jac.reshape(n, x[0].numel(), n, x[0].numel())
    return torch.stack([flat[i, :, i, :] for i in range(n)])


@pytest.mark.parametrize("loss", ["wgan-gp", "r1"])
def test_penalties_through_the_augmentation_equal_a_direct_computation(loss):
    reals, fakes = _images(n=2, size=8, seed=1, dtype=D64), _images(n=2, size=8, seed=2, dtype=D64)
    D = _TinyD()
    aug = AdaPipeline(AUGPIPES["bgc"], p=1.0, seed=7, impl="ref")
    state = aug.state_dict()
    u = torch.tensor([0.3, 0.8], dtype=D64)
    if loss == "wgan-gp":
        total, terms = d_wgan_gp(lambda img: D(aug(img)), reals, fakes, u=u)
    else:
        total, terms = d_logistic_r1(lambda img: D(aug(img)), reals, fakes, r1_gamma=10.0)
    grads = torch.autograd.grad(total, list(D.parameters()))
    # Direct: the same draws in the same order (reals, fakes, then the penalty's input), the gradient of D's
    # score wrt the un-augmented input by the chain rule through the augmentation's Jacobian.
    aug.load_state_dict(state)
    p_real, p_fake = aug.draw(reals), aug.draw(fakes)
    x = reals + (fakes - reals) * u.view(-1, 1, 1, 1) if loss == "wgan-gp" else reals
    p_pen = aug.draw(x) if loss == "wgan-gp" else p_real
    J = _jacobian_of_aug(aug, p_pen, x)
    y = aug.apply(x, p_pen).detach().requires_grad_(True)
    (gy,) = torch.autograd.grad(D(y).sum(), y, create_graph=True)
    gx = torch.einsum("noi,no->ni", J, gy.flatten(1))
    if loss == "wgan-gp":
        norms = gx.square().sum(1).sqrt()
        real_s, fake_s = D(aug.apply(reals, p_real)), D(aug.apply(fakes, p_fake))
        want_pen = (norms - 1).square()
        direct = (fake_s - real_s).mean() + want_pen.mean() * 10 + real_s.square().mean() * 0.001
    else:
        want_pen = gx.square().sum(1)
        real_s, fake_s = D(aug.apply(reals, p_real)), D(aug.apply(fakes, p_fake))
        direct = (torch.nn.functional.softplus(fake_s).mean() + torch.nn.functional.softplus(-real_s).mean()
                  + want_pen.mean() * 5)
    torch.testing.assert_close(terms["penalty"], want_pen.mean().detach())
    torch.testing.assert_close(total.detach(), direct.detach())
    for g, w in zip(grads, torch.autograd.grad(direct, list(D.parameters()))):
        torch.testing.assert_close(g, w)  # the double backward through the augmentation is right
    assert terms["real_sign"] == real_s.sign().mean()


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_d_loss_reports_r_t_of_the_augmented_reals_raw_scores(loss):
    """r_t's input (`real_sign`) is E[sign(D(aug(reals)))] of D's raw scores with every loss, WGAN-GP included
    (whose scores are only anchored at 0 by the drift term: docs/TRANSFER.md §1.5). A D with a score offset makes
    the signs mixed, so a sign of the wrong scores (fakes, un-augmented reals, the loss's transformed scores) would
    differ."""
    reals, fakes = _images(n=16, size=8, seed=3, dtype=D64), _images(n=16, size=8, seed=4, dtype=D64)
    D = _TinyD()
    aug = AdaPipeline(AUGPIPES["bgc"], p=1.0, seed=9, impl="ref")
    state = aug.state_dict()
    _, d_fn = get_loss(loss, r1_gamma=1.0)
    extra = {"u": torch.full((16,), 0.5, dtype=D64)} if loss == "wgan-gp" else {}
    offset = D(aug(reals)).median().detach()  # centre the scores: about half the signs are negative
    aug.load_state_dict(state)
    _, terms = d_fn(lambda img: D(aug(img)) - offset, reals, fakes, **extra)
    aug.load_state_dict(state)
    with torch.no_grad():  # reals are the first draw of every loss
        want = (D(aug.apply(reals, aug.draw(reals))) - offset).sign().mean()
        unaugmented = (D(reals) - offset).sign().mean()
    assert -1.0 < float(want) < 1.0
    assert terms["real_sign"] == want
    assert terms["real_sign"] != unaugmented  # the seed makes the two differ: the test sees which one is used


# ---------------------------------------------------------------------------------------------------------------
# The p controller.

def _run_controller(rts, batch=8, ada_kimg=0.1, interval=4, p=0.0, target=0.6):
    ctl = AdaController(target, ada_kimg, interval)
    ps = []
    for rt in rts:
        ctl.add(torch.tensor(rt, dtype=D64))
        if ctl.due():
            p = ctl.update(p, batch)
        ps.append(p)
    return ps


def test_controller_step_rises_falls_and_clamps():
    step = 8 * 4 / (0.1 * 1000)  # batch * interval / (ada_kimg * 1000) = 0.32
    ps = _run_controller([1.0] * 12)
    assert ps[:3] == [0.0] * 3 and ps[3] == step and ps[7] == 2 * step and ps[11] == 3 * step  # every 4th
    ps = _run_controller([1.0] * 16 + [0.0] * 28)
    assert ps[15] == 1.0                     # 4 x 0.32 clamped at 1
    assert ps[19] == pytest.approx(1 - step) and ps[-1] == 0.0   # falls, clamped at 0
    # r_t is the mean over the interval: 0.5 (below 0.6) lowers p even though two minibatches were above
    ps = _run_controller([1.0, 1.0, 0.0, 0.0], p=0.5)
    assert ps[-1] == pytest.approx(0.5 - step)
    ps = _run_controller([0.6] * 4, p=0.5)   # exactly at the target: no move
    assert ps[-1] == 0.5


def test_controller_rank_mean_and_state():
    # two "ranks" whose means differ: the update uses their average (the reduce function)
    ctl = AdaController(0.6, 0.1, 1, reduce_mean=lambda t: (t + torch.tensor([0.0])) * 0 + 0.5)
    ctl.add(torch.tensor(1.0))
    assert ctl.update(0.5, 8) == pytest.approx(0.5 - 8 / 100)
    a = AdaController(0.6, 0.1, 4)
    a.add(torch.tensor(0.5))
    b = AdaController(0.6, 0.1, 4)
    b.load_state_dict(a.state_dict(), torch.device("cpu"))
    assert b.steps == 1 and torch.equal(b.sign_sum, a.sign_sum)


def test_colour_ops_refuse_other_channel_counts():
    with pytest.raises(ValueError, match="4 channels; use --augpipe bg"):
        AdaPipeline(AUGPIPES["bgc"]).check_channels(4)
    AdaPipeline(AUGPIPES["bg"]).check_channels(4)
    AdaPipeline(AUGPIPES["color"]).check_channels(1)
