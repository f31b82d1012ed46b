"""`stylegan doctor`: what the ops will run on this machine, and proof that the kernels build and agree."""
from __future__ import annotations

import platform
import shutil
import subprocess
import sys

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


def _check_op(op: str, device: str) -> str:
    """Builds the op's kernel for `device` and compares one forward pass with the reference."""
    from stylegan import ops
    from stylegan.ops import build

    result = build.get_extension(op, device)
    if result.module is None:
        where = f"; log: {result.log_path}" if result.log_path else ""
        return f"unavailable: {result.error}{where}"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, 17, 19, generator=gen).to(device)
    if op == "bias_act":
        b = torch.randn(8, generator=gen).to(device)
        got, want = ops.bias_act(x, b, act="lrelu", impl=device), ops.bias_act(x, b, act="lrelu", impl="ref")
    else:
        f = ops.setup_filter([1, 3, 3, 1], device=torch.device(device))
        got, want = ops.upsample2d(x, f, impl=device), ops.upsample2d(x, f, impl="ref")
    err = (got - want).abs().max().item()
    verdict = "OK" if err < 1e-5 else "MISMATCH"
    return f"built and loaded; max |kernel - reference| = {err:.2e} ({verdict})"


@click.command()
def doctor() -> None:
    """Print versions and tools, build each kernel, check it against the reference, say what 'auto' uses."""
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
            status = _check_op(op, device)
            auto = "kernel" if status.startswith("built") and not build.forced_reference() else "reference"
            click.echo(f"{op:<10} {device:<5} {status}; impl='auto' uses the {auto}")
    if not torch.cuda.is_available():
        click.echo("cuda: no CUDA device visible to torch; GPU kernels are not built on this machine.")
