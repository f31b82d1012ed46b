"""Constants and checks shared by the network tests.

A plain module (not conftest.py): several conftest.py files exist under tests/, and `from conftest import ...`
would bind whichever was imported first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

DATA = Path(__file__).parent / "data"
SMALL_PKL = DATA / "small.pkl"
# A generator small enough for many calls per test, large enough for 32 px, truncation and mixing to matter.
TINY_GENERATOR = dict(resolution=32, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16,
                      mapping_layers=2)

# The one warning 'auto' emits while a kernel is unavailable (it then uses the reference): expected in tests.
AUTO_FALLBACK_WARNING = "ignore:stylegan.ops.*kernel is unavailable:RuntimeWarning"


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
