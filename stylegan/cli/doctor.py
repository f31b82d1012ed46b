"""`stylegan doctor`: what the ops will run on this machine, and proof that the kernels build and agree."""
from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from typing import List, Optional, Tuple

import click
import torch


def _tool_version(cmd: str, flag: str = "--version") -> str:
    path = shutil.which(cmd)
    if path is None:
        return "not found"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{path} (version unknown: {exc})"
    # The line that carries the version: the first for gcc/ninja, "release X.Y" for nvcc.
    line = next((ln for ln in out if "release" in ln), out[0] if out else "version unknown")
    return f"{path} ({line.strip()})"


def _check_op(op: str, device: str) -> List[Tuple[str, bool]]:
    """Builds the op's kernel for `device` and runs the full self-check (ops/selfcheck.py) in every kernel dtype.

    Returns (line, ok) per dtype; one line when the kernel is unavailable.
    """
    from stylegan.ops import build, selfcheck

    result = build.get_extension(op, device)
    if result.module is None:
        where = f"; log: {result.log_path}" if result.log_path else ""
        return [(f"unavailable: {result.error}{where}", False)]
    dev = torch.device(device)
    lines = []
    for dtype in _kernel_dtypes(op, device):
        try:
            verdict = selfcheck.check(op, result.module, dev, dtype, full=True)
            lines.append((f"{str(dtype).replace('torch.', ''):<9} {verdict.describe()}", verdict.ok))
        except Exception as exc:  # an error pending on the device before the check: report it, go on
            lines.append((f"{str(dtype).replace('torch.', ''):<9} could not run: {type(exc).__name__}: {exc}", False))
    return lines


def _kernel_dtypes(op: str, device: str):
    import importlib

    module = importlib.import_module(f"stylegan.ops.{op}")
    table = module._KERNEL_DTYPES if op == "bias_act" else module.KERNEL_DTYPES
    return table[device]


@click.command()
@click.option("--gpu", "gpu_report", type=click.Path(dir_okay=False, writable=True), default=None,
              metavar="REPORT",
              help="Also run the prepared GPU check (build the CUDA kernels, pytest -m cuda, bench ops, training "
                   "img/s at 64 and 256 px; under 8 minutes on an H100/H200) and write its report to REPORT. On a "
                   "machine without CUDA the GPU parts are skipped and the report says so.")
def doctor(gpu_report: Optional[str]) -> None:
    """Print versions and tools, build each kernel, run its full self-check against the reference in every dtype,
    say what 'auto' uses."""
    from stylegan.ops import build

    click.echo(f"python        {sys.version.split()[0]} ({platform.machine()}, {platform.system()})")
    click.echo(f"torch         {torch.__version__} (CUDA {torch.version.cuda or 'none'}; "
               f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} GPU(s); "
               f"{torch.get_num_threads()} CPU threads)")
    click.echo(f"ninja         {_tool_version('ninja')}")
    click.echo(f"c++ compiler  {_tool_version('c++')}")
    click.echo(f"nvcc          {_tool_version('nvcc')}")
    click.echo(f"kernel cache  {build.cache_dir()}")
    if build.forced_reference():
        click.echo(f"{build.OPS_ENV}=ref is set: every op uses the pure-torch reference.")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for op in ("bias_act", "upfirdn2d"):
        for device in devices:
            lines = _check_op(op, device)
            all_ok = all(ok for _, ok in lines)
            auto = "kernel" if all_ok and not build.forced_reference() else "reference"
            if len(lines) == 1 and lines[0][0].startswith("unavailable"):
                click.echo(f"{op:<10} {device:<5} {lines[0][0]}; impl='auto' uses the reference")
                continue
            click.echo(f"{op:<10} {device:<5} built and loaded; full self-check against the reference:")
            for line, _ in lines:
                click.echo(f"{'':<17}{line}")
            if all_ok or build.forced_reference():
                click.echo(f"{'':<17}impl='auto' uses the {auto}")
            elif device in build.SELF_CHECK_DEVICE_TYPES:
                click.echo(f"{'':<17}impl='auto' uses the reference for the dtypes that failed, the kernel for the "
                           f"others; please report this output")
            else:
                click.echo(f"{'':<17}the {device} kernel disagrees with the reference: please report this output")
    if not torch.cuda.is_available():
        click.echo("cuda: no CUDA device visible to torch; GPU kernels are not built on this machine.")
    if gpu_report:
        from stylegan.benchmarks.gpu_check import run_gpu_check

        run_gpu_check(gpu_report, echo=click.echo)
