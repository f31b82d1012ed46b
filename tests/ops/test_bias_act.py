"""bias_act kernels (CPU and CUDA) against the pure-torch reference: forward, grad, grad-of-grad, layouts, errors.

One `sample_inputs()` feeds the CPU and the CUDA runs (the `device` fixture in conftest.py skips CUDA with a reason).
The kernel path is asserted, not assumed: impl='cpu'/'cuda' raises instead of falling back, and the autograd nodes
must be the kernel's Functions.
"""
from __future__ import annotations

import copy
import importlib
import io
import pickle
from dataclasses import dataclass, field
from typing import List, Tuple

import pytest
import torch

from stylegan import ops
from stylegan.ops import build
from stylegan.ops.bias_act import ACTIVATIONS
from stylegan.ops.selfcheck import away_from_the_clamp

# the module, not the function `stylegan.ops.bias_act` that shadows its name in the package
bias_act_module = importlib.import_module("stylegan.ops.bias_act")

pytestmark = pytest.mark.usefixtures("no_forced_reference")


@dataclass
class Case:
    """One bias_act call: x's shape and layout, the bias and the keyword arguments."""

    name: str
    shape: Tuple[int, ...]
    dim: int = 1
    act: str = "lrelu"
    bias: bool = True
    layout: str = "contiguous"  # contiguous | channels_last | transposed (dense, permuted) | strided (not dense)
    kwargs: dict = field(default_factory=dict)

    def make(self, device: torch.device, dtype: torch.dtype, seed: int = 0):
        """Returns (x, b) on `device` in `dtype`, x laid out as `layout` (values drawn on the CPU: reproducible)."""
        gen = torch.Generator().manual_seed(seed)
        if self.layout == "channels_last":
            n, c, h, w = self.shape
            x = torch.randn(n, h, w, c, generator=gen, dtype=torch.float64).permute(0, 3, 1, 2)
        elif self.layout == "transposed":
            x = torch.randn(*self.shape[:-2], self.shape[-1], self.shape[-2], generator=gen,
                            dtype=torch.float64).transpose(-1, -2)
        elif self.layout == "strided":
            x = torch.randn(*self.shape[:-1], 2 * self.shape[-1], generator=gen, dtype=torch.float64)[..., ::2]
        else:
            x = torch.randn(*self.shape, generator=gen, dtype=torch.float64)
        x = x * 2  # spread values over the interesting range of every activation (and over the clamp)
        b = torch.randn(self.shape[self.dim], generator=gen, dtype=torch.float64) if self.bias else None
        x = x.to(device=device, dtype=dtype)
        b = b.to(device=device, dtype=dtype) if b is not None else None
        return x, b

    def call(self, x, b, impl):
        return ops.bias_act(x, b, dim=self.dim, act=self.act, impl=impl, **self.kwargs)


def sample_inputs() -> List[Case]:
    """The cases every device runs: all activations (bias on/off, clamp, gains), dims, layouts, odd and empty sizes."""
    cases = []
    for act in ACTIVATIONS:
        for bias in (True, False):
            cases.append(Case(f"{act}-bias{int(bias)}", (2, 5, 6, 7), act=act, bias=bias))
        cases.append(Case(f"{act}-clamp", (2, 5, 6, 7), act=act, kwargs=dict(clamp=0.7)))
        cases.append(Case(f"{act}-gain-alpha", (2, 5, 6, 7), act=act, kwargs=dict(gain=0.5, alpha=0.3)))
        cases.append(Case(f"{act}-channels_last", (2, 6, 5, 7), act=act, layout="channels_last"))
    for dim in range(4):
        cases.append(Case(f"lrelu-dim{dim}", (3, 4, 33, 65), dim=dim, kwargs=dict(clamp=1.5)))
        cases.append(Case(f"swish-dim{dim}", (3, 4, 6, 7), dim=dim, act="swish"))
    cases += [
        Case("lrelu-neg-gain", (2, 5, 6, 7), kwargs=dict(gain=-1.3)),
        Case("lrelu-zero-gain", (2, 5, 6, 7), kwargs=dict(gain=0.0)),
        Case("tanh-clamp-gain", (2, 5, 6, 7), act="tanh", kwargs=dict(clamp=0.3, gain=2.0)),
        Case("1x1", (4, 8, 1, 1), act="elu"),
        Case("3x7", (2, 3, 3, 7), act="selu", kwargs=dict(clamp=1.0)),
        Case("33x65", (2, 5, 33, 65), act="softplus"),
        Case("33x65-multithread", (4, 16, 33, 65)),  # > one parallel task: the fused bias-grad across threads
        Case("33x65-channels_last", (2, 5, 33, 65), layout="channels_last", kwargs=dict(clamp=0.5)),
        Case("transposed", (2, 5, 6, 7), act="sigmoid", layout="transposed"),
        Case("strided", (2, 5, 6, 7), act="tanh", layout="strided"),
        Case("strided-dim3", (2, 5, 6, 7), dim=3, layout="strided"),
        Case("2d-linear-layer", (8, 33), act="lrelu"),
        Case("1d", (70,), dim=0, act="tanh"),
        Case("empty-batch", (0, 5, 6, 7), act="tanh"),
        Case("empty-batch-lrelu", (0, 5, 6, 7)),
    ]
    return cases


CASES = sample_inputs()
IDS = [c.name for c in CASES]
TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=2e-5, rtol=2e-5),
       torch.float16: dict(atol=2e-2, rtol=2e-2), torch.bfloat16: dict(atol=1e-1, rtol=5e-2)}
DTYPES = {"cpu": [torch.float32, torch.float64, torch.bfloat16], "cuda": [torch.float16, torch.bfloat16, torch.float32, torch.float64]}


def kernel_impl(device: torch.device) -> str:
    return device.type


def _run_all_orders(case: Case, x0, b0, impl: str, dy0, w_dx, w_db):
    """Forward, first and second derivatives of one case; returns a list of tensors (None where none exists)."""
    x = x0.detach().clone().requires_grad_()
    b = b0.detach().clone().requires_grad_() if b0 is not None else None
    dy = dy0.detach().clone().requires_grad_()
    y = case.call(x, b, impl)
    inputs = [x] + ([b] if b is not None else [])
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    dx = grads[0]
    db = grads[1] if b is not None else None
    # a loss linear in dx and db with random weights: its gradient is the full second-order term
    loss = (dx * w_dx).sum() + ((db * w_db).sum() if db is not None else 0)
    second = torch.autograd.grad(loss, inputs + [dy], allow_unused=True)
    return y, dx, db, second


def _assert_close(got, want, tol, what):
    if want is None or got is None:
        # a missing gradient is a zero gradient (linear activations have no second-order x term)
        ref = want if want is not None else got
        if ref is not None:
            assert torch.count_nonzero(ref.float()) == 0, f"{what}: one side is None, the other is non-zero"
        return
    assert got.shape == want.shape, f"{what}: shape {list(got.shape)} vs {list(want.shape)}"
    torch.testing.assert_close(got.to(want.dtype), want, **tol, msg=lambda m: f"{what}: {m}")


# ---------------------------------------------------------------------------------------------------------------
# Kernel vs reference.

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_kernel_matches_reference(case, device):
    """Forward, grad and grad-of-grad of the kernel equal the reference's (every dtype the device supports)."""
    impl = kernel_impl(device)
    for dtype in DTYPES[device.type]:
        x, b = case.make(device, dtype)
        if dtype in (torch.float16, torch.bfloat16):
            kw = case.kwargs
            x = away_from_the_clamp(x, b, case.dim, case.act, kw.get("alpha"), kw.get("gain"), kw.get("clamp"))
        gen = torch.Generator().manual_seed(1)
        dy = torch.randn(case.shape, generator=gen, dtype=torch.float64).to(device, dtype)
        w_dx = torch.randn(case.shape, generator=gen, dtype=torch.float64).to(device, dtype)
        w_db = torch.randn(case.shape[case.dim], generator=gen, dtype=torch.float64).to(device, dtype)
        # reference in float64 for the low-precision dtypes, in the same dtype otherwise
        ref_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float64
        cast = lambda t: t.to(ref_dtype) if t is not None else None  # noqa: E731
        got = _run_all_orders(case, x, b, impl, dy, w_dx, w_db)
        want = _run_all_orders(case, cast(x), cast(b), "ref", cast(dy), cast(w_dx), cast(w_db))
        tol = TOL[dtype]
        _assert_close(got[0], want[0], tol, f"{dtype} forward")
        _assert_close(got[1], want[1], tol, f"{dtype} dx")
        _assert_close(got[2], want[2], tol, f"{dtype} db")
        for name, g, w in zip(["x", "b", "dy"] if b is not None else ["x", "dy"], got[3], want[3]):
            _assert_close(g, w, tol, f"{dtype} second-order grad wrt {name}")
        # the kernel was used, at every order
        assert type(got[0].grad_fn).__name__ == "BiasActKernelBackward"
        assert type(got[1].grad_fn).__name__ == "BiasActKernelGradBackward"


@pytest.mark.parametrize("case", [c for c in CASES if c.layout != "contiguous" or c.shape[0] == 0],
                         ids=[c.name for c in CASES if c.layout != "contiguous" or c.shape[0] == 0])
def test_output_memory_format_follows_x(case, device):
    """channels_last stays channels_last, a dense permuted x keeps its strides, a non-dense x gives a dense y."""
    x, b = case.make(device, torch.float32)
    x.requires_grad_()
    y = case.call(x, b, kernel_impl(device))
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    for t, what in ((y, "y"), (dx, "dx")):
        if case.layout == "channels_last":
            assert t.is_contiguous(memory_format=torch.channels_last), f"{what} lost channels_last: {t.stride()}"
        elif case.layout == "transposed":
            assert t.stride() == x.stride(), f"{what} strides {t.stride()} != x strides {x.stride()}"
        else:
            assert t.is_contiguous() or t.numel() == 0, f"{what} is not dense: {t.stride()}"


def test_empty_batch_gives_empty_output_and_zero_bias_grad(device):
    x = torch.zeros(0, 3, 4, 4, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    y = ops.bias_act(x, b, act="lrelu", impl=kernel_impl(device))
    assert y.shape == (0, 3, 4, 4)
    dx, db = torch.autograd.grad(y, [x, b], torch.ones_like(y))
    assert dx.shape == x.shape and torch.equal(db, torch.zeros_like(b))


def test_scalar_and_bias_free_inputs_ignore_dim_like_nvlabs(device):
    x = torch.tensor(-1.5, device=device)
    got = ops.bias_act(x, act="lrelu", impl=kernel_impl(device))
    assert got.shape == () and torch.allclose(got, ops.bias_act_ref(x, act="lrelu"))
    v = torch.randn(7, device=device)
    torch.testing.assert_close(ops.bias_act(v, dim=1, act="tanh", impl=kernel_impl(device)), torch.tanh(v))


def test_spec_table_agrees_with_compiled_kernel():
    """kernel_index / grad_needs / has_2nd_grad in the Python table are what cuda/bias_act.h compiles."""
    module = build.get_extension("bias_act", "cpu").module
    assert module is not None, build.get_extension("bias_act", "cpu").error
    table = module.act_table()
    assert sorted(table) == sorted(spec.kernel_index for spec in ACTIVATIONS.values())
    for spec in ACTIVATIONS.values():
        assert table[spec.kernel_index] == (spec.grad_needs, spec.has_2nd_grad), spec.name


# ---------------------------------------------------------------------------------------------------------------
# gradcheck / gradgradcheck in float64: the CPU kernel AND the reference.

@pytest.mark.parametrize("impl", ["cpu", "ref"])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_gradcheck_and_gradgradcheck(act, impl):
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_()
    for clamp in (None, 0.8):
        fn = lambda x, b: ops.bias_act(x, b, act=act, clamp=clamp, impl=impl)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, b), eps=1e-6, atol=1e-5)
        assert torch.autograd.gradgradcheck(fn, (x, b), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# The kernel is really used.

def test_double_backward_never_calls_the_reference(monkeypatch):
    """A gradient penalty through impl='cpu' runs forward, backward and double backward in the kernel."""
    def forbidden(*args, **kwargs):
        raise AssertionError("bias_act_ref was called on the kernel path")

    monkeypatch.setattr(bias_act_module, "bias_act_ref", forbidden)
    for act in ("lrelu", "tanh", "swish"):
        x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
        b = torch.randn(4, dtype=torch.float64, requires_grad=True)
        y = ops.bias_act(x, b, act=act, clamp=1.0, impl="cpu")
        (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        penalty = dx.square().sum()
        penalty.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and b.grad is not None
        with pytest.raises(AssertionError, match="kernel path"):
            ops.bias_act(x, b, act=act, impl="ref")  # the patch is live: the checks above would have seen it


def test_explicit_kernel_raises_when_unavailable_and_auto_falls_back(monkeypatch):
    failed = build.BuildResult(None, "compiler exploded (test)", None)
    monkeypatch.setattr(build, "get_extension", lambda op, device_type: failed)
    monkeypatch.setattr(build, "_WARNED", set())
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(build.OpBuildError, match="compiler exploded"):
        ops.bias_act(x, act="lrelu", impl="cpu")
    with pytest.warns(RuntimeWarning, match="compiler exploded"):
        y = ops.bias_act(x, act="lrelu", impl="auto")
    torch.testing.assert_close(y, ops.bias_act_ref(x, act="lrelu"))


def test_auto_uses_the_kernel_on_cpu():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert type(ops.bias_act(x, act="lrelu").grad_fn).__name__ == "BiasActKernelBackward"


# ---------------------------------------------------------------------------------------------------------------
# Errors name the offending value.

@pytest.mark.parametrize("impl", ["cpu", "ref"])
def test_bad_inputs_raise_clear_errors(impl):
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"b must have shape \[3\].*got \[4\]"):
        ops.bias_act(x, torch.zeros(4), impl=impl)
    with pytest.raises(ValueError, match=r"b must have shape \[3\].*got \[3, 1\]"):
        ops.bias_act(x, torch.zeros(3, 1), impl=impl)
    with pytest.raises(ValueError, match="unknown act 'gelu'"):
        ops.bias_act(x, act="gelu", impl=impl)
    with pytest.raises(TypeError, match="torch.int32"):
        ops.bias_act(torch.ones(2, 3, dtype=torch.int32), impl=impl)
    with pytest.raises(ValueError, match="dim=4 is out of range"):
        ops.bias_act(x, torch.zeros(3), dim=4, impl=impl)
    with pytest.raises(ValueError, match="dim=-1 is out of range"):
        ops.bias_act(x, torch.zeros(3), dim=-1, impl=impl)
    with pytest.raises(TypeError, match="dim must be an int"):
        ops.bias_act(x, dim=1.0, impl=impl)
    with pytest.raises(ValueError, match="clamp must be None or >= 0, got -1"):
        ops.bias_act(x, clamp=-1, impl=impl)
    with pytest.raises(TypeError, match="b has dtype torch.float64"):
        ops.bias_act(x, torch.zeros(3, dtype=torch.float64), impl=impl)
    with pytest.raises(ValueError, match="b is on meta but x is on cpu"):
        ops.bias_act(x, torch.zeros(3, device="meta"), impl=impl)


def test_cpu_kernel_rejects_float16_naming_the_dtype():
    with pytest.raises(TypeError, match="torch.float16"):
        ops.bias_act(torch.randn(2, 3, 4, 4).half(), act="lrelu", impl="cpu")


# bfloat16 has 8 significant bits: a value computed in float32 and rounded once is within half a unit in the last
# place (2**-9 relative) of the exact result; 2**-8 allows for the float32 math before the rounding.
BF16_ULP = dict(rtol=2 ** -8, atol=1e-30)


@pytest.mark.parametrize("act", ["lrelu", "swish", "linear"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cpu_bfloat16_is_the_float64_result_rounded_once(act, layout):
    """The bfloat16 CPU kernel widens its loads to float32 and rounds each stored value once: forward, dx and the
    fused db (the sum of the stored dx) are within one bfloat16 ulp of float64 math on the same inputs.
    (Activations whose derivative is read from the stored y, like tanh's 1 - y^2, inherit y's rounding, so their
    dx is checked with the looser half-type tolerance of test_kernel_matches_reference.)"""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4, 24, 9, 7, generator=gen, dtype=torch.float64).bfloat16()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(24, generator=gen, dtype=torch.float64).bfloat16()
    dy = torch.randn(x.shape, generator=gen, dtype=torch.float64).bfloat16()
    xk, bk = x.clone().requires_grad_(), b.clone().requires_grad_()
    y = ops.bias_act(xk, bk, act=act, clamp=1.5, impl="cpu")
    dx, db = torch.autograd.grad(y, [xk, bk], dy)
    x64, b64 = x.double().requires_grad_(), b.double().requires_grad_()
    y64 = ops.bias_act_ref(x64, b64, act=act, clamp=1.5)
    dx64, _ = torch.autograd.grad(y64, [x64, b64], dy.double())
    assert y.dtype == dx.dtype == db.dtype == torch.bfloat16
    assert type(y.grad_fn).__name__ == "BiasActKernelBackward"
    torch.testing.assert_close(y.double(), y64.detach(), **BF16_ULP)
    # within an ulp of the clamp the stored y may round onto it (masked) or not: compare elsewhere
    inside = (y64.detach().abs() - 1.5).abs() > 2 * 2 ** -7 * 1.5
    torch.testing.assert_close(dx.double()[inside], dx64[inside], **BF16_ULP)
    # db sums the stored (rounded) dx in float; its own rounding is one more bfloat16 ulp
    torch.testing.assert_close(db.double(), dx.double().sum(dim=(0, 2, 3)), rtol=2 ** -8, atol=1e-6)


def test_cpu_bfloat16_large_outputs_take_the_streaming_path():
    """A bfloat16 output of >= 16 MiB is written with streaming stores (odd size: unaligned start, partial tile)."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 53, 281, 283, generator=gen).bfloat16()  # 16.9 MB of bfloat16
    b = torch.randn(53, generator=gen).bfloat16()
    got = ops.bias_act(x, b, act="lrelu", impl="cpu")
    want = ops.bias_act_ref(x.double(), b.double(), act="lrelu")
    torch.testing.assert_close(got.double(), want, **BF16_ULP)


def test_extension_validates_its_own_inputs():
    """The C++ entry point checks what Python normally guarantees (a direct caller gets a clear error)."""
    module = build.get_extension("bias_act", "cpu").module
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"b must have shape \[3\]"):
        module.bias_act(x, torch.zeros(5), None, None, None, 0, 1, 3, 0.2, 1.0, -1.0, False)
    with pytest.raises(ValueError, match="act code must be in"):
        module.bias_act(x, None, None, None, None, 0, 1, 42, 0.2, 1.0, -1.0, False)
    with pytest.raises(ValueError, match="needs the forward output y"):
        module.bias_act(x, None, None, None, None, 1, 1, 3, 0.2, 1.0, -1.0, False)
    with pytest.raises(ValueError, match="yref has shape"):
        module.bias_act(x, None, None, torch.randn(2, 3, 5), None, 1, 1, 3, 0.2, 1.0, -1.0, False)
    with pytest.raises(ValueError, match="has no second derivative"):
        module.bias_act(x, None, x, x, x, 2, 1, 3, 0.2, 1.0, -1.0, False)
    with pytest.raises(TypeError, match="Int"):
        module.bias_act(x.int(), None, None, None, None, 0, 1, 3, 0.2, 1.0, -1.0, False)


def test_cpu_output_pool_reuses_freed_blocks_and_honours_its_limit():
    """Large CPU outputs come from a pool of already-mapped blocks (no page faults on reuse), bounded by a limit."""
    module = build.get_extension("bias_act", "cpu").module
    limit = module.pool_stats()["limit_bytes"]
    if limit == 0:
        pytest.skip("the output pool is disabled (STYLEGAN_OPS_POOL_MB=0)")
    module.trim_pool()
    x = torch.randn(4, 64, 32, 32)  # 1 MiB: the smallest pooled size
    b = torch.randn(64)
    want = ops.bias_act_ref(x, b, act="lrelu")
    y = ops.bias_act(x, b, act="lrelu", impl="cpu")
    ptr = y.data_ptr()
    del y  # its block goes back to the pool ...
    assert module.pool_stats()["idle_bytes"] >= x.numel() * 4
    hits = module.pool_stats()["hits"]
    y = ops.bias_act(x, b, act="lrelu", impl="cpu")  # ... and is handed out again
    assert y.data_ptr() == ptr and module.pool_stats()["hits"] == hits + 1
    torch.testing.assert_close(y, want)
    y_cl = ops.bias_act(x.to(memory_format=torch.channels_last), b, act="lrelu", impl="cpu")
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_cl, want)
    try:
        module.set_pool_limit(0)  # nothing may stay idle: freed blocks go back to the system
        assert module.pool_stats()["idle_bytes"] == 0
        del y, y_cl
        assert module.pool_stats()["idle_bytes"] == 0
    finally:
        module.set_pool_limit(limit)


def _pooled_output():
    """(y, want): a bias_act output that the pool served from a reused block (asserted), and its expected value."""
    module = build.get_extension("bias_act", "cpu").module
    if module.pool_stats()["limit_bytes"] == 0:
        pytest.skip("the output pool is disabled (STYLEGAN_OPS_POOL_MB=0)")
    module.trim_pool()  # a full pool would refuse the block below
    x = torch.randn(4, 64, 32, 32)  # 1 MiB: the smallest pooled size
    b = torch.randn(64)
    first = ops.bias_act(x, b, act="lrelu", impl="cpu")
    del first  # its block is now idle in the pool
    hits = module.pool_stats()["hits"]
    y = ops.bias_act(x, b, act="lrelu", impl="cpu")
    assert module.pool_stats()["hits"] == hits + 1, "the output did not come from the pool"
    return y, ops.bias_act_ref(x, b, act="lrelu")


def _save_load(y):
    buf = io.BytesIO()
    torch.save(y, buf)
    buf.seek(0)
    return torch.load(buf)


def _grow_by_resize(y):
    y.resize_(8, 64, 32, 32)  # twice the storage: a new allocation, the pooled block goes back
    return y[:4]


def _grow_storage(y):
    y.untyped_storage().resize_(2 * y.untyped_storage().nbytes())
    return y


# (name, what is done to a pooled output y, returning a tensor; that tensor's expected value from y's)
POOLED_USES = [
    ("resize_ larger", _grow_by_resize, lambda want: want),
    ("storage resize_", _grow_storage, lambda want: want),
    ("out= of another size", lambda y: torch.add(torch.ones(8, 64, 32, 32), 1, out=y)[4:],
     lambda want: torch.full((4, 64, 32, 32), 2.0)),
    ("in-place ops", lambda y: y.add_(1).mul_(2).relu_(), lambda want: ((want + 1) * 2).relu()),
    ("torch.save + torch.load", _save_load, lambda want: want),
    ("pickle", lambda y: pickle.loads(pickle.dumps(y)), lambda want: want),
    ("copy.deepcopy", copy.deepcopy, lambda want: want),
    (".numpy()", lambda y: torch.from_numpy(y.numpy().copy()), lambda want: want),
]


@pytest.mark.filterwarnings("ignore:An output with one or more elements was resized")  # torch's, for out=
@pytest.mark.parametrize("use", POOLED_USES, ids=[u[0] for u in POOLED_USES])
def test_pooled_outputs_behave_like_ordinary_tensors(use):
    """A pooled output is what a caller gets from every large CPU bias_act: it must allow whatever a tensor from
    torch.empty allows (a from_blob storage, for one, cannot be resized, and resize_/out= on it raise)."""
    _, apply, expected = use
    y, want = _pooled_output()
    torch.testing.assert_close(apply(y), expected(want))


def test_resizing_a_pooled_output_returns_its_block_to_the_pool():
    """A resize moves the data to a new allocation; the pooled block must not leak (nor be freed twice)."""
    module = build.get_extension("bias_act", "cpu").module
    y, want = _pooled_output()
    idle = module.pool_stats()["idle_bytes"]
    y.resize_(8, 64, 32, 32)
    assert module.pool_stats()["idle_bytes"] == idle + want.numel() * 4
    torch.testing.assert_close(y[:4], want)
    del y
    assert module.pool_stats()["idle_bytes"] == idle + want.numel() * 4  # the new storage is torch's, not ours


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "no-bias"])
def test_large_outputs_use_streaming_stores_and_match_reference(layout):
    """Outputs >= 16 MiB take the streaming-store path (odd sizes: unaligned block starts, partial tiles)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 37, 193, 197, generator=gen)  # 16.9 MB of float32
    b = torch.randn(37, generator=gen) if layout != "no-bias" else None
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    dy = torch.randn(x.shape, generator=gen)
    got_x, want_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    got_b = b.clone().requires_grad_() if b is not None else None
    want_b = b.clone().requires_grad_() if b is not None else None
    got = ops.bias_act(got_x, got_b, act="lrelu", clamp=2.0, impl="cpu")
    want = ops.bias_act_ref(want_x, want_b, act="lrelu", clamp=2.0)
    torch.testing.assert_close(got, want)
    inputs_got = [got_x] + ([got_b] if b is not None else [])
    inputs_want = [want_x] + ([want_b] if b is not None else [])
    for g, w in zip(torch.autograd.grad(got, inputs_got, dy), torch.autograd.grad(want, inputs_want, dy)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-3 if g.ndim == 1 else 1e-5)  # db: sums of 150k values


@pytest.mark.parametrize("act,dy_needs_grad,expected", [
    ("lrelu", False, {0: 1, 1: 1}),  # R1-like penalty: forward, one gradient pass, nothing more for lrelu
    ("lrelu", True, {0: 1, 1: 2}),  # + the gradient of dy (mode 1 again)
    ("tanh", True, {0: 1, 1: 2, 2: 1}),  # + the x-dependent second-order term
])
def test_double_backward_runs_only_the_needed_kernel_passes(monkeypatch, act, dy_needs_grad, expected):
    calls = {}
    real_run = bias_act_module._run

    def counting_run(module, cfg, mode, *args, **kwargs):
        calls[mode] = calls.get(mode, 0) + 1
        return real_run(module, cfg, mode, *args, **kwargs)

    monkeypatch.setattr(bias_act_module, "_run", counting_run)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    dy = torch.randn(2, 4, 5, 5, requires_grad=dy_needs_grad)
    y = ops.bias_act(x, b, act=act, impl="cpu")
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    dx.square().sum().backward()
    assert calls == expected
