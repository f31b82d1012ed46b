"""The `stylegan bench ops` measurement: each fused op, reference vs kernel, forward / fwd+bwd / double backward.

Why it looks like this:
- Both implementations run in the same process under the same allocator settings, so the speedup is meaningful;
  `stylegan bench ops` runs this module once per allocator setting (`python -m stylegan.benchmarks.ops`).
- GB/s uses the bytes an ideal fused implementation must move (every input read once, every output written once,
  per pass; see `Case.bytes_moved`), so "x floor" = time / (bytes / measured copy bandwidth) says how far a run is
  from the memory-bandwidth floor of this machine.
- The upfirdn2d rows call the public stylegan.ops functions with impl='auto'; the table says which implementation
  'auto' actually ran (the reference when that kernel is unavailable).
"""
from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from stylegan import ops
from stylegan.ops import build

from .timing import copy_bandwidth_gbps, machine_info, measure

PHASES = ("fwd", "fwd+bwd", "double bwd")
MEASURE_BUDGET_S = 10.0  # per measurement: slow references get fewer timed runs (the JSON records how many)


@dataclass(frozen=True)
class Case:
    """One benchmarked call: `fn(x, params, impl)` with x of `shape`; `params` are the op's own tensors (bias)."""

    op: str  # the extension name: bias_act | upfirdn2d
    label: str  # what the table shows, e.g. "bias_act lrelu+bias"
    shape: Tuple[int, ...]
    fn: Callable[[torch.Tensor, List[torch.Tensor], str], torch.Tensor]
    make_params: Callable[[Tuple[int, ...], torch.device], List[torch.Tensor]]
    out_shape: Callable[[Tuple[int, ...]], Tuple[int, ...]]
    saves_output: bool  # the backward reads y (bias_act), so a backward pass moves one more y-sized tensor

    def bytes_moved(self, phase: str, itemsize: int = 4) -> int:
        """Minimal bytes of one `phase`: forward reads x, writes y; backward reads dy (+y), writes dx; the double
        backward adds one more pass of the same size (the gradient of dx mapped to a gradient of dy)."""
        nx = _numel(self.shape)
        ny = _numel(self.out_shape(self.shape))
        fwd = nx + ny
        bwd = ny + nx + (ny if self.saves_output else 0)
        total = {"fwd": fwd, "fwd+bwd": fwd + bwd, "double bwd": fwd + 2 * bwd}[phase]
        return total * itemsize


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _bias(shape, device):
    return [torch.randn(shape[1], device=device)]


def _no_params(shape, device):
    return []


def default_cases(quick: bool = False) -> List[Case]:
    """The benchmarked ops and shapes (tiny shapes with quick=True, for a smoke test of the bench itself)."""
    blur = [1, 3, 3, 1]

    def bias_act(x, p, impl):
        return ops.bias_act(x, p[0], act="lrelu", impl=impl)

    def upsample(x, p, impl):
        return ops.upsample2d(x, ops.setup_filter(blur, device=x.device), impl=impl)

    def filter_blur(x, p, impl):
        return ops.filter2d(x, ops.setup_filter([1, 2, 1], device=x.device), impl=impl)

    def downsample_box(x, p, impl):
        return ops.downsample2d(x, ops.setup_filter([1, 1], device=x.device), impl=impl)

    def same(s):
        return tuple(s)

    def up2(s):
        return (*s[:-2], s[-2] * 2, s[-1] * 2)

    def down2(s):
        return (*s[:-2], s[-2] // 2, s[-1] // 2)

    big, small, wide = ((2, 8, 16, 16), (2, 8, 8, 8), (2, 4, 16, 16)) if quick else \
        ((16, 512, 32, 32), (16, 512, 8, 8), (16, 256, 64, 64))
    return [
        Case("bias_act", "bias_act lrelu+bias", big, bias_act, _bias, same, True),
        Case("bias_act", "bias_act lrelu+bias", small, bias_act, _bias, same, True),
        Case("upfirdn2d", "upsample2d f=[1,3,3,1]", big, upsample, _no_params, up2, False),
        Case("upfirdn2d", "upsample2d f=[1,3,3,1]", wide, upsample, _no_params, up2, False),
        Case("upfirdn2d", "filter2d blur [1,2,1]", big, filter_blur, _no_params, same, False),
        Case("upfirdn2d", "downsample2d box f=[1,1]", wide, downsample_box, _no_params, down2, False),
    ]


def _phase_fn(case: Case, phase: str, impl: str, device: torch.device) -> Callable[[], object]:
    """A closure running one phase; inputs and incoming gradients are made once, outside the timed region."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(case.shape, generator=gen).to(device)
    params = case.make_params(case.shape, device)
    dy = torch.randn(case.out_shape(case.shape), generator=gen).to(device)
    w = torch.randn(case.shape, generator=gen).to(device)
    if phase == "fwd":
        return lambda: case.fn(x, params, impl)
    xg = x.clone().requires_grad_()
    pg = [p.clone().requires_grad_() for p in params]
    if phase == "fwd+bwd":
        def fwd_bwd():
            y = case.fn(xg, pg, impl)
            return torch.autograd.grad(y, [xg] + pg, dy)
        return fwd_bwd
    dyg = dy.clone().requires_grad_()

    def double_bwd():  # a gradient-penalty-like second derivative: d/d(x, params, dy) of <w, dL/dx>
        y = case.fn(xg, pg, impl)
        (dx,) = torch.autograd.grad(y, [xg], dyg, create_graph=True)
        return torch.autograd.grad((dx * w).sum(), [xg] + pg + [dyg], allow_unused=True)
    return double_bwd


def kernel_in_use(op: str, device: torch.device) -> str:
    """What impl='auto' runs for `op` on `device`: 'kernel' or 'reference (<why>)'."""
    chosen = "ref"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            chosen, _ = build.resolve_impl(op, "auto", device)
        except Exception as exc:  # the bench reports, never crashes on an unavailable kernel
            return f"reference ({exc})"
    if chosen == "ref":
        result = build.get_extension(op, device.type)
        return f"reference ({result.error or 'forced by ' + build.OPS_ENV})"
    return "kernel"


def run(device: torch.device, repeat: int = 5, quick: bool = False) -> Dict[str, object]:
    """Measures every case; returns a JSON-ready dict: machine facts, copy bandwidth, one row per case x phase."""
    torch.manual_seed(0)
    copy_gbps = copy_bandwidth_gbps(device, nbytes=(8 << 20) if quick else (128 << 20),
                                    repeat=max(3, repeat))
    rows = []
    notes = {}
    for case in default_cases(quick):
        notes[case.op] = kernel_in_use(case.op, device)
        for phase in PHASES:
            times, runs = {}, {}
            for impl in ("ref", "auto"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the fallback warning is reported once, in `notes`
                    fn = _phase_fn(case, phase, impl, device)
                    timing = measure(fn, repeat=repeat, warmup=1, device=device, budget_s=MEASURE_BUDGET_S)
                    times[impl], runs[impl] = timing.median_s, timing.runs
                del fn
            nbytes = case.bytes_moved(phase)
            floor_s = nbytes / (copy_gbps * 1e9)
            rows.append({
                "op": case.label, "shape": list(case.shape), "phase": phase,
                "ref_ms": times["ref"] * 1e3, "kernel_ms": times["auto"] * 1e3,
                "speedup": times["ref"] / times["auto"],
                "ref_gbps": nbytes / times["ref"] / 1e9, "kernel_gbps": nbytes / times["auto"] / 1e9,
                "kernel_x_floor": times["auto"] / floor_s,
                "bytes": nbytes, "ref_runs": runs["ref"], "kernel_runs": runs["auto"],
            })
    return {"machine": machine_info(device), "copy_gbps": copy_gbps, "repeat": repeat, "quick": quick,
            "kernel_used": notes, "rows": rows}


TABLE_HEADERS = ("op", "shape", "phase", "ref ms", "kernel ms", "speedup", "ref GB/s", "kernel GB/s", "x floor")


def table_rows(result: Dict[str, object]) -> List[List[object]]:
    """Rows for timing.format_table from a `run()` result."""
    return [[r["op"], "x".join(str(s) for s in r["shape"]), r["phase"], r["ref_ms"], r["kernel_ms"], r["speedup"],
             r["ref_gbps"], r["kernel_gbps"], r["kernel_x_floor"]] for r in result["rows"]]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the re-executed measurement (`python -m stylegan.benchmarks.ops --json-out FILE`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json-out", required=True)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    result = run(torch.device(args.device), repeat=args.repeat, quick=args.quick)
    with open(args.json_out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
