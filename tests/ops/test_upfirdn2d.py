"""upfirdn2d kernels (CPU, CUDA when present) against the pure-torch reference, to every derivative order.

Every kernel test draws from the same `sample_inputs(device, dtype)`; CUDA tests skip with a visible reason on
machines without a GPU. Filters are random (not symmetric) so a flipped or transposed filter cannot pass.
"""
from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import pytest
import torch

from stylegan.ops import build, downsample2d, filter2d, setup_filter, upsample2d

U = importlib.import_module("stylegan.ops.upfirdn2d")

CUDA = torch.cuda.is_available()
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        not CUDA, reason="CUDA kernel test skipped: torch.cuda.is_available() is False (no GPU or CPU-only torch)")]),
]
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5),
       torch.float16: dict(rtol=1e-2, atol=1e-2), torch.bfloat16: dict(rtol=5e-2, atol=5e-2)}


pytestmark = pytest.mark.usefixtures("single_thread")  # the multi-threaded kernel is tested explicitly


def _on_two_threads(fn):
    """fn() with torch's pool at 2 threads (the module runs single-threaded)."""
    torch.set_num_threads(2)
    try:
        return fn()
    finally:
        torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Spec:
    """One upfirdn2d call, as data (tensors are made per device/dtype by sample_inputs)."""

    name: str
    shape: Tuple[int, int, int, int] = (2, 3, 9, 11)
    filt: Optional[Tuple[int, ...]] = (4,)  # (taps,) separable, (h, w) 2-D, None identity
    up: object = 1
    down: object = 1
    padding: object = 0
    flip_filter: bool = False
    gain: float = 1.0
    layout: str = "contiguous"  # 'contiguous' | 'channels_last' | 'strided' | 'transposed'
    rank1: bool = False  # 2-D filter made as an outer product (the CPU kernel runs it as two 1-D passes)

    def kwargs(self) -> Dict[str, object]:
        return dict(up=self.up, down=self.down, padding=self.padding, flip_filter=self.flip_filter, gain=self.gain)


@dataclass
class Sample:
    name: str
    x: torch.Tensor
    f: Optional[torch.Tensor]
    kwargs: Dict[str, object] = field(default_factory=dict)


def _valid(spec: Spec) -> bool:
    """Whether the spec's output is non-empty (the grid below only keeps calls upfirdn2d accepts)."""
    upx, upy = U.parse_scaling(spec.up, "up")
    downx, downy = U.parse_scaling(spec.down, "down")
    px0, px1, py0, py1 = U.parse_padding(spec.padding)
    fh, fw = (1, 1) if spec.filt is None else (spec.filt * 2 if len(spec.filt) == 1 else spec.filt)
    _, _, h, w = spec.shape
    return (w * upx + px0 + px1 - fw) // downx + 1 >= 1 and (h * upy + py0 + py1 - fh) // downy + 1 >= 1


def _specs() -> List[Spec]:
    specs: List[Spec] = []
    # Every up x down pair with a separable, a square 2-D and a non-square 2-D filter, padded and cropped.
    for up, down in itertools.product((1, 2, 4), (1, 2, 4)):
        specs.append(Spec(f"u{up}d{down}-sep4", filt=(4,), up=up, down=down, padding=(2, 1, 1, 2)))
        specs.append(Spec(f"u{up}d{down}-2d3x3-crop", filt=(3, 3), up=up, down=down, padding=(-1, 2, 1, -2)))
        specs.append(Spec(f"u{up}d{down}-2d2x5", filt=(2, 5), up=up, down=down, padding=(3, 0, 0, 3)))
    # Filter sizes 1..8, separable and 2-D (also non-square), through up and down.
    for taps in range(1, 9):
        specs.append(Spec(f"sep{taps}-up2", filt=(taps,), up=2, padding=(taps // 2, (taps - 1) // 2)))
        specs.append(Spec(f"2d{taps}x{taps}-down2", filt=(taps, taps), down=2, padding=taps // 2))
        specs.append(Spec(f"2d{taps}x{9 - taps}-filter", filt=(taps, 9 - taps), padding=4))
    specs += [
        Spec("identity-f-none", filt=None),
        Spec("identity-f-none-up2-down2-pad", filt=None, up=2, down=2, padding=(1, -1, 0, 2)),
        Spec("flip-2d", filt=(3, 4), up=2, padding=(2, 1, 3, 0), flip_filter=True),
        Spec("flip-sep", filt=(5,), down=2, padding=2, flip_filter=True),
        Spec("gain-2d", filt=(4, 4), up=2, padding=(2, 1), gain=4.0),
        Spec("gain-sep", filt=(3,), padding=1, gain=0.5),
        Spec("aniso-up2x1", filt=(4,), up=(2, 1), padding=(2, 1, 1, 1)),
        Spec("aniso-down1x2", filt=(3, 2), down=(1, 2), padding=(1, 0, 1, 1)),
        Spec("aniso-up1x4-down2x1", filt=(5, 3), up=(1, 4), down=(2, 1), padding=(1, 1, 2, 3)),
        Spec("aniso-up4x2-down2x4-sep", filt=(6,), up=(4, 2), down=(2, 4), padding=(3, 2, 1, 0)),
        Spec("pad-big", filt=(3, 3), padding=(5, 4, 6, 3)),
        Spec("crop-only", filt=(2,), padding=(-3, -2, -1, -4)),
        Spec("crop-more-than-filter", filt=(2, 2), up=2, down=2, padding=(-5, 1, 2, -6)),
        Spec("size-1x1-up2", shape=(2, 3, 1, 1), filt=(4, 4), up=2, padding=(2, 1)),
        Spec("size-1x1-pad", shape=(1, 2, 1, 1), filt=(3,), padding=2),
        Spec("size-3x7-up4", shape=(1, 2, 3, 7), filt=(8,), up=4, padding=(4, 3)),
        Spec("size-3x7-down4", shape=(2, 2, 3, 7), filt=(2, 3), down=4, padding=(1, 1, 2, 2)),
        Spec("size-33x65-up2", shape=(1, 2, 33, 65), filt=(4, 4), up=2, padding=(2, 1)),
        Spec("size-33x65-down2", shape=(1, 2, 33, 65), filt=(2,), down=2),
        Spec("size-33x65-blur", shape=(1, 3, 33, 65), filt=(3, 3), padding=1),
        Spec("channels-last-up2", filt=(4, 4), up=2, padding=(2, 1), layout="channels_last"),
        Spec("channels-last-down2-sep", filt=(4,), down=2, padding=1, layout="channels_last"),
        Spec("strided-2d", filt=(3, 3), padding=1, layout="strided"),
        Spec("strided-up2-sep", filt=(4,), up=2, padding=(2, 1), layout="strided"),
        Spec("transposed-down2", filt=(2, 2), down=2, layout="transposed"),
        Spec("rank1-up2-4x4", filt=(4, 4), up=2, padding=(2, 1), rank1=True),
        Spec("rank1-down2-3x5-crop", filt=(3, 5), down=2, padding=(2, -1, 1, 0), rank1=True),
        Spec("rank1-aniso-2x6-flip-gain", filt=(2, 6), up=(1, 2), down=(2, 1), padding=(3, 2, 0, 1), rank1=True,
             flip_filter=True, gain=3.0),
        Spec("rank1-channels-last-blur", filt=(3, 3), padding=1, rank1=True, layout="channels_last"),
        Spec("empty-batch", shape=(0, 3, 9, 11), filt=(4, 4), up=2, padding=(2, 1)),
        # Channels-last with >= 8 channels: the CPU kernel's NHWC path (no transposes).
        Spec("nhwc-blur", shape=(2, 9, 7, 6), filt=(3, 3), padding=1, layout="channels_last"),
        Spec("nhwc-up2-2d", shape=(2, 9, 5, 6), filt=(4, 4), up=2, padding=(2, 1), layout="channels_last"),
        Spec("nhwc-down2-sep", shape=(2, 16, 8, 7), filt=(4,), down=2, padding=1, layout="channels_last"),
        Spec("nhwc-u2d4-crop", shape=(1, 10, 9, 11), filt=(3, 3), up=2, down=4, padding=(-1, 2, 1, -2),
             layout="channels_last"),
        Spec("nhwc-aniso-flip-gain", shape=(2, 8, 6, 5), filt=(2, 5), up=(1, 2), down=(2, 1), padding=(3, 0, 0, 3),
             flip_filter=True, gain=2.0, layout="channels_last"),
        Spec("nhwc-rank1-blur", shape=(2, 12, 7, 6), filt=(3, 3), padding=1, rank1=True, layout="channels_last"),
        Spec("nhwc-pad-big-up4", shape=(1, 8, 3, 4), filt=(3, 3), up=4, padding=(5, 4, 6, 3), layout="channels_last"),
        Spec("nhwc-empty-batch", shape=(0, 9, 5, 6), filt=(4, 4), up=2, padding=(2, 1), layout="channels_last"),
    ]
    bad = [s.name for s in specs if not _valid(s)]
    if bad:
        raise RuntimeError(f"invalid sample specs (empty output): {bad}")
    return specs


SPECS = _specs()


def _make_x(spec: Spec, device: str, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = spec.shape
    if spec.layout == "strided":  # every other channel, columns cropped: x stride != 1 rows, odd offsets
        base = torch.randn(n, 2 * c, h, w + 3, generator=gen, dtype=torch.float64)
        x = base[:, ::2, :, 1:-2]
    elif spec.layout == "transposed":  # H and W swapped in memory: stride(3) != 1
        x = torch.randn(n, c, w, h, generator=gen, dtype=torch.float64).transpose(2, 3)
    else:
        x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    x = x.to(device=device, dtype=dtype)
    if spec.layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _make_f(spec: Spec, device: str, gen: torch.Generator) -> Optional[torch.Tensor]:
    if spec.filt is None:
        return None
    if spec.rank1:  # signed factors, so the split must get the signs right
        h, w = spec.filt
        return torch.outer(torch.randn(h, generator=gen), torch.randn(w, generator=gen)).to(device)
    return (torch.rand(spec.filt, generator=gen) + 0.25).to(device)  # float32 like setup_filter's filters


def sample_inputs(device: str, dtype: torch.dtype) -> List[Sample]:
    """The one list of upfirdn2d calls every kernel test (CPU and CUDA) runs: deterministic per spec."""
    samples = []
    for i, spec in enumerate(SPECS):
        gen = torch.Generator().manual_seed(1000 + i)
        samples.append(Sample(spec.name, _make_x(spec, device, dtype, gen), _make_f(spec, device, gen),
                              spec.kwargs()))
    return samples


def _impl(device: str) -> str:
    return "cuda" if device == "cuda" else "cpu"


def _collect(failures: List[str], name: str, got: torch.Tensor, want: torch.Tensor, tol: dict) -> None:
    if got.shape != want.shape:
        failures.append(f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}")
        return
    if got.numel() and not torch.allclose(got.double(), want.double(), **tol):
        err = (got.double() - want.double()).abs().max().item()
        failures.append(f"{name}: max |diff| {err:.3g}")


# ---------------------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_forward_matches_reference(device, dtype):
    failures: List[str] = []
    for s in sample_inputs(device, dtype):
        y = U.upfirdn2d(s.x, s.f, **s.kwargs, impl=_impl(device))
        ref = U.upfirdn2d_ref(s.x, s.f, **s.kwargs)
        _collect(failures, s.name, y, ref, TOL[dtype])
        if y.dtype != dtype:
            failures.append(f"{s.name}: output dtype {y.dtype}, expected {dtype}")
    assert not failures, "kernel != reference:\n" + "\n".join(failures)


@pytest.mark.parametrize("rank1", [False, True], ids=["2d", "rank1"])
def test_parallel_planes_are_deterministic(rank1):
    """Planes split over threads (each with its own scratch) give bitwise the single-thread result."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 40, 17, 19, generator=gen)  # 120 planes: several tasks of >= 32k outputs
    f = torch.outer(torch.rand(4, generator=gen), torch.rand(4, generator=gen)) if rank1 else torch.rand(4, 4)
    kw = dict(up=2, down=(1, 2), padding=(2, 1, 3, 0))
    one = U.upfirdn2d(x, f, **kw, impl="cpu")
    two = _on_two_threads(lambda: U.upfirdn2d(x, f, **kw, impl="cpu"))
    assert torch.equal(one, two)
    torch.testing.assert_close(two, U.upfirdn2d_ref(x, f, **kw), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_output_memory_format_follows_input(device):
    checked = 0
    for s in sample_inputs(device, torch.float32):
        y = U.upfirdn2d(s.x, s.f, **s.kwargs, impl=_impl(device))
        if s.x.is_contiguous(memory_format=torch.channels_last) and not s.x.is_contiguous():
            assert y.is_contiguous(memory_format=torch.channels_last), f"{s.name}: channels_last input lost format"
            checked += 1
        elif s.x.is_contiguous():
            assert y.is_contiguous(), f"{s.name}: contiguous input gave a non-contiguous output"
    assert checked >= 2


# ---------------------------------------------------------------------------------------------------- gradients
def _grads(s: Sample, impl: str, seed: int):
    """(dx, d(dx)/d(dy) . w): first derivative and the double-backward path the gradient penalty uses."""
    x = s.x.detach().clone().requires_grad_(True)
    y = U.upfirdn2d(x, s.f, **s.kwargs, impl=impl)
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y).requires_grad_(True)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    w = torch.randn(dx.shape, generator=gen, dtype=torch.float64).to(dx)
    (ddy,) = torch.autograd.grad(dx, dy, w)
    return dx.detach(), ddy


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_grad_and_grad_of_grad_match_reference(device, dtype):
    failures: List[str] = []
    for i, s in enumerate(sample_inputs(device, dtype)):
        dx, ddy = _grads(s, _impl(device), seed=i)
        if s.x.numel() == 0:  # the reference's empty conv does not even connect dy; check the kernel's shapes
            if dx.shape != s.x.shape or ddy.numel() != 0:
                failures.append(f"{s.name}: empty-batch gradients have shapes {dx.shape}, {ddy.shape}")
            continue
        dx_ref, ddy_ref = _grads(s, "ref", seed=i)
        _collect(failures, f"{s.name} grad", dx, dx_ref, TOL[dtype])
        _collect(failures, f"{s.name} grad-of-grad", ddy, ddy_ref, TOL[dtype])
        if dx.shape != s.x.shape:
            failures.append(f"{s.name}: grad shape {tuple(dx.shape)} != input {tuple(s.x.shape)}")
    assert not failures, "kernel gradients != reference:\n" + "\n".join(failures)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_gradients_with_channels_last_upstream(dtype):
    """In a channels-last network the upstream gradient is channels-last too: the backward (and double backward)
    then run the NHWC kernel as well, and must still equal the reference; 2 threads give the 1-thread bits."""
    failures: List[str] = []
    specs = [s for s in sample_inputs("cpu", dtype) if s.name.startswith("nhwc-") and s.x.numel()]
    assert len(specs) >= 6
    for i, s in enumerate(specs):
        results = {}
        for impl in ("cpu", "ref"):
            x = s.x.detach().clone().requires_grad_(True)
            y = U.upfirdn2d(x, s.f, **s.kwargs, impl=impl)
            gen = torch.Generator().manual_seed(i)
            dy = torch.randn(y.shape, generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)
            dy.requires_grad_(True)
            (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
            (ddy,) = torch.autograd.grad(dx, dy, torch.ones_like(dx))
            results[impl] = (y.detach(), dx.detach(), ddy)
            if impl == "cpu" and not dx.is_contiguous(memory_format=torch.channels_last):
                failures.append(f"{s.name}: channels-last gradient lost its format")
        for k, (a, b) in enumerate(zip(results["cpu"], results["ref"])):
            _collect(failures, f"{s.name} [{('y', 'dx', 'ddy')[k]}]", a, b, TOL[dtype])
    x = torch.randn(4, 16, 32, 32, dtype=dtype).contiguous(memory_format=torch.channels_last)  # 128 rows: 2+ tasks
    f, kw = specs[0].f, specs[0].kwargs
    one = U.upfirdn2d(x, f, **kw, impl="cpu")
    two = _on_two_threads(lambda: U.upfirdn2d(x, f, **kw, impl="cpu"))
    assert torch.equal(one, two)
    _collect(failures, "nhwc 2 threads", two, U.upfirdn2d_ref(x, f, **kw), TOL[dtype])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("impl", ["cpu", "ref"])
def test_filter2d_adjoint_is_the_gradient_of_filter2d(impl):
    gen = torch.Generator().manual_seed(11)
    filters = [torch.rand(3, 3, generator=gen), torch.rand(2, 5, generator=gen), torch.rand(4, generator=gen),
               torch.rand(2, 2, generator=gen)]
    for f, flip, pad, gain in itertools.product(filters, (False, True), (0, (1, 0, 2, 1), -1), (1.0, 1.5)):
        x = torch.randn(2, 9, 7, 6, generator=gen, dtype=torch.float64).requires_grad_(True)
        y = filter2d(x, f, padding=pad, flip_filter=flip, gain=gain, impl=impl)
        g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        (want,) = torch.autograd.grad(y, x, g)
        got = U.filter2d_adjoint(g, f, padding=pad, flip_filter=flip, gain=gain, impl=impl)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# A few small calls for the (slow) numerical checks.
GRADCHECK_SPECS = [
    Spec("gc-up2-2d", shape=(1, 2, 4, 5), filt=(4, 4), up=2, padding=(2, 1, 1, 2)),
    Spec("gc-down2-sep", shape=(1, 2, 6, 7), filt=(3,), down=2, padding=(1, 0, 2, -1)),
    Spec("gc-aniso-flip-gain", shape=(2, 1, 5, 4), filt=(2, 3), up=(1, 2), down=(2, 1), padding=(1, 2, 0, 1),
         flip_filter=True, gain=2.0),
    Spec("gc-up4-down2-crop", shape=(1, 1, 3, 4), filt=(5,), up=4, down=2, padding=(-1, 2, 3, -2)),
]


@pytest.mark.parametrize("impl", ["cpu", "ref"])
@pytest.mark.parametrize("spec", GRADCHECK_SPECS, ids=lambda s: s.name)
def test_gradcheck_and_gradgradcheck(spec, impl):
    gen = torch.Generator().manual_seed(7)
    x = _make_x(spec, "cpu", torch.float64, gen).requires_grad_(True)
    f = _make_f(spec, "cpu", gen)

    def fn(inp):
        return U.upfirdn2d(inp, f, **spec.kwargs(), impl=impl)

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_grad_padding_formula(spec):
    """grad_padding + swapped up/down + flipped filter reproduces autograd's gradient of the reference exactly."""
    if spec.filt is None or spec.shape[0] == 0:
        pytest.skip("covered by the other specs")
    gen = torch.Generator().manual_seed(3)
    x = _make_x(spec, "cpu", torch.float64, gen).requires_grad_(True)
    f = _make_f(spec, "cpu", gen)
    kw = spec.kwargs()
    y = U.upfirdn2d_ref(x, f, **kw)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (want,) = torch.autograd.grad(y, x, dy)
    up, down = U.parse_scaling(kw["up"], "up"), U.parse_scaling(kw["down"], "down")
    pad = U.grad_padding(tuple(x.shape[2:]), tuple(y.shape[2:]), U.filter_size(f), up, down,
                         U.parse_padding(kw["padding"]))
    got = U.upfirdn2d_ref(dy, f, up=down, down=up, padding=pad, flip_filter=not kw["flip_filter"], gain=kw["gain"])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_filter_gets_no_gradient():
    """f is a constant filter: the kernel path documents and implements no gradient for it."""
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    f = torch.rand(3, 3, requires_grad=True)
    U.upfirdn2d(x, f, padding=1, impl="cpu").sum().backward()
    assert f.grad is None and x.grad is not None and x.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------- kernel usage
def _forbid_reference(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the pure-torch reference was called on the kernel path")

    monkeypatch.setattr(U, "upfirdn2d_ref", boom)


def test_double_backward_never_calls_reference(monkeypatch):
    _forbid_reference(monkeypatch)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    y = upsample2d(x, f, impl="cpu")
    dy = torch.randn_like(y, requires_grad=True)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    (ddy,) = torch.autograd.grad((dx ** 2).sum(), dy, create_graph=True)
    (dddy,) = torch.autograd.grad(ddy.sum(), dy)  # third order, still in the kernel
    # d/d(dy) of sum(dx^2) = 2 A dx (A = the forward operator): check the value, not just that it ran.
    monkeypatch.undo()
    torch.testing.assert_close(ddy, 2 * U.upfirdn2d_ref(dx, f, up=2, padding=(2, 1, 2, 1), gain=4), rtol=1e-10,
                               atol=1e-10)
    assert torch.isfinite(dddy).all()


@pytest.mark.parametrize("impl", ["cpu", "auto"])
def test_resampling_wrappers_use_the_kernel(monkeypatch, impl):
    if impl == "auto" and build.forced_reference():
        pytest.skip("STYLEGAN_OPS=ref forces the reference")
    _forbid_reference(monkeypatch)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    for y in (upsample2d(x, f, impl=impl), downsample2d(x, f, impl=impl), filter2d(x, f, impl=impl)):
        dy = torch.randn_like(y, requires_grad=True)
        (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
        (ddy,) = torch.autograd.grad(dx.sum(), dy)
        assert ddy.abs().sum() > 0


RESAMPLE_FILTERS = {
    "none": None,
    "box2": [1, 1],
    "blur3": [1, 2, 1],
    "blur4": [1, 3, 3, 1],
    "sep8": [1, 2, 3, 4, 4, 3, 2, 1],  # 8+ taps: setup_filter keeps it separable (1-D)
}


@pytest.mark.parametrize("fname", list(RESAMPLE_FILTERS))
@pytest.mark.parametrize("device", DEVICES)
def test_resampling_wrappers_match_reference(device, fname):
    taps = RESAMPLE_FILTERS[fname]
    f = None if taps is None else setup_filter(taps, device=torch.device(device))
    x = torch.randn(2, 3, 9, 12, device=device)
    for name, fn, kw in [("upsample2d", upsample2d, dict(up=2)), ("upsample2d-up4", upsample2d, dict(up=4)),
                         ("downsample2d", downsample2d, dict(down=2)), ("filter2d", filter2d, dict()),
                         ("filter2d-pad", filter2d, dict(padding=(1, 0, 2, 1), gain=2))]:
        got = fn(x, f, **kw, impl=_impl(device))
        want = fn(x, f, **kw, impl="ref")
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name} f={fname}: {m}")


def test_rank1_split_is_exact_for_resampling_filters_and_refuses_others():
    """The CPU kernel runs exactly-separable 2-D filters as two 1-D passes; the split must be exact and strict."""
    split = _extension().split_rank1
    for taps in ([1, 3, 3, 1], [1, 2, 1], [1, 1]):
        f = setup_filter(taps)  # outer(t, t) / sum^2
        one_d = torch.tensor(taps, dtype=torch.float32) / sum(taps)
        assert torch.equal(split(f), torch.cat([one_d, one_d]))
    u, v = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, -1.0, 2.0, 0.25])  # negative pivot -6
    gx_gy = split(torch.outer(u, v))  # [f_h=3, f_w=4]: gx has 4 taps, gy 3
    torch.testing.assert_close(torch.outer(gx_gy[4:], gx_gy[:4]), torch.outer(u, v), rtol=0, atol=1e-6)
    assert split(torch.tensor([[1.0, 2.0], [3.0, 4.0]])) is None  # rank 2
    f = setup_filter([1, 3, 3, 1]).clone()
    f[0, 0] += 1e-5  # rank-1 only approximately: must stay 2-D
    assert split(f) is None
    assert split(torch.zeros(3, 3)) is None


def test_filter_is_cast_to_x_dtype():
    x = torch.randn(2, 2, 6, 6)
    f = torch.rand(3, 3, dtype=torch.float64)
    torch.testing.assert_close(U.upfirdn2d(x, f, padding=1, impl="cpu"), U.upfirdn2d_ref(x, f, padding=1))
    assert U.upfirdn2d(x, f, padding=1, impl="cpu").dtype == torch.float32


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    x = torch.randn(0, 4, 8, 8, device=device, requires_grad=True)
    f = setup_filter([1, 3, 3, 1], device=torch.device(device))
    y = upsample2d(x, f, impl=_impl(device))
    assert y.shape == (0, 4, 16, 16)
    (dx,) = torch.autograd.grad(y.sum(), x)
    assert dx.shape == x.shape


# ---------------------------------------------------------------------------------------------------- half types
# bfloat16 has 8 significant bits: a float32 sum rounded once to bfloat16 is within 2**-9 relative of the exact
# value (rtol 2**-8 leaves room for the float32 accumulation; atol covers sums that cancel to ~0).
BF16_ONE_ROUNDING = dict(rtol=2 ** -8, atol=1e-4)


def _bf16_and_float64(s: Sample, seed: int):
    """(dx, d(dx)/d(dy) . w) of the bfloat16 CPU kernel and of the float64 reference on the same values: the same
    bfloat16 x, dy and w, and the filter x gain rounded to bfloat16 as both the kernel and the reference do."""
    gen = torch.Generator().manual_seed(seed)
    gain = s.kwargs["gain"]
    f64 = None if s.f is None else (s.f * gain ** (s.f.ndim / 2)).bfloat16().double()
    kw64 = dict(s.kwargs, gain=1.0)
    out = []
    for x0, f, kw, impl in ((s.x, s.f, s.kwargs, "cpu"), (s.x.double(), f64, kw64, "ref")):
        x = x0.detach().clone().requires_grad_(True)
        y = U.upfirdn2d(x, f, **kw, impl=impl)
        gen.manual_seed(seed)
        dy = torch.randn(y.shape, generator=gen, dtype=torch.float64).bfloat16().to(y.dtype).requires_grad_(True)
        (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
        w = torch.randn(dx.shape, generator=gen, dtype=torch.float64).bfloat16().to(dx.dtype)
        (ddy,) = torch.autograd.grad(dx, dy, w)
        out.append((y.detach(), dx.detach(), ddy))
    return out


def test_cpu_bfloat16_forward_grad_and_grad_of_grad_are_rounded_float64_results():
    """Every sample through the bfloat16 CPU kernel: forward, gradient and grad-of-grad (each one kernel pass)
    are the float64 reference on the same inputs, rounded once, and stay bfloat16; the kernel ran at every order."""
    failures: List[str] = []
    for i, s in enumerate(sample_inputs("cpu", torch.bfloat16)):
        if s.x.numel() == 0:
            continue
        (y, dx, ddy), (y64, dx64, ddy64) = _bf16_and_float64(s, seed=i)
        for what, got, want in (("forward", y, y64), ("grad", dx, dx64), ("grad-of-grad", ddy, ddy64)):
            if got.dtype != torch.bfloat16:
                failures.append(f"{s.name} {what}: dtype {got.dtype}")
            _collect(failures, f"{s.name} {what}", got, want, BF16_ONE_ROUNDING)
    assert not failures, "bfloat16 kernel != rounded float64 reference:\n" + "\n".join(failures)
    x = torch.randn(1, 2, 5, 5, dtype=torch.bfloat16, requires_grad=True)
    y = U.upfirdn2d(x, torch.ones(2, 2), up=2, impl="cpu")
    assert type(y.grad_fn).__name__ == "_Upfirdn2dBackward"


# ---------------------------------------------------------------------------------------------------- CUDA only
@pytest.mark.parametrize("device, dtype", [
    pytest.param("cuda", torch.float16, marks=DEVICES[1].marks, id="cuda-f16"),
    pytest.param("cuda", torch.bfloat16, marks=DEVICES[1].marks, id="cuda-bf16"),
    pytest.param("cpu", torch.bfloat16, id="cpu-bf16")])
def test_half_precision_matches_float32_reference(device, dtype):
    failures: List[str] = []
    for s in sample_inputs(device, dtype):
        y = U.upfirdn2d(s.x, s.f, **s.kwargs, impl=_impl(device))
        ref = U.upfirdn2d_ref(s.x.float(), s.f, **s.kwargs)
        if y.dtype != dtype:
            failures.append(f"{s.name}: output dtype {y.dtype}")
        _collect(failures, s.name, y, ref, TOL[dtype])
    assert not failures, "half kernel != float32 reference:\n" + "\n".join(failures)


# ---------------------------------------------------------------------------------------------------- bad input
F4 = torch.ones(4, 4)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: U.upfirdn2d(torch.zeros(3, 8, 8), F4), ValueError, r"x must be 4-D.*\[3, 8, 8\]"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), torch.ones(2, 2, 2)), ValueError, r"filter must be 1-D or 2-D"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), F4, up=0), ValueError, r"up factors must be integers >= 1.*0"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), F4, down=(1, 0)), ValueError, r"down factors.*\(1, 0\)"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8, dtype=torch.int32), F4), TypeError, r"floating-point.*int32"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), F4, padding=-4), ValueError, r"padding -4 crops"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), F4, padding=(1, 2, 3)), ValueError, r"padding must have"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), [1, 2]), TypeError, r"f must be a torch.Tensor"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), F4.int()), TypeError, r"f must be a floating-point"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8), F4, impl="gpu"), ValueError, r"impl must be one of.*'gpu'"),
    (lambda: U.upfirdn2d(torch.zeros(1, 1, 8, 8, dtype=torch.float16), F4, padding=2, impl="cpu"), TypeError,
     r"cpu kernel supports x dtypes float32, float64, bfloat16; got torch.float16"),
], ids=["x-rank", "f-rank", "up-0", "down-0", "x-int", "crop-all", "padding-len", "f-list", "f-int", "impl",
        "cpu-half"])
def test_bad_input_raises_naming_it(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _extension():
    return build.get_extension("upfirdn2d", "cpu").module


@pytest.mark.parametrize("args, exc, match", [
    (lambda x, f: (x[0], f, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0), ValueError, r"x must be 4-D"),
    (lambda x, f: (x, f[None], 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0), ValueError, r"f must be 1-D or 2-D"),
    (lambda x, f: (x, f, 0, 1, 1, 1, 0, 0, 0, 0, False, 1.0), ValueError, r"up must be >= 1"),
    (lambda x, f: (x, f, 1, 1, 1, 1, -8, 0, 0, 0, False, 1.0), ValueError, r"crops the 8x8 input to nothing"),
    (lambda x, f: (x.int(), f, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0), TypeError, r"float32, float64 or bfloat16"),
], ids=["x-rank", "f-rank", "up", "crop", "dtype"])
def test_extension_validates_its_arguments(args, exc, match):
    """The C++ entry point checks its own arguments (TORCH_CHECK_VALUE/TYPE -> ValueError/TypeError)."""
    x, f = torch.zeros(1, 1, 8, 8), torch.ones(4, 4)
    with pytest.raises(exc, match=match):
        _extension().upfirdn2d(*args(x, f))
