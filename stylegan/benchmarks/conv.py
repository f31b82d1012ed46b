"""`stylegan bench conv`: one 3x3 convolution per resolution at the networks' widths, per dtype and memory format.

Why: on a CPU 80-90% of a training step or a G forward at the official widths is convolution (docs/PERFORMANCE.md
§4.1, §8.9), so the bf16-vs-fp32 ratio of the convolutions bounds the ratio of the whole step. This table measures
that bound on the machine at hand, before a step ratio is read against a target, and says per resolution whether
channels-last is faster. The dtypes are passed directly (bf16 tensors reach the same oneDNN / cuDNN kernel that
autocast calls, without autocast's casts).

All points run in one process (`python -m stylegan.benchmarks.conv`, one per allocator setting), in the order
resolution, layout, dtype, so the ratios compare numbers of one run.
"""
from __future__ import annotations

import argparse
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ..config import GeneratorConfig
from ..precision import DTYPES, cpu_flags, native_bf16_flag  # DTYPES: the one name -> dtype map of --precision
from .timing import describe_machine, format_table, measure, write_point

LAYOUTS = ("nchw", "channels_last")
DEFAULT_RESOLUTIONS = (8, 16, 32, 64, 128, 256)
KERNEL = 3  # every convolution of G's and D's blocks is 3x3 (the official networks)
TABLE_HEADERS = ["res", "channels", "dtype", "layout", "fwd ms", "fwd GFLOP/s", "fwd+bwd ms", "fwd+bwd GFLOP/s",
                 "vs fp32 nchw fwd", "vs fp32 nchw fwd+bwd"]


def block_channels(resolution: int, fmap_base: int, fmap_max: int) -> int:
    """Feature maps of the convolutions at `resolution`: the official nf(log2(resolution) - 1) (G's block there;
    D's block at that resolution has the same width)."""
    stage = int(math.log2(resolution)) - 1
    return GeneratorConfig(fmap_base=fmap_base, fmap_max=fmap_max).nf(stage)


def conv_flops(batch: int, channels: int, resolution: int, backward: bool) -> int:
    """Multiply-adds x 2 of a same-padded 3x3 convolution channels -> channels on [batch, channels, res, res];
    the backward adds the input gradient and the weight gradient, each as large as the forward."""
    forward = 2 * batch * resolution * resolution * channels * channels * KERNEL * KERNEL
    return 3 * forward if backward else forward


def measure_conv(resolution: int, channels: int, batch: int, dtype: str, layout: str, device: torch.device,
                 repeat: int) -> Dict[str, object]:
    """Times F.conv2d forward, and forward + backward (input and weight gradients), for one point."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, resolution, resolution, generator=gen)
    w = torch.randn(channels, channels, KERNEL, KERNEL, generator=gen) / math.sqrt(channels * KERNEL * KERNEL)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = x.to(device=device, dtype=DTYPES[dtype]).contiguous(memory_format=fmt).requires_grad_(True)
    w = w.to(device=device, dtype=DTYPES[dtype]).contiguous(memory_format=fmt).requires_grad_(True)
    dy = torch.ones(batch, channels, resolution, resolution, device=device, dtype=x.dtype).contiguous(
        memory_format=fmt)

    def forward() -> None:
        with torch.no_grad():
            F.conv2d(x, w, padding=KERNEL // 2)

    def forward_backward() -> None:
        y = F.conv2d(x, w, padding=KERNEL // 2)
        torch.autograd.grad(y, (x, w), dy)

    fwd = measure(forward, repeat=repeat, warmup=1, device=device)
    both = measure(forward_backward, repeat=repeat, warmup=1, device=device)
    return {"resolution": resolution, "channels": channels, "batch": batch, "dtype": dtype, "layout": layout,
            "fwd_s": fwd.median_s, "fwd_bwd_s": both.median_s,
            "fwd_gflops": conv_flops(batch, channels, resolution, False) / fwd.median_s / 1e9,
            "fwd_bwd_gflops": conv_flops(batch, channels, resolution, True) / both.median_s / 1e9}


def measure_all(resolutions: Sequence[int], batch: int, dtypes: Sequence[str], layouts: Sequence[str],
                fmap_base: int, fmap_max: int, device: torch.device, repeat: int) -> Dict[str, object]:
    rows = [measure_conv(res, block_channels(res, fmap_base, fmap_max), batch, dtype, layout, device, repeat)
            for res in resolutions for layout in layouts for dtype in dtypes]
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:  # whether bf16 runs in hardware here or is emulated (and slower than fp32)
        flag = native_bf16_flag(cpu_flags())
        name = f"cpu (native bf16: {flag})" if flag else "cpu (no native bf16: bf16 is emulated)"
    return {"rows": rows, "batch": batch, "repeat": repeat, "fmap_base": fmap_base, "fmap_max": fmap_max,
            "device": name}


def table_rows(rows: Sequence[Dict[str, object]]) -> List[List[object]]:
    """The table: each point's times and throughput, and its speed relative to fp32 NCHW at the same resolution."""
    nan = float("nan")
    baseline = {r["resolution"]: r for r in rows if r["dtype"] == "fp32" and r["layout"] == "nchw"}
    out = []
    for r in rows:
        base = baseline.get(r["resolution"])
        out.append([r["resolution"], r["channels"], r["dtype"], r["layout"], r["fwd_s"] * 1e3, r["fwd_gflops"],
                    r["fwd_bwd_s"] * 1e3, r["fwd_bwd_gflops"],
                    base["fwd_s"] / r["fwd_s"] if base else nan,
                    base["fwd_bwd_s"] / r["fwd_bwd_s"] if base else nan])
    return out


def ceilings(rows: Sequence[Dict[str, object]]) -> List[str]:
    """One line per mixed dtype and layout: its fwd+bwd speed-up over fp32 NCHW summed over the resolutions (one
    such convolution per resolution, as G and D have) and its range. A convolution-bound training step cannot gain
    more than that on this machine."""
    lines = []
    baseline = {r["resolution"]: r for r in rows if r["dtype"] == "fp32" and r["layout"] == "nchw"}
    for dtype, layout in dict.fromkeys((r["dtype"], r["layout"]) for r in rows):
        if dtype == "fp32" and layout == "nchw":
            continue
        mine = [r for r in rows if r["dtype"] == dtype and r["layout"] == layout and r["resolution"] in baseline]
        if not mine:
            continue
        ratios = [baseline[r["resolution"]]["fwd_bwd_s"] / r["fwd_bwd_s"] for r in mine]
        summed = sum(baseline[r["resolution"]]["fwd_bwd_s"] for r in mine) / sum(r["fwd_bwd_s"] for r in mine)
        lines.append(f"{dtype} {layout} vs fp32 nchw, fwd+bwd: {summed:.2f}x over all resolutions together "
                     f"({min(ratios):.2f}x to {max(ratios):.2f}x per resolution)")
    return lines


def report(result: Dict[str, object]) -> str:
    """The printed table with its header lines."""
    rows = result["rows"]
    head = (f"{describe_machine(result['machine'])}\n"
            f"3x3 conv, channels -> channels (official nf at each resolution: fmap_base {result['fmap_base']}, "
            f"fmap_max {result['fmap_max']}), batch {result['batch']}, {result['device']}, median of "
            f"{result['repeat']}; fwd+bwd = forward + input and weight gradients; GFLOP/s = 2 x multiply-adds / s")
    return "\n".join([head, format_table(TABLE_HEADERS, table_rows(rows))] + ceilings(rows))


def _main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description="The convolution benchmark's measurement (run by `stylegan bench conv`).")
    p.add_argument("--resolutions", required=True, help="comma-separated")
    p.add_argument("--dtypes", required=True, help="comma-separated")
    p.add_argument("--layouts", required=True, help="comma-separated")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--fmap-base", type=int, required=True)
    p.add_argument("--fmap-max", type=int, required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--json-out", required=True)
    a = p.parse_args(argv)
    write_point(a.json_out, lambda: measure_all([int(r) for r in a.resolutions.split(",")], a.batch,
                                                a.dtypes.split(","), a.layouts.split(","), a.fmap_base, a.fmap_max,
                                                torch.device(a.device), a.repeat))


if __name__ == "__main__":
    _main()
