"""Lazy JIT build of the op extensions (CPU and CUDA) with ninja, cached on disk and safe across processes.

Why this shape:
- Nothing compiles at import: the first op call that needs a kernel builds it (`get_extension`).
- The cache key hashes every source and header in `stylegan.cuda`, the compiler flags, the torch version and the
  Python ABI (and the GPU architectures for CUDA), so an unchanged tree never rebuilds and a changed one never
  loads a stale binary.
- Concurrent builders (DDP ranks, pytest-xdist) serialise on an `flock` held on a lock file; the OS releases it
  when the holder dies, so a killed build cannot hang later runs. The build itself runs in a private temporary
  folder that is renamed into place only when complete, so nobody ever imports a half-written module.
- A failed build is remembered for the process (the only global mutable state of the package: the build cache),
  its log written next to the cache, and reported once.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.resources
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..cache_dirs import CACHE_ENV, cache_subdir

OPS_ENV = "STYLEGAN_OPS"  # 'ref' forces the pure-torch reference everywhere
VALID_IMPLS = ("auto", "cpu", "cuda", "ref")

CPU_CFLAGS = ["-O3", "-std=c++17", "-fno-math-errno", "-march=native"]
CUDA_CFLAGS = ["-O3", "-std=c++17", "-DSTYLEGAN_WITH_CUDA"]
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "-DSTYLEGAN_WITH_CUDA"]


class OpBuildError(RuntimeError):
    """A kernel extension could not be compiled or loaded; the message names the build log."""


class KernelSelfCheckError(RuntimeError):
    """A kernel disagreed with the reference in its first-use self-check (ops/selfcheck.py)."""


@dataclass(frozen=True)
class BuildResult:
    module: Optional[types.ModuleType]
    error: Optional[str]  # one-line reason when module is None
    log_path: Optional[Path]


# The op build cache: (op, device_type) -> result. The one piece of global mutable state the package keeps.
_BUILD_CACHE: Dict[Tuple[str, str], BuildResult] = {}
_WARNED: set = set()
# First-use self-check verdicts, (op, device, dtype) -> CheckResult; per process on purpose (see ops/selfcheck.py).
_SELF_CHECKS: Dict[Tuple[str, str, torch.dtype], object] = {}
# Device types whose kernels are self-checked before first use: CUDA, whose kernels CI can only emulate. (The CPU
# kernels run in CI on every change; tests add 'cpu' here to exercise the logic without a GPU.)
SELF_CHECK_DEVICE_TYPES: Tuple[str, ...] = ("cuda",)


def source_dir() -> Path:
    """Folder holding the kernel sources (works for editable installs and built wheels alike)."""
    return Path(str(importlib.resources.files("stylegan.cuda")))


def cache_dir() -> Path:
    """Root of the on-disk build cache: the package cache's `ops` folder (stylegan/cache_dirs.py)."""
    return cache_subdir("ops")


def forced_reference() -> bool:
    """True when the user forced the pure-torch reference with STYLEGAN_OPS=ref."""
    return os.environ.get(OPS_ENV, "").strip().lower() == "ref"


def _sources(op: str, device_type: str) -> List[Path]:
    src = source_dir()
    files = [src / f"{op}.cpp"]
    if device_type == "cuda":
        files.append(src / f"{op}.cu")
    return files


def _cuda_arch_tag() -> str:
    if not torch.cuda.is_available():
        return "nogpu"
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return "-".join(f"sm{a}{b}" for a, b in caps)


def _build_key(op: str, device_type: str) -> str:
    """Hash of everything that changes the binary: sources, headers, flags, torch, Python ABI, GPU arch."""
    h = hashlib.sha256()
    src = source_dir()
    for path in sorted(src.iterdir()):
        # The op's own sources and headers plus the shared ones (common*.h): editing one op rebuilds only it.
        if path.suffix in (".h", ".cuh", ".cpp", ".cu") and (path.stem == op or path.stem.startswith("common")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    flags = CPU_CFLAGS if device_type == "cpu" else CUDA_CFLAGS + NVCC_FLAGS
    h.update(repr((op, device_type, flags, torch.__version__, torch.version.cuda)).encode())
    h.update(repr((sys.version_info[:2], sysconfig.get_config_var("SOABI"))).encode())
    if device_type == "cuda":
        h.update(_cuda_arch_tag().encode())
    else:  # -march=native: a binary built on one CPU may hold instructions another lacks (SIGILL, no fallback)
        h.update(cpu_identity().encode())
    return h.hexdigest()[:16]


def cpu_identity() -> str:
    """The CPU's instruction-set features (the `flags` of /proc/cpuinfo, sorted), which -march=native compiles for;
    elsewhere the platform's processor name. Part of the CPU build key, so a cache shared between machines (an NFS
    home, a container built elsewhere, mixed cluster nodes) never hands one CPU another's binary."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86 / ARM spelling
                    return " ".join(sorted(set(line.split(":", 1)[1].split())))
    except OSError:
        pass
    import platform
    return f"{platform.machine()} {platform.processor()}"


def _module_name(op: str, device_type: str, key: str) -> str:
    return f"stylegan_{op}_{device_type}_{key}"


def _import_from(path: Path, name: str) -> types.ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _compile(op: str, device_type: str, name: str, build_dir: Path) -> types.ModuleType:
    """Compiles with ninja into build_dir and returns the imported module."""
    from torch.utils.cpp_extension import load

    kwargs = dict(
        name=name,
        sources=[str(p) for p in _sources(op, device_type)],
        extra_include_paths=[str(source_dir())],
        build_directory=str(build_dir),
        verbose=False,
    )
    if device_type == "cuda":
        kwargs.update(extra_cflags=CUDA_CFLAGS, extra_cuda_cflags=NVCC_FLAGS, with_cuda=True)
    else:
        kwargs.update(extra_cflags=CPU_CFLAGS, with_cuda=False)
    return load(**kwargs)


def _build(op: str, device_type: str) -> BuildResult:
    root = cache_dir()
    key = _build_key(op, device_type)
    name = _module_name(op, device_type, key)
    final_dir = root / name
    so_path = final_dir / f"{name}.so"  # the name torch.utils.cpp_extension gives it
    log_path = root / f"{name}.log"

    if device_type == "cuda" and not torch.cuda.is_available():
        return BuildResult(None, "torch has no usable CUDA device", None)
    if not all(p.exists() for p in _sources(op, device_type)):
        return BuildResult(None, f"kernel sources for {op!r} not found in {source_dir()}", None)

    if so_path.exists():  # built before (final_dir appears by an atomic rename): import it, even from a read-only cache
        return _import_built(so_path, name, log_path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f"{name}.lock", "w")
    except OSError as exc:  # a read-only or foreign cache: build into a private folder for this process
        private = Path(tempfile.mkdtemp(prefix="stylegan-ops-"))
        print(f"stylegan: the kernel cache {root} is not writable ({exc.strerror or exc}); building into {private} "
              f"for this process only (set {CACHE_ENV} to a writable folder to keep the build)", file=sys.stderr,
              flush=True)
        root, final_dir = private, private / name
        so_path, log_path = final_dir / so_path.name, private / log_path.name
        lock = open(root / f"{name}.lock", "w")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the OS if this process dies
        if not so_path.exists():
            print(f"stylegan: building the {device_type.upper()} kernel for {op} (first use; cached in {root}) ...",
                  file=sys.stderr, flush=True)
            tmp_dir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
            try:
                module = _compile(op, device_type, name, tmp_dir)
                if not (tmp_dir / so_path.name).exists():
                    raise OpBuildError(f"the build finished without producing {so_path.name}")
                if final_dir.exists():
                    shutil.rmtree(final_dir)
                os.replace(tmp_dir, final_dir)  # the loaded module stays mapped; later processes import final_dir
                return BuildResult(module, None, None)
            except Exception as exc:  # compiler missing, compile error, ...: report, never crash the caller
                shutil.rmtree(tmp_dir, ignore_errors=True)
                written = _write_log(log_path, f"building {name} from {source_dir()} failed:\n{exc}\n")
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                return BuildResult(None, f"build failed ({first[:200]})", written)
    return _import_built(so_path, name, log_path)


def _import_built(so_path: Path, name: str, log_path: Path) -> BuildResult:
    try:
        return BuildResult(_import_from(so_path, name), None, None)
    except Exception as exc:
        written = _write_log(log_path, f"importing {so_path} failed:\n{exc}\n")
        return BuildResult(None, f"import failed ({exc})", written)


def _write_log(log_path: Path, text: str) -> Optional[Path]:
    """The build log's path, or None when it cannot be written (a read-only cache must not turn into a crash)."""
    try:
        log_path.write_text(text)
        return log_path
    except OSError:
        return None


def get_extension(op: str, device_type: str) -> BuildResult:
    """Returns the compiled extension for `op` on 'cpu' or 'cuda' (building it once), or why it is unavailable."""
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")
    cache_key = (op, device_type)
    if cache_key not in _BUILD_CACHE:
        _BUILD_CACHE[cache_key] = _build(op, device_type)
    return _BUILD_CACHE[cache_key]


def _kernel_supports(op: str, device_type: str, dtype: torch.dtype) -> bool:
    """Whether the op's kernel takes this dtype (others raise their own TypeError; nothing to check)."""
    import importlib

    # import_module: the package's `bias_act` / `upfirdn2d` attributes are the functions, not the modules
    tables = {"bias_act": "_KERNEL_DTYPES", "upfirdn2d": "KERNEL_DTYPES"}
    if op not in tables:
        return False
    table = getattr(importlib.import_module(f"stylegan.ops.{op}"), tables[op])
    return dtype in table.get(device_type, ())


def clear_cache() -> None:
    """Forgets in-process build results and self-check verdicts (tests use it to force a fresh lookup)."""
    _BUILD_CACHE.clear()
    _WARNED.clear()
    _SELF_CHECKS.clear()


def self_check(op: str, module, device: torch.device, dtype: torch.dtype):
    """The first-use verdict on `module`'s kernel for (op, device, dtype): computed once per process, then cached."""
    from . import selfcheck

    key = (op, str(device), dtype)
    if key not in _SELF_CHECKS:
        _SELF_CHECKS[key] = selfcheck.check(op, module, device, dtype)
    return _SELF_CHECKS[key]


def resolve_impl(op: str, impl: str, device: torch.device,
                 dtype: Optional[torch.dtype] = None) -> Tuple[str, Optional[types.ModuleType]]:
    """Chooses the implementation for one op call: returns ('ref', None) or (device_type, extension module).

    'auto' takes the kernel for the tensor's device, or falls back to the reference after ONE warning;
    'cpu'/'cuda' demand that kernel (OpBuildError naming the log otherwise); 'ref' is pure torch.
    With `dtype`, a kernel on a SELF_CHECK_DEVICE_TYPES device is first checked against the reference (once per
    op, device and dtype): on a mismatch 'auto' warns once and uses the reference for that combination from then
    on, and 'cuda' raises KernelSelfCheckError.
    """
    if impl not in VALID_IMPLS:
        raise ValueError(f"impl must be one of {VALID_IMPLS}, got {impl!r}")
    if impl == "ref" or forced_reference():
        return "ref", None
    device_type = device.type
    if impl in ("cpu", "cuda") and impl != device_type:
        raise ValueError(f"impl={impl!r} was requested but the tensors are on {device_type!r}")
    if device_type not in ("cpu", "cuda"):
        if impl == "auto":
            return "ref", None
        raise ValueError(f"no kernel for device {device_type!r}; use impl='ref'")
    result = get_extension(op, device_type)
    if result.module is not None:
        if dtype is None or device_type not in SELF_CHECK_DEVICE_TYPES or not _kernel_supports(op, device_type, dtype):
            return device_type, result.module
        verdict = self_check(op, result.module, device, dtype)
        if verdict.ok:
            return device_type, result.module
        message = (f"stylegan.ops.{op}: the {device_type} kernel failed its self-check against the reference on "
                   f"{device} for {dtype}: {verdict.problem}")
        if impl != "auto":
            raise KernelSelfCheckError(f"{message}. Use impl='auto' or 'ref'; `stylegan doctor` runs the full check.")
        if (op, str(device), dtype) not in _WARNED:
            _WARNED.add((op, str(device), dtype))
            import warnings

            warnings.warn(f"{message}; using the pure-torch reference for this device and dtype. Please report it "
                          f"with the output of `stylegan doctor`.", RuntimeWarning, stacklevel=3)
        return "ref", None
    where = f"; build log: {result.log_path}" if result.log_path else ""
    if impl != "auto":
        raise OpBuildError(f"stylegan.ops.{op}: the {device_type} kernel is unavailable: {result.error}{where}")
    if (op, device_type) not in _WARNED:
        _WARNED.add((op, device_type))
        import warnings

        warnings.warn(
            f"stylegan.ops.{op}: the {device_type} kernel is unavailable ({result.error}{where}); using the "
            f"slower pure-torch reference. To fix: install a C++ compiler and ninja (pip install ninja) "
            f"{'and the CUDA toolkit matching torch ' if device_type == 'cuda' else ''}then run `stylegan doctor`; "
            f"set {OPS_ENV}=ref to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
    return "ref", None
