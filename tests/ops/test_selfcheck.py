"""The first-use self-check (ops/selfcheck.py, build.resolve_impl): a wrong kernel is caught before it is trusted.

No GPU needed: the CPU kernels are put under the self-check (SELF_CHECK_DEVICE_TYPES) and a deliberately wrong
kernel module is injected in place of the real one.
"""
from __future__ import annotations

import types
import warnings

import pytest
import torch

from stylegan import ops
from stylegan.ops import build, selfcheck

pytestmark = pytest.mark.usefixtures("no_forced_reference")


def _real(op: str):
    result = build.get_extension(op, "cpu")
    if result.module is None:
        pytest.skip(f"the CPU kernel for {op} is unavailable: {result.error}")
    return result.module


def _wrong_bias_act(real):
    """The real kernel, except that its forward output is off by 1% (the kind of error a bad index gives)."""
    def bias_act(x, b, xref, yref, dy, mode, *rest):
        out, db = real.bias_act(x, b, xref, yref, dy, mode, *rest)
        return (out * 1.01 if mode == 0 else out), db

    return types.SimpleNamespace(__name__="wrong_bias_act", bias_act=bias_act)


def _wrong_upfirdn2d(real):
    """The real kernel, except that the output is shifted by one pixel along x."""
    def upfirdn2d(*args):
        return torch.roll(real.upfirdn2d(*args), 1, dims=3)

    return types.SimpleNamespace(__name__="wrong_upfirdn2d", upfirdn2d=upfirdn2d)


@pytest.fixture
def checked_cpu(monkeypatch):
    """CPU kernels go through the first-use self-check; the build and verdict caches start empty."""
    monkeypatch.setattr(build, "SELF_CHECK_DEVICE_TYPES", ("cpu", "cuda"))
    build.clear_cache()
    yield
    build.clear_cache()


def _inject(monkeypatch, op: str, module):
    real_get = build.get_extension
    monkeypatch.setattr(build, "get_extension",
                        lambda name, device_type: build.BuildResult(module, None, None) if name == op
                        else real_get(name, device_type))


def _calls():
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    return {
        "bias_act": (lambda impl: ops.bias_act(x, b, act="lrelu", impl=impl),
                     lambda: ops.bias_act_ref(x, b, act="lrelu")),
        "upfirdn2d": (lambda impl: ops.upsample2d(x, f, impl=impl), lambda: ops.upsample2d(x, f, impl="ref")),
    }


@pytest.mark.parametrize("op", ["bias_act", "upfirdn2d"])
def test_the_real_kernels_pass_both_checks(op):
    module = _real(op)
    for dtype in (torch.float32, torch.float64):
        for full in (False, True):
            result = selfcheck.check(op, module, torch.device("cpu"), dtype, full=full)
            assert result.ok, result.describe()
            assert result.cases >= (2 if not full else 20) and result.worst <= selfcheck.TOLERANCE[dtype]


@pytest.mark.parametrize("op, make_wrong", [("bias_act", _wrong_bias_act), ("upfirdn2d", _wrong_upfirdn2d)])
def test_a_wrong_kernel_fails_the_check_naming_case_and_error(op, make_wrong):
    result = selfcheck.check(op, make_wrong(_real(op)), torch.device("cpu"), torch.float32)
    assert not result.ok and "case" in result.problem and "forward" in result.problem, result.describe()
    assert "tolerance 0.0001" in result.problem


def test_a_kernel_that_raises_fails_the_check():
    broken = types.SimpleNamespace(__name__="broken", bias_act=lambda *a: (_ for _ in ()).throw(
        RuntimeError("launching bias_act_kernel failed: invalid configuration argument")))
    result = selfcheck.check("bias_act", broken, torch.device("cpu"), torch.float32)
    assert not result.ok and "RuntimeError" in result.problem and "invalid configuration" in result.problem


@pytest.mark.parametrize("op, make_wrong", [("bias_act", _wrong_bias_act), ("upfirdn2d", _wrong_upfirdn2d)])
def test_auto_warns_once_and_uses_the_reference_explicit_impl_raises(checked_cpu, monkeypatch, op, make_wrong):
    _inject(monkeypatch, op, make_wrong(_real(op)))
    call, ref = _calls()[op]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = call("auto")
        second = call("auto")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert f"stylegan.ops.{op}" in messages[0] and "cpu" in messages[0] and "torch.float64" in messages[0]
    assert "self-check" in messages[0] and "max relative error" in messages[0]
    torch.testing.assert_close(first, ref())  # the reference answered, not the wrong kernel
    torch.testing.assert_close(second, ref())
    with pytest.raises(build.KernelSelfCheckError, match=rf"{op}.*failed its self-check.*torch.float64"):
        call("cpu")


def test_the_verdict_is_per_dtype_and_cached_per_process(checked_cpu, monkeypatch):
    calls = []
    real_check = selfcheck.check

    def counting(op, module, device, dtype, full=False):
        calls.append((op, dtype))
        return real_check(op, module, device, dtype, full)

    monkeypatch.setattr(selfcheck, "check", counting)
    _real("bias_act")
    for dtype in (torch.float32, torch.float32, torch.float64, torch.float64):
        x = torch.randn(2, 3, 4, 4, dtype=dtype, requires_grad=True)
        y = ops.bias_act(x, act="lrelu")
        assert type(y.grad_fn).__name__ == "BiasActKernelBackward"  # a passing kernel is used
    assert calls == [("bias_act", torch.float32), ("bias_act", torch.float64)]
    build.clear_cache()  # a new process starts without verdicts
    ops.bias_act(torch.randn(3), act="lrelu")
    assert calls[-1] == ("bias_act", torch.float32) and len(calls) == 3


def test_cpu_kernels_are_not_self_checked_by_default():
    assert build.SELF_CHECK_DEVICE_TYPES == ("cuda",)


def test_unknown_op_is_a_clear_error():
    with pytest.raises(ValueError, match="no self-check for op 'conv9d'"):
        selfcheck.check("conv9d", None, torch.device("cpu"), torch.float32)
