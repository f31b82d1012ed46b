"""Shared fixtures: the official small fixture (pickle + reference outputs) and the kernel-availability check."""
from __future__ import annotations

import json
from typing import Dict

import numpy as np
import pytest
import torch

from network_test_support import DATA, SMALL_PKL  # noqa: F401  (test modules import from there, not conftest)


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


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: torch's thread pool only adds synchronisation (much slower on a busy 2-core machine:
    docs/PERFORMANCE.md §5). Modules opt in with `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
