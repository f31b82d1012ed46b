"""Multi-process training: torchrun with 2 CPU processes (gloo) against one process with the same global batch.

The runs are float64 (tests/training/ddp_worker.py sets the default dtype), so "the same result" can be checked to
~1e-12 instead of float32 round-off; only w_avg is float32 by design (official dlatent_avg is float32).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from stylegan.training.dataset import InfiniteSampler
from stylegan.training.distributed import DistContext, init_from_env

WORKER = Path(__file__).with_name("ddp_worker.py")

# Batch 8 on 2 ranks: 4 per rank = one minibatch-stddev group of 4, i.e. the same groups as one process.
TINY = dict(resolution=16, lod_initial_resolution=8, lod_training_kimg=0.02, lod_transition_kimg=0.02, batch=8,
            fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16, mapping_layers=2,
            tick_kimg=0.016, snapshot_ticks=2, workers=0, glyphs_count=48, keep_checkpoints=10, total_kimg=0.064)

needs_gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available in this torch build")


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _run(tmp_path: Path, name: str, ranks: int, timeout: int = 300, **spec_kw) -> dict:
    """Run the worker on `ranks` processes (torchrun when > 1); returns {rank: dump}."""
    config = dict(TINY, outdir=str(tmp_path / name), cache_dir=str(tmp_path / "cache"))
    config.update(spec_kw.pop("config", {}))
    spec = dict(config=config, dump=str(tmp_path / name / "dump"), float64=True, **spec_kw)
    cmd = [sys.executable, str(WORKER), json.dumps(spec)]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] + cmd[1:]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {r: torch.load(tmp_path / name / "dump" / f"rank{r}.pt", weights_only=False) for r in range(ranks)}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if k != "w_avg")


def _assert_same_weights(a: dict, b: dict, tol: float) -> None:
    for net in ("G", "D", "G_ema"):
        assert _max_diff(a[net], b[net]) <= tol, net
        if "w_avg" in a[net]:  # float32 by design: round-off of a float32 batch mean
            assert torch.allclose(a[net]["w_avg"], b[net]["w_avg"], atol=1e-6), net


def test_context_defaults_are_single_process():
    ctx = DistContext()
    x = torch.arange(8)
    assert not ctx.enabled and ctx.is_main and torch.equal(ctx.rows(x), x)
    assert ctx.any(True, torch.device("cpu")) and not ctx.any(False, torch.device("cpu"))
    assert ctx.mean_of({"a": 1.5}, torch.device("cpu")) == {"a": 1.5}
    two = DistContext(rank=1, world_size=2)
    assert two.rows(x).tolist() == [1, 3, 5, 7]


def test_init_from_env_errors(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("auto") == (DistContext(), "auto")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="launch with torchrun"):
        init_from_env("cpu")
    for k, v in dict(RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1").items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match="cuda:LOCAL_RANK"):
        init_from_env("cuda:1")


def test_sampler_ranks_take_strided_rows_of_the_global_batch():
    """Rank r's batch = rows r::W of the global batch, from any global start (resume with other rank counts)."""
    for start in (0, 12, 20):
        whole = iter(InfiniteSampler(10, seed=1, start=start))
        global_batches = [[next(whole) for _ in range(6)] for _ in range(3)]
        shards = [iter(InfiniteSampler(10, rank=r, world_size=3, seed=1, start=start)) for r in range(3)]
        for batch in global_batches:
            local = [[next(shards[r]) for _ in range(2)] for r in range(3)]
            assert [local[i % 3][i // 3] for i in range(6)] == batch


@needs_gloo
def test_two_ranks_match_one_process(tmp_path):
    """WGAN-GP (double backward under DDP), mirror, labels, style mixing, through a fade-in 8 -> 16 px."""
    extra = dict(config=dict(mirror_augment=True, cond=True))
    two = _run(tmp_path, "two", 2, **extra)
    one = _run(tmp_path, "one", 1, **extra)[0]
    # Both ranks end bit-identical (DDP averages the same gradients, EMA and w_avg follow).
    for net in ("G", "D", "G_ema"):
        assert _max_diff(two[0][net], two[1][net]) == 0.0, net
        if "w_avg" in two[0][net]:
            assert torch.equal(two[0][net]["w_avg"], two[1][net]["w_avg"]), net
    # ... and equal to one process with the same global batch, to float64 round-off.
    assert two[0]["trajectory"] == one["trajectory"]
    assert [lod for _, lod, _ in one["trajectory"]][-1] == 0.0 and any(0 < t[1] < 1 for t in one["trajectory"])
    _assert_same_weights(two[0], one, tol=1e-10)
    for k in ("loss_G", "loss_D", "penalty"):  # logged losses are rank averages = the global means
        assert two[0]["last_log"][k] == pytest.approx(one["last_log"][k], rel=1e-9, abs=1e-12)
    # Only rank 0 wrote files: one log line per tick, one set of checkpoints.
    lines = (tmp_path / "two" / "log.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "log.jsonl").read_text().splitlines()) == 4
    assert not list((tmp_path / "two").glob(".write-test*"))
    ck = torch.load(sorted((tmp_path / "two").glob("checkpoint-*.pt"))[-1], weights_only=True)
    assert ck["training"]["world_size"] == 2 and ck["training"]["images_shown"] == 64


@needs_gloo
def test_two_ranks_match_one_process_with_ada(tmp_path):
    """ADA on (WGAN-GP: the penalty's double backward through the augmentation): the augmentation's draws for the
    global batch, r_t as the mean over ranks, so p and the weights follow one process."""
    extra = dict(config=dict(augment="ada", ada_kimg=0.1), ada_target=-1.0)
    two = _run(tmp_path, "two", 2, **extra)
    one = _run(tmp_path, "one", 1, **extra)[0]
    assert two[0]["augment_p"] == two[1]["augment_p"] == one["augment_p"] == pytest.approx(2 * 8 * 4 / 100)  # 8 steps
    for net in ("G", "D", "G_ema"):
        assert _max_diff(two[0][net], two[1][net]) == 0.0, net
    _assert_same_weights(two[0], one, tol=1e-10)
    assert two[0]["last_log"]["ada_rt"] == pytest.approx(one["last_log"]["ada_rt"], abs=1e-12)


@needs_gloo
def test_resume_with_a_different_number_of_ranks(tmp_path):
    """logistic + R1: 2 ranks stop at 24 images, 1 process resumes to the end == one uninterrupted process."""
    extra = dict(config=dict(loss="logistic", r1_gamma=1.0))
    _run(tmp_path, "split", 2, stop_at=24, **extra)
    resumed = _run(tmp_path, "split", 1, resume="latest", **extra)[0]
    whole = _run(tmp_path, "whole", 1, **extra)[0]
    assert resumed["images_shown"] == whole["images_shown"] == 64
    assert resumed["trajectory"] == [t for t in whole["trajectory"] if t[0] > 24]
    _assert_same_weights(resumed, whole, tol=1e-10)


@needs_gloo
def test_torchrun_cli(tmp_path):
    """The README command shape: torchrun ... -m stylegan train; rank 0 reports, the checkpoint loads."""
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "stylegan",
           "train", "--outdir", str(out), "--kimg", "0.032", "--resolution", "16", "--phase-kimg", "0.008",
           "--batch", "8", "--fmap-base", "64", "--fmap-max", "16", "--latent", "16", "--tick", "0.016",
           "--workers", "0", "--glyphs", "48", "--cache-dir", str(tmp_path / "cache"), "--impl", "ref", "--quiet",
           "--device", "cpu", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("on 2 processes (cpu)") == 1 and proc.stdout.count("Done: kimg") == 1
    import stylegan
    nets = stylegan.load(sorted(out.glob("checkpoint-*.pt"))[-1])
    assert nets.generator.config.resolution == 16


def test_cli_rejects_cuda_index_under_torchrun(monkeypatch, tmp_path):
    from stylegan.cli.train import train as train_cmd
    for k, v in dict(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1").items():
        monkeypatch.setenv(k, v)
    res = CliRunner().invoke(train_cmd, ["--outdir", str(tmp_path / "o"), "--device", "cuda:1", "--quiet"])
    assert res.exit_code == 2 and "cuda:LOCAL_RANK" in res.output
