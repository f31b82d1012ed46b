"""No host synchronisation inside a CUDA training step: `Trainer.step` under `torch.cuda.set_sync_debug_mode('warn')`
must not warn (the loss terms stay on the device until a tick ends, training/tick_logger.py). On a machine without
CUDA the test is skipped with its reason: the check needs a GPU, there is nothing to measure on a CPU."""
from __future__ import annotations

import warnings

import pytest
import torch

from stylegan.training.loop import Trainer, deterministic_algorithms
from stylegan.training.schedule import images_at_lod

SYNC_WARNING = "called a synchronizing CUDA operation"  # torch's text for sync_debug_mode 'warn'


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: host syncs exist only on a GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_step_does_not_synchronise_with_the_host(tiny_cfg, precision):
    if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("bf16 needs compute capability >= 8.0")
    cfg = tiny_cfg(device="cuda", precision=precision, workers=0)
    trainer = Trainer(cfg, impl="auto", progress=False, log=lambda s: None)
    try:
        phase = trainer.phase(images_at_lod(cfg, 0.5))
        from stylegan.training.dataset import make_loader

        loader = make_loader(trainer.dataset, phase.batch, start=0, seed=cfg.seed, workers=0)
        with deterministic_algorithms(cfg.deterministic):
            trainer.step(phase, loader)  # warm-up: kernel selection, lazy initialisation
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    trainer.step(phase, loader)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message) for w in caught if SYNC_WARNING in str(w.message)]
        assert not syncs, syncs[:3]
    finally:
        trainer.close()
