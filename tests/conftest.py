"""Shared fixtures: the official small fixture (pickle + reference outputs) and the kernel-availability check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"
SMALL_PKL = DATA / "small.pkl"

# The one warning 'auto' emits while a kernel is unavailable (it then uses the reference): expected in tests.
AUTO_FALLBACK_WARNING = "ignore:stylegan.ops.*kernel is unavailable:RuntimeWarning"


@pytest.fixture(scope="session")
def small_official():
    """(G, D, Gs) NetworkStubs of tests/data/small.pkl (made by the original NVlabs TF code)."""
    from stylegan.formats.nvlabs_tf import read_official_pickle

    return read_official_pickle(SMALL_PKL)


@pytest.fixture(scope="session")
def small_io() -> Dict[str, torch.Tensor]:
    """Every array of tests/data/small_io.npz as a float32 tensor (official inputs and outputs)."""
    with np.load(DATA / "small_io.npz") as data:
        return {k: torch.from_numpy(np.array(data[k])) for k in data.files}


@pytest.fixture(scope="session")
def small_io_meta() -> dict:
    """tests/data/small_io.json: what each array is, the seeds and the suggested tolerances."""
    return json.loads((DATA / "small_io.json").read_text())


def cpu_kernels_unavailable() -> Optional[str]:
    """Why the CPU kernels of bias_act/upfirdn2d cannot run (None when both are built and implemented)."""
    from stylegan.ops.build import get_extension

    for op in ("bias_act", "upfirdn2d"):
        result = get_extension(op, "cpu")
        if result.module is None:
            return f"the {op} CPU kernel is unavailable: {result.error}"
    from stylegan import ops

    x = torch.randn(1, 2, 4, 4)
    try:
        ops.bias_act(x, torch.zeros(2), act="lrelu", impl="cpu")
        ops.upfirdn2d(x, ops.setup_filter([1, 2, 1]), impl="cpu")
    except NotImplementedError as exc:
        return f"the CPU kernels are not implemented yet ({type(exc).__name__}: {exc})"
    return None
