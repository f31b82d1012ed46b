"""Timing helpers shared by every `stylegan bench ...` table: medians, copy bandwidth, machine facts, allocator.

Why these exist: on a CPU the glibc allocator decides whether every fresh output first pays page faults, which can
change a benchmark by 10x (see docs). So a table always states the machine, the thread count and the allocator
settings, and `run_with_env` re-executes a measurement in a subprocess under a chosen allocator environment (the
variables only take effect at process start). Ratios are only meaningful between numbers of the same run.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch

# glibc malloc tuned to keep freed memory mapped: big blocks are never returned to the OS, so fresh tensors reuse
# already-faulted pages. "default" means these variables are absent.
TUNED_MALLOC_ENV: Dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "0",
}
MALLOC_SETTINGS = ("default", "tuned")


@dataclass(frozen=True)
class Timing:
    """Seconds per call over `runs` timed calls (after warm-up). `cpu_median_s`: this process's CPU time per call
    (user + system, all its threads): on a CPU shared with other jobs it counts the work done rather than the
    waiting, so ratios of it move less with the load than wall-time ratios."""

    median_s: float
    min_s: float
    runs: int
    cpu_median_s: float = float("nan")

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3


def synchronize(device: torch.device) -> None:
    """Waits for queued GPU work so a wall-clock interval covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], repeat: int = 5, warmup: int = 1,
            device: torch.device = torch.device("cpu"), budget_s: Optional[float] = None) -> Timing:
    """Returns the median (and min) wall time of `fn()` over `repeat` calls, after `warmup` untimed calls.

    The median, not the mean: other processes on a shared machine produce outliers in one direction only.
    budget_s caps the timed calls at about budget_s seconds (at least one), judged by the last warm-up call, so
    a pathologically slow reference cannot stall a whole table; `Timing.runs` says how many were timed.
    """
    if repeat < 1:
        raise ValueError(f"measure: repeat must be >= 1, got {repeat}")
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        synchronize(device)
        if budget_s is not None:
            repeat = max(1, min(repeat, int(budget_s / max(time.perf_counter() - start, 1e-9))))
    synchronize(device)
    times, cpu_times = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return Timing(statistics.median(times), min(times), repeat, statistics.median(cpu_times))


def copy_bandwidth_gbps(device: torch.device = torch.device("cpu"), nbytes: int = 128 << 20,
                        repeat: int = 5) -> float:
    """Returns the measured copy bandwidth in GB/s (bytes read + written) into an already-mapped buffer.

    This is the memory-bandwidth floor that elementwise ops are compared against: `dst` is written before timing,
    so no page faults are counted, whatever the allocator settings. On CPU the copy is timed with torch's thread
    count and with one thread, and the faster is kept: on a busy shared machine a parallel region can stall on a
    descheduled thread, which says nothing about the memory system.
    """
    n = max(1, nbytes // 4)
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    thread_counts = [torch.get_num_threads()] if device.type != "cpu" else sorted({torch.get_num_threads(), 1})
    best = 0.0
    saved = torch.get_num_threads()
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            timing = measure(lambda: dst.copy_(src), repeat=repeat, warmup=2, device=device)
            best = max(best, 2 * n * 4 / timing.median_s / 1e9)
    finally:
        torch.set_num_threads(saved)
    return best


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def malloc_settings(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The allocator settings of a process: 'default', 'tuned' or 'custom', plus the variables that are set."""
    environ = os.environ if environ is None else environ
    present = {k: environ[k] for k in TUNED_MALLOC_ENV if k in environ}
    if not present:
        name = "default"
    elif present == TUNED_MALLOC_ENV:
        name = "tuned"
    else:
        name = "custom"
    return {"name": name, **present}


def machine_info(device: torch.device = torch.device("cpu")) -> Dict[str, object]:
    """Facts a benchmark table must state: CPU model, cores, torch threads, torch version, allocator, GPU."""
    info: Dict[str, object] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "malloc": malloc_settings(),
        "device": str(device),
    }
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info: Dict[str, object]) -> str:
    """One line for the top of a table."""
    malloc = dict(info["malloc"])  # type: ignore[arg-type]
    name = malloc.pop("name")
    env = " ".join(f"{k}={v}" for k, v in malloc.items())
    line = (f"{info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']} with "
            f"{info['torch_threads']} threads; malloc: {name}{f' ({env})' if env else ''}")
    if "gpu" in info:
        line += f"; GPU: {info['gpu']}"
    return line


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (Markdown pipes), numbers right-aligned: pasteable into notes and PRs."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]

    def line(r: List[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in
                                 enumerate(zip(r, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if numeric[i] else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def env_for_malloc(setting: str, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A copy of the environment with the allocator variables set ('tuned') or removed ('default')."""
    if setting not in MALLOC_SETTINGS:
        raise ValueError(f"malloc setting must be one of {MALLOC_SETTINGS}, got {setting!r}")
    env = dict(os.environ if base is None else base)
    for key in TUNED_MALLOC_ENV:
        env.pop(key, None)
    if setting == "tuned":
        env.update(TUNED_MALLOC_ENV)
    return env


class SubprocessError(RuntimeError):
    """A re-executed measurement failed; the message carries the end of its output."""


def write_point(json_out: str, measure_fn: Callable[[], Dict[str, object]]) -> None:
    """The child side of run_with_env: measure_fn()'s result plus machine_info() into `json_out`; a ValueError
    (a bad option) exits with its one line for the parent to relay, not a traceback."""
    try:
        result = measure_fn()
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    result["machine"] = machine_info()
    with open(json_out, "w", encoding="utf-8") as f:
        json.dump(result, f)


def run_with_env(module: str, args: Sequence[str], env: Dict[str, str], timeout: float = 3600) -> dict:
    """Runs `python -m module *args --json-out FILE` under `env` and returns the JSON it wrote.

    Why a subprocess: allocator variables such as MALLOC_MMAP_THRESHOLD_ are read by glibc once, at start-up.
    """
    with tempfile.TemporaryDirectory(prefix="stylegan-bench-") as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, "-m", module, *args, "--json-out", out]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out):
            tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
            raise SubprocessError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)

