"""Shared fixtures for the op tests: the `device` parameter (CUDA skipped with a visible reason when absent).
`single_thread` comes from tests/conftest.py."""
from __future__ import annotations

import pytest
import torch

from stylegan.ops import build


def cuda_skip_reason() -> str:
    """Why CUDA tests cannot run here (empty string when they can)."""
    if torch.version.cuda is None:
        return f"CUDA not available: torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return "CUDA not available: torch.cuda.is_available() is False (no GPU or driver visible)"
    return ""


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> torch.device:
    """Each op test runs once per device; the CUDA run is skipped, with the reason, where there is no GPU."""
    if request.param == "cuda" and cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    return torch.device(request.param)


@pytest.fixture
def no_forced_reference(monkeypatch):
    """Tests of the kernel path must not be silently turned into reference runs by STYLEGAN_OPS=ref."""
    monkeypatch.delenv(build.OPS_ENV, raising=False)
