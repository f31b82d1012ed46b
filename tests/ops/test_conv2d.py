"""stylegan.ops.conv2d: the same values as torch's convolutions, and derivatives of every order (gradient penalty).

The Functions only re-express the backward, so the forward must be bit-identical to F.conv2d / F.conv_transpose2d
and every derivative must match torch autograd; gradcheck/gradgradcheck in float64 cover the analytic formulas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import pytest
import torch
import torch.nn.functional as F

from stylegan.ops import conv2d as C


pytestmark = pytest.mark.usefixtures("single_thread")


@dataclass(frozen=True)
class Case:
    name: str
    transposed: bool
    x: Tuple[int, int, int, int]
    w: Tuple[int, int, int, int]
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    bias: bool = False

    def kwargs(self):
        kw = dict(stride=self.stride, padding=self.padding)
        if self.transposed:
            kw["output_padding"] = self.output_padding
        return kw


CASES: List[Case] = [
    Case("3x3 same", False, (2, 3, 6, 5), (3, 3, 3, 3), padding=1),
    Case("3x3 same, more outputs", False, (2, 3, 6, 5), (4, 3, 3, 3), padding=1),
    Case("3x3 same + bias", False, (2, 3, 5, 7), (4, 3, 3, 3), padding=1, bias=True),
    Case("1x1 + bias", False, (2, 3, 4, 5), (2, 3, 1, 1), bias=True),
    Case("4x4 stride 2 (fused down)", False, (2, 3, 8, 6), (3, 3, 4, 4), stride=2, padding=1),
    Case("4x4 stride 2 odd size", False, (1, 2, 7, 9), (3, 2, 4, 4), stride=2, padding=1),
    Case("3x3 stride 2", False, (2, 2, 7, 6), (3, 2, 3, 3), stride=2, padding=1),
    Case("T 4x4 stride 2 (fused up)", True, (2, 3, 4, 5), (3, 3, 4, 4), stride=2, padding=1),
    Case("T 4x4 stride 2, more outputs", True, (2, 3, 4, 5), (3, 4, 4, 4), stride=2, padding=1),
    Case("T 3x3 stride 2 output_padding", True, (2, 3, 4, 3), (3, 2, 3, 3), stride=2, padding=1, output_padding=1),
    Case("T 3x3 stride 1 + bias", True, (2, 3, 5, 4), (3, 3, 3, 3), padding=1, bias=True),
]


def _inputs(case: Case, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.x, generator=g, dtype=dtype).requires_grad_(True)
    w = torch.randn(case.w, generator=g, dtype=dtype).requires_grad_(True)
    n_out = case.w[1] if case.transposed else case.w[0]
    b = torch.randn(n_out, generator=g, dtype=dtype).requires_grad_(True) if case.bias else None
    return x, w, b


def _ours(case: Case):
    fn = C.conv_transpose2d if case.transposed else C.conv2d
    return lambda x, w, b=None: fn(x, w, b, impl="auto", **case.kwargs())


def _torch(case: Case):
    fn = F.conv_transpose2d if case.transposed else F.conv2d
    return lambda x, w, b=None: fn(x, w, b, **case.kwargs())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward_is_bit_identical_to_torch(case):
    x, w, b = _inputs(case, torch.float32)
    assert torch.equal(_ours(case)(x, w, b), _torch(case)(x, w, b))
    assert torch.equal(C.conv2d(x, w, b, impl="ref", **case.kwargs()) if not case.transposed else
                       C.conv_transpose2d(x, w, b, impl="ref", **case.kwargs()), _torch(case)(x, w, b))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradcheck_and_gradgradcheck(case):
    x, w, b = _inputs(case)
    args = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(_ours(case), args)
    assert torch.autograd.gradgradcheck(_ours(case), args)


def _penalty_grads(conv, x, w, b):
    """WGAN-GP-style penalty through conv -> lrelu -> conv (second weight derived from w, so both layers' weight
    gradients meet in w): returns d(penalty + score)/d(w, b)."""
    x = x.detach().requires_grad_(True)
    h = F.leaky_relu(conv(x, w, b), 0.2)
    y = conv(h, (w * 0.5).flip(2, 3), None)
    score = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum()
    (gx,) = torch.autograd.grad(score, x, create_graph=True)
    penalty = (gx.flatten(1).norm(dim=1) - 1).square().sum()
    return torch.autograd.grad(penalty + score, [w] if b is None else [w, b])


SQUARE = [c for c in CASES if c.w[0] == c.w[1] == c.x[1]]  # two chained layers need C -> C


@pytest.mark.parametrize("case", SQUARE, ids=lambda c: c.name)
def test_gradient_penalty_matches_torch(case):
    x, w, b = _inputs(case)
    ours, ref = _penalty_grads(_ours(case), x, w, b), _penalty_grads(_torch(case), x, w, b)
    for a, e in zip(ours, ref):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_there_are_penalty_cases_of_each_kind():
    assert {c.transposed for c in SQUARE} == {False, True} and any(c.stride == 2 for c in SQUARE)


def test_input_only_grad_computes_no_weight_gradient(monkeypatch):
    """autograd.grad(score, images) (the penalty's first pass) must not pay for weight gradients nobody reads."""
    calls = []
    original = torch.ops.aten.convolution_backward

    class Spy:
        def __call__(self, *args):
            calls.append(args[-1])
            return original(*args)

    monkeypatch.setattr(torch.ops.aten, "convolution_backward", Spy())
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    w = torch.randn(3, 3, 3, 3, requires_grad=True)
    y = C.conv2d(C.conv2d(x, w * 1.0, padding=1), w * 2.0, padding=1)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    assert calls == []  # input gradients are transposed convolutions; no weight gradient was computed
    gx.square().sum().backward()
    assert calls and all(mask == [False, True, False] for mask in calls)
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_channels_last_and_noncontiguous_inputs():
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    w = torch.randn(4, 4, 3, 3)[:, :, ::1].transpose(2, 3).requires_grad_(True)  # non-contiguous weight
    y = C.conv2d(x, w, padding=1)
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1))
    gx, gw = torch.autograd.grad(y.square().sum(), (x, w))
    ex, ew = torch.autograd.grad(F.conv2d(x, w, padding=1).square().sum(), (x, w))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gw, ew)


def test_bad_arguments_raise():
    x, w = torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="impl"):
        C.conv2d(x, w, impl="fast")
    with pytest.raises(ValueError, match="stride"):
        C.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="4-D"):
        C.conv2d(x[0], w)
    with pytest.raises(TypeError, match="padding"):
        C.conv2d(x, w, padding=True)


# ---- weight transforms (equalized lr, fused up/down kernels) --------------------------------------------------------
TRANSFORMS = [
    ("gain", False, dict(gain=0.37), (3, 3, 3, 3), dict(padding=1)),
    ("gain, fused down x0.25", False, dict(gain=0.5, fused=True, fused_gain=0.25), (3, 3, 3, 3),
     dict(stride=2, padding=1)),
    ("gain, transpose, fused up", True, dict(gain=1.7, transpose=True, fused=True), (3, 3, 3, 3),
     dict(stride=2, padding=1)),
    ("gain, 1x1, more outputs", False, dict(gain=2.0), (4, 3, 1, 1), dict()),
]


def _tf_inputs(w_shape, transposed, seed=0):
    g = torch.Generator().manual_seed(seed)
    c_in = w_shape[0] if transposed else w_shape[1]
    x = torch.randn(2, c_in, 6, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(w_shape, generator=g, dtype=torch.float64).requires_grad_(True)
    return x, w


@pytest.mark.parametrize("name, transposed, tf, w_shape, kw", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_weight_transform_equals_the_effective_weight(name, transposed, tf, w_shape, kw):
    """conv(x, w, transform=T) == conv(x, T(w)) bit for bit; gradients of every order match autograd through T."""
    transform = C.WeightTransform(**tf)
    ours = C.conv_transpose2d if transposed else C.conv2d
    ref = F.conv_transpose2d if transposed else F.conv2d
    x, w = _tf_inputs(w_shape, transposed)
    x32, w32 = x.float(), w.float()
    assert torch.equal(ours(x32, w32, transform=transform, **kw), ref(x32, transform(w32), **kw))
    assert tuple(transform(w).shape) == transform.shape(w.shape)
    fn = lambda x, w: ours(x, w, transform=transform, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))
    # a gradient penalty through two such layers (the second one plain) equals autograd through T
    results = []
    for conv in (fn, lambda x, w: ref(x, transform(w), **kw)):
        xi = x.detach().requires_grad_(True)
        h = F.leaky_relu(conv(xi, w), 0.2)
        score = (h * torch.linspace(-1, 1, h.numel(), dtype=h.dtype).reshape(h.shape)).sum()
        (gx,) = torch.autograd.grad(score, xi, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum() + score, w))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-10)


def test_weight_transform_vjp_is_the_adjoint_bit_for_bit():
    w = torch.randn(5, 4, 3, 3, requires_grad=True)
    for tf in (C.WeightTransform(gain=0.3), C.WeightTransform(gain=0.3, fused=True, fused_gain=0.25),
               C.WeightTransform(gain=1.3, transpose=True, fused=True)):
        y = tf(w)
        g = torch.randn(y.shape)
        (expected,) = torch.autograd.grad(y, w, g)
        assert torch.equal(tf.vjp(g), expected)


def test_only_the_raw_weight_is_saved_for_backward():
    """The effective weight (x gain, 4x4 fused kernel) is recomputed in backward, not kept alive per call."""
    shapes = []

    def pack(t):
        shapes.append(tuple(t.shape))
        return t

    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(3, 3, 3, 3, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = C.conv2d(x, w, stride=2, padding=1, transform=C.WeightTransform(gain=0.5, fused=True, fused_gain=0.25))
    assert (3, 3, 4, 4) not in shapes and (3, 3, 3, 3) in shapes
    y.sum().backward()
    (expected,) = torch.autograd.grad(F.conv2d(x, C.fused_kernel_sum(w * 0.5, 0.25), stride=2, padding=1).sum(), w)
    torch.testing.assert_close(w.grad, expected)


class _Blur:
    """A blur as the conv's `pre` (the same pair stylegan.layers.BlurOp provides)."""

    def __init__(self, f, impl="cpu"):
        self.f, self.impl = f, impl

    def __call__(self, x):
        from stylegan.ops import filter2d
        return filter2d(x, self.f, flip_filter=True, impl=self.impl)

    def adjoint(self, g):
        from stylegan.ops.upfirdn2d import filter2d_adjoint
        return filter2d_adjoint(g, self.f, flip_filter=True, impl=self.impl)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=1)], ids=["3x3", "fused-down"])
def test_pre_op_is_recomputed_not_saved_and_differentiates_like_autograd(kw):
    g = torch.Generator().manual_seed(2)
    f = torch.rand(3, 3, generator=g, dtype=torch.float64) + 0.1  # not symmetric: a wrong adjoint cannot pass
    pre = _Blur(f)
    fused = kw.get("stride") == 2
    tf = C.WeightTransform(gain=0.7, fused=fused, fused_gain=0.25 if fused else 1.0)
    x = torch.randn(2, 3, 8, 7, generator=g, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(3, 3, 3, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    ours = lambda x, w: C.conv2d(x, w, transform=tf, pre=pre, **kw)  # noqa: E731
    ref = lambda x, w: F.conv2d(pre(x), tf(w), **kw)  # noqa: E731
    assert torch.equal(ours(x, w), ref(x, w))
    assert torch.equal(C.conv2d(x, w, transform=tf, pre=pre, impl="ref", **kw), ref(x, w))
    assert torch.autograd.gradcheck(ours, (x, w))
    assert torch.autograd.gradgradcheck(ours, (x, w))
    results = []
    for conv in (ours, ref):
        xi = x.detach().requires_grad_(True)
        score = (F.leaky_relu(conv(xi, w), 0.2) * 0.3).sum()
        (gx,) = torch.autograd.grad(score, xi, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum() + score, w)[0])
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-10)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.data_ptr()) or t, lambda t: t):
        ours(x, w)
    assert set(saved) == {x.data_ptr(), w.data_ptr()}  # neither pre(x) nor the effective weight
