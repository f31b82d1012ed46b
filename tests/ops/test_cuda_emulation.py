"""The CUDA kernels (cuda/*.cu, unchanged) run on the CPU by the emulator in tests/ops/emulation, against the reference.

Every CUDA case of test_bias_act.py and test_upfirdn2d.py (their own `sample_inputs()`) runs through the emulated
kernels in float32, float64, float16 and bfloat16, forward and every backward mode, driven by the ops' real autograd
Functions (impl='cuda' is routed to the emulator). A second pass caps every launch at a few blocks and runs each
block's threads in reverse order, so grid-stride loops wrap and barriers are exercised both ways. The emulator
itself is tested too: its barrier catches a missing __syncthreads, its launch checks refuse what a GPU refuses,
its half/bfloat16 conversions round like torch's. See docs/GPU.md.
"""
from __future__ import annotations

import importlib
import shutil
from typing import List

import pytest
import torch

import cuda_emulator
from stylegan.ops import build
from test_bias_act import CASES as BIAS_ACT_CASES
from test_bias_act import TOL as BIAS_ACT_TOL
from test_bias_act import _assert_close, _run_all_orders
from test_upfirdn2d import TOL as UPFIRDN_TOL
from test_upfirdn2d import Sample, _collect, _grads, sample_inputs

bias_act_module = importlib.import_module("stylegan.ops.bias_act")
U = importlib.import_module("stylegan.ops.upfirdn2d")

pytestmark = [pytest.mark.cuda_emulation, pytest.mark.usefixtures("no_forced_reference")]

ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = [str(d).replace("torch.", "") for d in ALL_DTYPES]


@pytest.fixture(scope="module")
def emu():
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler on PATH: the CUDA emulator cannot be built")
    return cuda_emulator.load()


@pytest.fixture
def emulated_cuda(emu, monkeypatch):
    """impl='cuda' on CPU tensors runs the emulated CUDA kernels (all four dtypes), through the ops' Functions."""
    real_resolve = build.resolve_impl

    def resolve(op, impl, device, dtype=None):
        if impl == "cuda" and device.type == "cpu":
            return "cuda", emu
        return real_resolve(op, impl, device, dtype)

    monkeypatch.setattr(build, "resolve_impl", resolve)
    monkeypatch.setitem(bias_act_module._KERNEL_DTYPES, "cpu", tuple(ALL_DTYPES))
    emu.set_max_blocks(0)
    emu.set_reverse_order(False)
    emu.set_index32_limit(2 ** 31)
    emu.set_tiled_min_outputs(256)
    emu.clear_launch_log()
    yield emu
    emu.set_max_blocks(0)
    emu.set_reverse_order(False)
    emu.set_tiled_min_outputs(256)


@pytest.fixture(params=["full-grid", "few-blocks-reversed", "64-bit-index"])
def schedule(request, emulated_cuda):
    """The launch as the code makes it; one capped at 3 blocks with each block's threads run last to first, and
    upfirdn2d's tiled kernel taken for every call it can serve (the samples' planes are mostly too small to fill a
    block, so the code's own choice gives them to the generic kernel); and one with the 64-bit index path forced
    (real tensors only take it from 2^31 elements on)."""
    if request.param == "few-blocks-reversed":
        emulated_cuda.set_max_blocks(3)
        emulated_cuda.set_reverse_order(True)
        emulated_cuda.set_tiled_min_outputs(0)
    if request.param == "64-bit-index":
        emulated_cuda.set_index32_limit(0)
    yield request.param
    emulated_cuda.set_index32_limit(2 ** 31)


def _skip_redundant(schedule: str, dtype: torch.dtype) -> None:
    """The capped and 64-bit schedules check indexing, which does not depend on the dtype: fewer dtypes suffice."""
    if schedule == "few-blocks-reversed" and dtype in (torch.float64, torch.bfloat16):
        pytest.skip("the capped schedule checks indexing: float32 and float16 suffice")
    if schedule == "64-bit-index" and dtype != torch.float32:
        pytest.skip("the 64-bit index schedule checks indexing: float32 suffices")


def _assert_launches_were_valid(emu, must_include: List[str]):
    log = emu.launch_log()
    bad = [rec for rec in log if rec[5]]
    assert not bad, f"emulated launches failed: {bad[:3]}"
    names = " ".join(rec[0] for rec in log)
    for kernel in must_include:
        assert kernel in names, f"no launch of {kernel} (launched: {sorted({rec[0] for rec in log})})"
    for name, grid, block, _, smem, _ in log:
        assert block[0] * block[1] * block[2] <= 1024 and smem <= 48 * 1024 and grid[1] <= 65535, name


def _assert_index_path(emu, kernel: str, schedule: str) -> None:
    """Every launch of `kernel` took the 32-bit index path, or the 64-bit one under the 64-bit schedule."""
    launched = {rec[0] for rec in emu.launch_log() if kernel in rec[0]}
    want, other = ("long long", "uint32_t") if schedule == "64-bit-index" else ("uint32_t", "long long")
    if kernel == "generic_kernel" and schedule == "64-bit-index":
        want, other = "int64_t", "uint32_t"
    assert launched and all(want in name and other not in name for name in launched), launched


# ---------------------------------------------------------------------------------------------------- bias_act
def _away_from_clamp(case, x: torch.Tensor, b):
    """x with the elements whose output lies within 16-bit rounding of +-clamp moved (by steps of 0.25) off it.

    There the gradient mask (|y| < clamp) legitimately differs between a float16/bfloat16 y, which rounds onto the
    clamp, and the float64 reference's y: a precision effect of saving y in the input dtype, not a kernel error.
    """
    clamp = case.kwargs.get("clamp")
    if clamp is None or x.dtype in (torch.float32, torch.float64) or x.numel() == 0:
        return x
    unclamped = {k: v for k, v in case.kwargs.items() if k != "clamp"}
    for _ in range(20):
        y = bias_act_module.bias_act_ref(x.double(), b.double() if b is not None else None, dim=case.dim,
                                         act=case.act, **unclamped)
        near = (y.abs() - clamp).abs() <= 4 * torch.finfo(x.dtype).eps * clamp
        if not near.any():
            return x
        x = torch.where(near, x + 0.25, x)
    raise AssertionError(f"{case.name}: could not move the inputs off the clamp")


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=DTYPE_IDS)
def test_bias_act_emulated_kernel_matches_reference(emulated_cuda, schedule, dtype):
    """Every bias_act case: forward (mode 0), grad (mode 1) and the double backward (modes 1 and 2)."""
    _skip_redundant(schedule, dtype)
    failures = []
    for case in BIAS_ACT_CASES:
        x, b = case.make(torch.device("cpu"), dtype)
        x = _away_from_clamp(case, x, b)
        gen = torch.Generator().manual_seed(1)
        dy = torch.randn(case.shape, generator=gen, dtype=torch.float64).to(dtype)
        w_dx = torch.randn(case.shape, generator=gen, dtype=torch.float64).to(dtype)
        w_db = torch.randn(case.shape[case.dim], generator=gen, dtype=torch.float64).to(dtype)
        ref_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float64
        cast = lambda t: t.to(ref_dtype) if t is not None else None  # noqa: E731
        got = _run_all_orders(case, x, b, "cuda", dy, w_dx, w_db)
        want = _run_all_orders(case, cast(x), cast(b), "ref", cast(dy), cast(w_dx), cast(w_db))
        tol = BIAS_ACT_TOL[dtype]
        try:
            _assert_close(got[0], want[0], tol, f"{case.name} forward")
            _assert_close(got[1], want[1], tol, f"{case.name} dx")
            _assert_close(got[2], want[2], tol, f"{case.name} db")
            for name, g, w in zip(["x", "b", "dy"] if b is not None else ["x", "dy"], got[3], want[3]):
                _assert_close(g, w, tol, f"{case.name} second-order grad wrt {name}")
            assert type(got[0].grad_fn).__name__ == "BiasActKernelBackward", f"{case.name}: not the kernel path"
            assert got[0].dtype == dtype, f"{case.name}: output dtype {got[0].dtype}"
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, f"{len(failures)} emulated bias_act failures:\n" + "\n".join(failures[:20])
    _assert_launches_were_valid(emulated_cuda, ["bias_act_kernel"])
    _assert_index_path(emulated_cuda, "bias_act_kernel", schedule)


def test_bias_act_emulated_output_layout_follows_x(emulated_cuda):
    cases = [c for c in BIAS_ACT_CASES if c.layout in ("channels_last", "transposed") and c.shape[0]]
    assert cases
    for case in cases:
        x, b = case.make(torch.device("cpu"), torch.float16)
        y = case.call(x, b, "cuda")
        assert y.stride() == x.stride(), f"{case.name}: y strides {y.stride()} != x strides {x.stride()}"


# ---------------------------------------------------------------------------------------------------- upfirdn2d
def _as_reference(s: Sample, dtype: torch.dtype) -> Sample:
    """The sample in float64 for half types (the reference is computed from the same rounded values)."""
    if dtype in (torch.float32, torch.float64):
        return s
    return Sample(s.name, s.x.double(), s.f, s.kwargs)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=DTYPE_IDS)
def test_upfirdn2d_emulated_kernel_matches_reference(emulated_cuda, schedule, dtype):
    """Every upfirdn2d sample: forward, gradient (up/down swapped) and grad-of-grad, through both CUDA kernels."""
    _skip_redundant(schedule, dtype)
    failures: List[str] = []
    tol = UPFIRDN_TOL[dtype]
    for i, s in enumerate(sample_inputs("cpu", dtype)):
        ref = _as_reference(s, dtype)
        y = U.upfirdn2d(s.x, s.f, **s.kwargs, impl="cuda")
        if y.dtype != dtype:
            failures.append(f"{s.name}: output dtype {y.dtype}")
        _collect(failures, s.name, y, U.upfirdn2d_ref(ref.x, ref.f, **ref.kwargs), tol)
        if s.x.is_contiguous(memory_format=torch.channels_last) and not s.x.is_contiguous():
            if not y.is_contiguous(memory_format=torch.channels_last):
                failures.append(f"{s.name}: channels_last input lost its format")
        if s.x.numel() == 0:
            continue
        dx, ddy = _grads(s, "cuda", seed=i)
        dx_ref, ddy_ref = _grads(ref, "ref", seed=i)
        _collect(failures, f"{s.name} grad", dx, dx_ref, tol)
        _collect(failures, f"{s.name} grad-of-grad", ddy, ddy_ref, tol)
    assert not failures, f"{len(failures)} emulated upfirdn2d failures:\n" + "\n".join(failures[:20])
    _assert_launches_were_valid(emulated_cuda, ["tiled_kernel", "XFastest", "ChannelsFastest"])
    _assert_index_path(emulated_cuda, "generic_kernel", schedule)


def _kernel_for(emu, x: torch.Tensor, **kwargs) -> str:
    emu.clear_launch_log()
    U.upfirdn2d(x, torch.ones(4, 4) / 16, impl="cuda", **kwargs)
    (record,) = emu.launch_log()
    return record[0]


@pytest.mark.parametrize("kwargs, tile", [(dict(up=2, padding=(2, 1)), 32), (dict(down=2, padding=1), 16),
                                          (dict(padding=(2, 1, 2, 1)), 32)], ids=["up2", "down2", "blur"])
def test_upfirdn2d_kernel_choice(emulated_cuda, kwargs, tile):
    """Tiled when a tile fills the block (>= 256 outputs), generic on smaller planes, generic with the channel
    fastest (coalesced) whenever the channel stride is 1 in and out."""
    in_side = {32: 16, 16: 32}[tile] if "up" in kwargs or "down" in kwargs else 16
    big = torch.randn(1, 3, in_side, in_side)
    small = torch.randn(1, 3, in_side // 4, in_side // 4)
    assert "tiled_kernel" in _kernel_for(emulated_cuda, big, **kwargs)
    assert "XFastest" in _kernel_for(emulated_cuda, small, **kwargs)
    assert "ChannelsFastest" in _kernel_for(emulated_cuda, big.to(memory_format=torch.channels_last), **kwargs)
    one_channel = torch.randn(1, 1, in_side, in_side).to(memory_format=torch.channels_last)
    assert "tiled_kernel" in _kernel_for(emulated_cuda, one_channel, **kwargs)  # C == 1: NCHW and NHWC coincide


def test_upfirdn2d_emulated_resampling_filters(emulated_cuda):
    """StyleGAN's own calls (setup_filter filters through up/down/filter2d) at a size with several tiles."""
    from stylegan.ops import downsample2d, filter2d, setup_filter, upsample2d

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 40, 36, generator=gen)
    for taps in ([1, 3, 3, 1], [1, 2, 1], [1, 2, 3, 4, 4, 3, 2, 1]):
        f = setup_filter(taps)
        for fn, kw in ((upsample2d, {}), (downsample2d, {}), (filter2d, {})):
            torch.testing.assert_close(fn(x, f, impl="cuda", **kw), fn(x, f, impl="ref", **kw), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- errors
def test_a_pending_error_is_reported_as_earlier_and_not_blamed_on_the_launch(emulated_cuda):
    x = torch.randn(2, 3, 4, 4)
    emulated_cuda.inject_pending_error()
    with pytest.raises(RuntimeError, match="already pending before launching bias_act_kernel.*not by this one"):
        emulated_cuda.bias_act(x, None, None, None, None, 0, 0, 3, 0.2, 1.0, -1.0, False)
    out, _ = emulated_cuda.bias_act(x, None, None, None, None, 0, 0, 3, 0.2, 1.0, -1.0, False)  # reported once
    torch.testing.assert_close(out, torch.nn.functional.leaky_relu(x, 0.2))
    emulated_cuda.inject_pending_error()
    with pytest.raises(RuntimeError, match="already pending before launching upfirdn2d generic_kernel"):
        emulated_cuda.upfirdn2d(x, torch.ones(3, 3), 1, 1, 1, 1, 1, 1, 1, 1, False, 1.0)


# ---------------------------------------------------------------------------------------------------- the emulator
def test_emulator_barrier_is_real(emulated_cuda):
    """A shared-memory reduction is right with its barriers (threads run first to last or last to first) and wrong
    without the first one: thread 0 then adds partial sums that threads 1.. have not stored yet."""
    x = torch.arange(4 * 256, dtype=torch.float32)
    want = x.reshape(4, 256).sum(1)
    for reverse in (False, True):
        emulated_cuda.set_reverse_order(reverse)
        torch.testing.assert_close(emulated_cuda.selftest_block_sum(x, 256, True), want)
    emulated_cuda.set_reverse_order(False)
    assert not torch.equal(emulated_cuda.selftest_block_sum(x, 256, False), want)


@pytest.mark.parametrize("which, match", [(0, "different __syncthreads"), (1, "never reach")],
                         ids=["divergent", "early-return"])
def test_emulator_reports_barriers_part_of_a_block_misses(emulated_cuda, which, match):
    err = emulated_cuda.selftest_launch(which, [1, 1, 1], [64, 1, 1], 0)
    assert err is not None and "unspecified launch failure" in err and match in err, err


@pytest.mark.parametrize("grid, block, smem, match", [
    ([1, 1, 1], [1025, 1, 1], 0, "1025 threads"),
    ([1, 1, 1], [32, 32, 2], 0, "2048 threads"),
    ([1, 1, 1], [1, 1, 65], 0, "per-dimension limits"),
    ([1, 65536, 1], [32, 1, 1], 0, "grid 1x65536x1"),
    ([1, 1, 1], [32, 1, 1], 48 * 1024 + 1, "49153 B of dynamic shared memory"),
    ([0, 1, 1], [32, 1, 1], 0, "zero grid or block dimension"),
], ids=["threads", "threads-3d", "block-z", "grid-y", "smem", "empty-grid"])
def test_emulator_refuses_launches_a_gpu_refuses(emulated_cuda, grid, block, smem, match):
    err = emulated_cuda.selftest_launch(2, grid, block, smem)
    assert err is not None and "invalid configuration argument" in err and match in err, err


def test_emulator_accepts_the_largest_valid_launches(emulated_cuda):
    assert emulated_cuda.selftest_launch(2, [2, 1, 1], [1024, 1, 1], 48 * 1024) is None
    assert emulated_cuda.selftest_launch(2, [1, 3, 2], [8, 4, 2], 0) is None


def test_emulator_half_and_bfloat16_conversions_match_torch(emu):
    """All 65536 bit patterns decode like torch; float -> 16 bit rounds to nearest even like torch's casts."""
    bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    for bf16, dtype in ((False, torch.float16), (True, torch.bfloat16)):
        got = emu.from_16bit_bits(bits, bf16)
        want = bits.view(dtype).float()
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got[~want.isnan()], want[~want.isnan()])
    gen = torch.Generator().manual_seed(0)
    samples = [torch.randn(200000, generator=gen) * s for s in (1e-8, 1e-6, 1e-4, 1.0, 1e3, 6e4, 1e6)]
    # exact ties between neighbouring 16-bit values (both parities), bounds of the subnormal and overflow ranges
    ties_h = (torch.arange(0, 30000, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
              + torch.arange(1, 30001, dtype=torch.int32).to(torch.int16).view(torch.float16).float()) / 2
    ties_b = (torch.arange(0, 30000, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).float()
              + torch.arange(1, 30001, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).float()) / 2
    edges = torch.tensor([0.0, -0.0, 65504.0, 65519.0, 65520.0, 70000.0, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
                          2.0 ** -14, float("inf"), float("-inf"), 3.4e38, 1e-45])
    values = torch.cat(samples + [ties_h, -ties_h, ties_b, edges])
    for bf16, dtype in ((False, torch.float16), (True, torch.bfloat16)):
        got = emu.to_16bit_bits(values, bf16)
        want = values.to(dtype).view(torch.int16)
        mismatch = (got != want).nonzero().flatten()
        assert mismatch.numel() == 0, f"{dtype}: {values[mismatch[:5]].tolist()} -> {got[mismatch[:5]].tolist()} " \
                                      f"vs torch {want[mismatch[:5]].tolist()}"
    nan = emu.to_16bit_bits(torch.tensor([float("nan")]), False).view(torch.float16)
    assert nan.isnan().all() and emu.to_16bit_bits(torch.tensor([float("nan")]), True).view(torch.bfloat16).isnan().all()
