"""The prepared GPU check (`stylegan doctor --gpu REPORT`): everything worth knowing from a few minutes on a GPU.

Why one prepared script: a GPU is lent to this project rarely and for minutes, so the run must be a single command
that was already dry-run on a CPU (where every GPU step is skipped with its reason), that cannot hang (each step
has a time limit, the whole run a deadline of under 8 minutes on an H100/H200), and that writes everything into one
report file, even when a step fails. Steps, in order of value:
  1. build the CUDA extensions (nvcc) and run the full self-check of every kernel in every dtype;
  2. `pytest -m cuda tests/ops` (when run from a checkout that has the tests);
  3. bias_act's throughput as a fraction of the device's copy bandwidth (target >= 70%);
  4. `stylegan bench ops --device cuda` (kernel vs reference, every phase);
  5. training images/s (the real `stylegan train` step) at 64 and 256 px, impl 'auto' vs 'ref'.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, List, Optional

import torch

DEADLINE_S = 450.0  # the whole run; later steps are skipped (and say so) once it has passed
STEP_LIMITS_S = {"pytest": 150.0, "bench ops": 150.0}
TRAIN_POINTS = ((64, 16), (256, 8))  # (resolution, batch)
REPO = Path(__file__).resolve().parents[2]


class Report:
    """Markdown sections collected in order and written to one file (rewritten after every step)."""

    def __init__(self, path: str, echo: Callable[[str], None]):
        self.path = Path(path)
        self.echo = echo
        self.lines: List[str] = []
        self.start = time.time()

    def section(self, title: str) -> None:
        self.add(f"\n## {title}  (t = {time.time() - self.start:.0f} s)")

    def add(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.lines.append(line)
            self.echo(line)
        self.path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")

    def block(self, text: str) -> None:
        self.add("```\n" + text.rstrip() + "\n```")

    def time_left(self) -> float:
        return DEADLINE_S - (time.time() - self.start)


def _environment() -> str:
    lines = [f"python {sys.version.split()[0]} on {platform.platform()}",
             f"torch {torch.__version__}, CUDA runtime {torch.version.cuda or 'none'}"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}, "
                         f"{p.multi_processor_count} SMs")
    for tool, flag in (("nvcc", "--version"), ("nvidia-smi", "-L")):
        path = shutil.which(tool)
        if path is None:
            lines.append(f"{tool}: not found")
            continue
        try:
            out = subprocess.run([path, flag], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            out = f"failed: {exc}"
        lines.append(f"{tool}: " + (out.splitlines()[-1] if tool == "nvcc" and out else out))
    return "\n".join(lines)


def build_and_selfcheck(report: Report, device_type: str = "cuda") -> bool:
    """Builds each extension for `device_type` and runs the full self-check in every dtype; True when all pass.
    (device_type 'cpu' lets the tests run this step without a GPU.)"""
    import importlib

    from stylegan.ops import build, selfcheck

    all_ok = True
    device = torch.device(device_type)
    for op in ("bias_act", "upfirdn2d"):
        start = time.time()
        result = build.get_extension(op, device_type)
        if result.module is None:
            report.add(f"- {op}: build FAILED after {time.time() - start:.0f} s: {result.error} (log: {result.log_path})")
            if result.log_path and Path(result.log_path).exists():
                report.block(Path(result.log_path).read_text()[-4000:])
            all_ok = False
            continue
        report.add(f"- {op}: built and loaded in {time.time() - start:.0f} s")
        module = importlib.import_module(f"stylegan.ops.{op}")
        dtypes = (module._KERNEL_DTYPES if op == "bias_act" else module.KERNEL_DTYPES)[device_type]
        for dtype in dtypes:
            try:
                verdict = selfcheck.check(op, result.module, device, dtype, full=True)
                line = verdict.describe()
                all_ok = all_ok and verdict.ok
            except Exception as exc:  # noqa: BLE001 - the report says what happened and goes on
                line = f"could not run: {type(exc).__name__}: {exc}"
                all_ok = False
            report.add(f"  - {dtype}: {line}")
    return all_ok


def run_command(report: Report, title: str, cmd: List[str], limit_s: float) -> None:
    limit = min(limit_s, max(10.0, report.time_left()))
    report.add(f"`{' '.join(cmd)}` (limit {limit:.0f} s)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=REPO)
        out = (proc.stdout + ("\n" + proc.stderr if proc.returncode else "")).strip()
        report.add(f"exit status {proc.returncode}")
        report.block(out[-6000:])
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        report.add(f"{title}: TIMED OUT after {limit:.0f} s")
        report.block(out[-4000:])


def bias_act_bandwidth(device: torch.device, numel: int = 1 << 26, repeat: int = 20) -> List[str]:
    """bias_act lrelu+bias forward throughput vs the device's copy bandwidth, per dtype and layout."""
    from stylegan import ops

    from .timing import copy_bandwidth_gbps, measure

    copy = copy_bandwidth_gbps(device, nbytes=numel * 4, repeat=10)
    lines = [f"copy bandwidth: {copy:.0f} GB/s (read + write, {numel * 4 >> 20} MiB)"]
    channels = 512
    shape = (max(1, numel // (channels * 32 * 32)), channels, 32, 32)
    for dtype in ((torch.float32, torch.float16) if device.type == "cuda" else (torch.float32,)):
        for layout in ("NCHW", "channels_last"):
            x = torch.randn(shape, device=device, dtype=dtype)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            b = torch.randn(channels, device=device, dtype=dtype)
            for impl in ("auto", "ref"):
                t = measure(lambda: ops.bias_act(x, b, act="lrelu", impl=impl), repeat=repeat, warmup=3,
                            device=device)
                gbps = 2 * x.numel() * x.element_size() / t.median_s / 1e9
                lines.append(f"{str(dtype).replace('torch.', ''):<8} {layout:<13} impl={impl:<4} "
                             f"{t.median_ms:7.3f} ms  {gbps:7.0f} GB/s  {100 * gbps / copy:5.1f}% of copy")
            del x, b
    return lines


def train_points(device: torch.device, points=TRAIN_POINTS, repeat: int = 5, fmap_base: int = 8192,
                 latent: int = 512) -> List[str]:
    """Images/s of the real training step (Trainer.step) at each (resolution, batch), impl auto vs ref."""
    import tempfile

    from .networks import build_trainer
    from .timing import measure

    lines = []
    for resolution, batch in points:
        for impl in ("auto", "ref"):
            try:
                with tempfile.TemporaryDirectory(prefix="stylegan-gpu-check-") as workdir:
                    trainer, phase, loader = build_trainer(workdir, resolution, impl, batch, fmap_base, 512, latent,
                                                           0.0)
                    if trainer.device.type != device.type:
                        raise RuntimeError(f"the trainer runs on {trainer.device}, expected {device}")
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    step = measure(lambda: trainer.step(phase, loader), repeat=repeat, warmup=2, device=device)
                    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else 0.0
                lines.append(f"{resolution:>4} px batch {batch:>3} impl={impl:<4} {batch / step.median_s:8.1f} img/s "
                             f"({step.median_ms:.0f} ms/step, peak {peak:.1f} GiB)")
            except Exception as exc:  # noqa: BLE001
                lines.append(f"{resolution:>4} px impl={impl}: FAILED {type(exc).__name__}: {exc}")
    return lines


def run_gpu_check(report_path: str, echo: Callable[[str], None] = print) -> bool:
    """Runs every step (skipping the GPU ones, with the reason, where CUDA is unavailable); returns True when
    every step that ran succeeded. The report is complete on disk after each step."""
    report = Report(report_path, echo)
    report.add("# stylegan GPU check")
    report.section("Environment")
    report.block(_environment())
    gpu = torch.cuda.is_available()
    reason = None if gpu else ("no CUDA device visible to torch "
                               f"(torch {torch.__version__}, CUDA runtime {torch.version.cuda or 'none'})")
    ok = True

    def step(title: str, fn: Callable[[], Optional[bool]]) -> None:
        nonlocal ok
        report.section(title)
        if reason:
            report.add(f"skipped: {reason}")
            return
        if report.time_left() <= 0:
            report.add(f"skipped: the {DEADLINE_S:.0f} s deadline has passed")
            ok = False
            return
        try:
            if fn() is False:
                ok = False
        except Exception:  # noqa: BLE001
            report.block(traceback.format_exc()[-4000:])
            ok = False

    step("Build the CUDA kernels and self-check them (every dtype)", lambda: build_and_selfcheck(report))
    tests = REPO / "tests" / "ops"

    def pytest_step():
        if not tests.is_dir():
            report.add(f"skipped: no tests at {tests} (run from a checkout of the repository)")
            return None
        run_command(report, "pytest", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                                str(tests)], STEP_LIMITS_S["pytest"])
        return None

    step("pytest -m cuda tests/ops", pytest_step)
    step("bias_act vs copy bandwidth", lambda: report.block("\n".join(bias_act_bandwidth(torch.device("cuda")))))
    step("stylegan bench ops --device cuda",
         lambda: run_command(report, "bench ops", [sys.executable, "-m", "stylegan", "bench", "ops", "--device", "cuda",
                                            "--malloc", "default", "--repeat", "5"], STEP_LIMITS_S["bench ops"]))
    step("Training images/s (the `stylegan train` step), 64 and 256 px",
         lambda: report.block("\n".join(train_points(torch.device("cuda")))))
    report.section("Done")
    report.add(f"total {time.time() - report.start:.0f} s; {'all steps that ran succeeded' if ok else 'see FAILED above'}"
               f"{'; GPU steps skipped: ' + reason if reason else ''}")
    return ok
