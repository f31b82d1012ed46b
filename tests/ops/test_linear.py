"""stylegan.ops.linear: F.linear(x, w * gain, b) with only the raw weight saved; derivatives of every order."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylegan.ops.linear import linear


pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(bias: bool, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g, dtype=dtype).requires_grad_(True)
    w = torch.randn(5, 6, generator=g, dtype=dtype).requires_grad_(True)
    b = torch.randn(5, generator=g, dtype=dtype).requires_grad_(True) if bias else None
    return x, w, b


@pytest.mark.parametrize("bias", [False, True])
def test_forward_bit_identical_and_gradients_of_every_order(bias):
    x, w, b = _inputs(bias, torch.float32)
    assert torch.equal(linear(x, w, b, 0.37), F.linear(x, w * 0.37, b))
    x, w, b = _inputs(bias)
    args = (x, w) if b is None else (x, w, b)
    fn = lambda *a: linear(*a, gain=0.37) if len(a) == 3 else linear(a[0], a[1], None, 0.37)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


def test_gradient_penalty_matches_autograd_and_only_the_raw_weight_is_saved():
    x, w, b = _inputs(True)
    results = []
    for lin in (lambda x: linear(x, w, b, 0.5), lambda x: F.linear(x, w * 0.5, b)):
        xi = x.detach().requires_grad_(True)
        score = F.leaky_relu(lin(xi), 0.2).sum()
        (gx,) = torch.autograd.grad(score, xi, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum() + score, [w, b]))
    for a, e in zip(*results):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        linear(x, w, b, 0.5)
    assert any(t is w or t._base is w for t in saved) and all(t.data_ptr() in (x.data_ptr(), w.data_ptr())
                                                              for t in saved)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="2-D"):
        linear(torch.randn(2, 3, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="in=3"):
        linear(torch.randn(2, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="impl"):
        linear(torch.randn(2, 3), torch.randn(5, 3), impl="fast")
