"""Builds and loads the CUDA emulator: cuda/*.cu compiled by g++ against tests/ops/emulation/cuda_shim.h.

The module it returns has the entry points of the real CUDA extensions (`bias_act`, `upfirdn2d`, taking CPU
tensors of all four CUDA dtypes) plus the emulator's controls, so the ops' own autograd Functions can drive the
emulated kernels exactly as they drive the GPU ones. Built once per source state into the ops build cache
($STYLEGAN_CACHE_DIR/ops), like the real kernels; see docs/GPU.md.
"""
from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import torch

from stylegan.ops import build

EMULATION_DIR = Path(__file__).resolve().parent / "emulation"
# Points the emulator at another copy of cuda/ (the mutation runs of tests/ops/emulation/mutations.py use it).
CUDA_DIR_ENV = "STYLEGAN_EMULATE_CUDA_DIR"
SOURCES = ["runtime.cpp", "controls.cpp", "selftest.cpp", "kernels_bias_act.cpp", "kernels_upfirdn2d.cpp", "module.cpp"]
# -O2: the emulated kernels run thousands of fibers per test; -fno-fast-math keeps IEEE behaviour like nvcc's
# defaults for double (the .cu files are built with --use_fast_math for float on a GPU; see docs/GPU.md).
CFLAGS = ["-O2", "-std=c++17", "-DSG_CUDA_EMULATION"]


def cuda_dir() -> Path:
    """The kernel sources the emulator compiles: the package's cuda/ unless $STYLEGAN_EMULATE_CUDA_DIR says."""
    return Path(os.environ[CUDA_DIR_ENV]) if os.environ.get(CUDA_DIR_ENV) else build.source_dir()


def _key() -> str:
    h = hashlib.sha256()
    files = sorted(EMULATION_DIR.rglob("*.h")) + sorted(EMULATION_DIR.glob("*.cpp"))
    files += sorted(p for p in cuda_dir().iterdir() if p.suffix in (".h", ".cu"))
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(str(cuda_dir()).encode())
    h.update(repr((CFLAGS, torch.__version__, sys.version_info[:2], sysconfig.get_config_var("SOABI"))).encode())
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def load() -> ModuleType:
    """The emulator extension (compiled on first use, about a minute on 2 cores; cached on disk after that)."""
    from torch.utils.cpp_extension import load as cpp_load

    name = f"stylegan_cuda_emulator_{_key()}"
    build_dir = build.cache_dir() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    return cpp_load(
        name=name,
        sources=[str(EMULATION_DIR / s) for s in SOURCES],
        # emulation/include first: its cuda_runtime.h / cuda_fp16.h / cuda_bf16.h are the shim
        extra_include_paths=[str(EMULATION_DIR / "include"), str(EMULATION_DIR), str(cuda_dir())],
        extra_cflags=CFLAGS,
        build_directory=str(build_dir),
        with_cuda=False,
        verbose=False,
    )
