"""Shared tiny training configuration: a network small enough that a step takes well under a second on 2 cores."""
import pytest

from stylegan.training.config import TrainConfig

TINY = dict(resolution=16, lod_initial_resolution=8, lod_training_kimg=0.02, lod_transition_kimg=0.02, batch=4,
            fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16, mapping_layers=2,
            tick_kimg=0.016, snapshot_ticks=2, workers=0, glyphs_count=48, keep_checkpoints=3)

TINY_CLI = ["--resolution", "16", "--phase-kimg", "0.02", "--batch", "4", "--fmap-base", "64", "--fmap-max", "16",
            "--latent", "16", "--mapping-layers", "2", "--tick", "0.016", "--snap", "2", "--workers", "0", "--glyphs", "48", "--impl", "ref",
            "--quiet"]


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(**kw):
        base = dict(TINY, outdir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), total_kimg=0.064)
        base.update(kw)
        return TrainConfig(**base)
    return make


@pytest.fixture
def tiny_cli():
    return list(TINY_CLI)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster single-threaded on a shared 2-core machine (no oversubscription;
    docs/PERFORMANCE.md §5)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
