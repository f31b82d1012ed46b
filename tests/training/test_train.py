"""End-to-end training: tiny CPU run through one fade-in, exact resume, interruption, atomic checkpoints."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan.cli.train import train as train_cmd
from stylegan.training import checkpoint as ckpt_mod
from stylegan.training.checkpoint import atomic_torch_save, list_checkpoints, load_checkpoint
from stylegan.training.loop import Trainer, train


def test_cli_tiny_run_8_to_16(tmp_path, tiny_cli):
    out = tmp_path / "run"
    res = CliRunner().invoke(train_cmd, ["--outdir", str(out), "--kimg", "0.064", "--cache-dir", str(tmp_path / "c"),
                                         "--mirror", *tiny_cli])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Done: kimg 0.1, lod 0" in res.output
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(recs) == 4
    for r in recs:
        for k in ("kimg", "images_shown", "lod", "resolution", "batch", "loss_G", "loss_D", "penalty",
                  "sec_per_kimg", "img_per_s", "rss_MiB", "peak_MiB"):
            assert k in r
        assert all(math.isfinite(r[k]) for k in ("loss_G", "loss_D", "penalty"))
        assert r["penalty"] > 0  # WGAN-GP penalty is computed
    assert [r["images_shown"] for r in recs] == [16, 32, 48, 64]
    assert [r["resolution"] for r in recs] == [8, 16, 16, 16]
    # snapshot ticks (every 2nd) at >= 16 px log the SWD of G_ema
    assert "swd_avg" not in recs[0] and "swd_avg" not in recs[2]
    assert recs[1]["swd_avg"] > 0 and recs[3]["swd_avg"] > 0 and "swd_level_16" in recs[3]
    assert recs[0]["lod"] == 1.0 and 0 < recs[1]["lod"] < 1 and recs[-1]["lod"] == 0.0
    ck = list_checkpoints(out)
    assert ck and ck[-1].name == "checkpoint-0000000064.pt"
    payload = torch.load(ck[-1], weights_only=True)
    assert payload["format_version"] == 1 and {"G", "D", "G_ema", "G_config", "D_config"} <= set(payload)
    t = payload["training"]
    assert t["images_shown"] == 64 and t["lod"] == 0.0 and isinstance(t["train_config"], str)
    assert torch.equal(t["w_avg"], payload["G"]["w_avg"]) and t["w_avg"].abs().sum() > 0
    # G_ema differs from G (it is a running average), but not wildly: it is a weighted mean of G's past weights, and
    # Adam with beta1 = 0 moves a weight by at most lr * sqrt(t) at step t (here lr 0.001, 16 steps of batch 4).
    assert not torch.equal(payload["G"]["mapping.layers.0.weight"], payload["G_ema"]["mapping.layers.0.weight"])
    bound = 0.001 * sum(math.sqrt(step) for step in range(1, t["images_shown"] // 4 + 1))
    for name, value in payload["G"].items():
        gap = float((value - payload["G_ema"][name]).abs().max())
        assert gap <= bound, f"G_ema.{name} is {gap:.4f} from G; expected at most {bound:.4f}"
    assert Image.open(out / "reals.png").size == (128, 32)
    fakes = Image.open(out / "fakes000000.png")
    assert fakes.size == (128, 64)  # 8 columns x (2 rows psi 1 + 2 rows psi 0.7), 16 px
    import stylegan.loading as loading
    nets = loading.load(ck[-1])
    assert nets.generator.config.resolution == 16 and nets.generator.config.mapping_layers == 2
    # `--resume latest` with only --outdir and a longer --kimg: the rest of the config comes from the checkpoint
    res = CliRunner().invoke(train_cmd, ["--outdir", str(out), "--resume", "latest", "--kimg", "0.08", "--impl", "ref",
                                         "--quiet", "--workers", "0"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Resumed from" in res.output and "Done: kimg 0.1" in res.output
    assert torch.load(list_checkpoints(out)[-1], weights_only=True)["training"]["images_shown"] == 80
    saved = json.loads((out / "config.json").read_text())
    assert saved["fmap_base"] == 64 and saved["total_kimg"] == 0.08 and saved["mirror_augment"] is True


def _weights(path):
    p = torch.load(path, weights_only=True)
    return {k: p[k] for k in ("G", "D", "G_ema")}, p["training"]


def test_resume_equals_uninterrupted(tiny_cfg, tmp_path):
    small = dict(total_kimg=0.048, lod_training_kimg=0.012, lod_transition_kimg=0.012)
    full = train(tiny_cfg(outdir=str(tmp_path / "a"), **small), impl="ref", progress=False, log=lambda s: None)
    # stop inside the fade-in (lod in (0, 1)), then resume twice to cross the end-of-fade Adam reset
    part1 = train(tiny_cfg(outdir=str(tmp_path / "b"), **small), impl="ref", progress=False, stop_at_images=20,
                  log=lambda s: None)
    assert part1.status == "stopped" and part1.images_shown == 20 and 0 < part1.lod < 1
    part2 = train(tiny_cfg(outdir=str(tmp_path / "b"), **small), resume="latest", impl="ref", progress=False,
                  stop_at_images=32, log=lambda s: None)
    assert part2.lod == 0.0
    part3 = train(tiny_cfg(outdir=str(tmp_path / "b"), **small), resume=str(tmp_path / "b"), impl="ref",
                  progress=False,
                  log=lambda s: None)
    assert part3.status == "done"
    assert part1.trajectory + part2.trajectory + part3.trajectory == full.trajectory
    wa, ta = _weights(full.checkpoint)
    wb, tb = _weights(part3.checkpoint)
    for net in wa:
        for k in wa[net]:
            assert torch.equal(wa[net][k], wb[net][k]), f"{net}.{k} differs after resume"
    assert ta["images_shown"] == tb["images_shown"] == 48
    for k in ("opt_G", "opt_D"):
        for pid, st in ta[k]["state"].items():
            assert torch.equal(st["exp_avg"], tb[k]["state"][pid]["exp_avg"])
    # and the logs agree tick by tick (same cadence, same losses)
    la = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [(r["images_shown"], r["lod"]) for r in la] == [(r["images_shown"], r["lod"]) for r in lb]
    assert la[-1]["loss_G"] == lb[-1]["loss_G"]


def test_sigint_writes_checkpoint_and_returns(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(total_kimg=10.0)
    trainer = Trainer(cfg, impl="ref", progress=False, log=lambda s: None)
    real_step = trainer.step
    calls = []

    def step(phase, loader):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(phase, loader)

    monkeypatch.setattr(trainer, "step", step)
    before = signal.getsignal(signal.SIGINT)
    result = trainer.run()
    assert result.status == "interrupted" and result.images_shown == 12
    assert result.checkpoint.name == "checkpoint-0000000012.pt"
    assert load_checkpoint(result.checkpoint)["training"]["images_shown"] == 12
    assert signal.getsignal(signal.SIGINT) is before


def test_crash_between_write_and_rename_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint-0000000001.pt"
    atomic_torch_save({"training": {"v": 1}, "G": {"w": torch.ones(3)}}, path)

    def crash(tmp):
        assert os.path.getsize(tmp) > 0
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(ckpt_mod, "_before_replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"training": {"v": 2}, "G": {"w": torch.zeros(3)}}, path)
    assert load_checkpoint(path)["training"]["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# The child writes checkpoint 1, then stops checkpoint 2 at a given fraction of its bytes (the temp file open and
# flushed), says so, and waits to be killed: the kill lands mid-write by construction, not by timing.
_STALLED_WRITER = textwrap.dedent("""
    import os, sys, time, torch
    from stylegan.training.checkpoint import atomic_torch_save

    path, fraction = sys.argv[1], float(sys.argv[2])
    w = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0))
    atomic_torch_save({"training": {"i": 1}, "G": {"w": w + 1}}, path)

    class Stalled:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def write(self, data):
            n = int(len(data) * fraction)
            self.f.write(data[:n])
            self.f.flush()
            print("stalled", n, len(data), flush=True)
            time.sleep(600)

    real_fdopen = os.fdopen
    os.fdopen = lambda fd, *args, **kwargs: Stalled(real_fdopen(fd, *args, **kwargs))
    atomic_torch_save({"training": {"i": 2}, "G": {"w": w + 2}}, path)
    print("finished", flush=True)
""")


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_sigkill_during_checkpoint_write_leaves_previous_loadable(tmp_path, fraction):
    """SIGKILL while checkpoint 2's temp file holds `fraction` of its bytes: checkpoint 1 stays complete."""
    path = tmp_path / "checkpoint-0000000001.pt"
    proc = subprocess.Popen([sys.executable, "-c", _STALLED_WRITER, str(path), str(fraction)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()  # blocks until the child stalls (or exits)
        assert line[:1] == ["stalled"], f"the child did not stall inside the write: {line}"
        temps = list(tmp_path.glob(ckpt_mod.TMP_PREFIX + "*.tmp"))
        assert len(temps) == 1 and temps[0].stat().st_size == int(line[1]), (
            f"expected one {ckpt_mod.TMP_PREFIX}*.tmp holding {line[1]} of {line[2]} bytes at kill time, got {temps}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert temps[0].exists()  # killed, not cleaned up: the write was still in progress
    ck = load_checkpoint(path)
    want = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0)) + 1
    assert ck["training"]["i"] == 1 and torch.equal(ck["G"]["w"], want)
    ckpt_mod.prune_checkpoints(tmp_path, keep=5)  # the killed write's temp file is cleaned
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_keep_last_k_and_find(tmp_path):
    from stylegan.training.checkpoint import checkpoint_name, find_checkpoint, prune_checkpoints
    for n in (5, 40, 300, 1000):
        atomic_torch_save({"training": {"n": n}, "G": {}}, tmp_path / checkpoint_name(n))
    (tmp_path / ".checkpoint-abc.tmp").write_bytes(b"partial")
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint_name(300), checkpoint_name(1000)]
    assert find_checkpoint("latest", tmp_path).name == checkpoint_name(1000)
    assert find_checkpoint(str(tmp_path), "elsewhere").name == checkpoint_name(1000)
    assert find_checkpoint(str(tmp_path / checkpoint_name(300)), tmp_path).name == checkpoint_name(300)
    with pytest.raises(ValueError, match="no checkpoint"):
        find_checkpoint("latest", tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_conditional_and_logistic_run(tiny_cfg):
    """--cond on the labelled glyphs with the logistic+R1 loss: G and D get label_size 36, losses stay finite."""
    cfg = tiny_cfg(total_kimg=0.032, cond=True, loss="logistic", mirror_augment=True)
    # impl='auto': the R1 double backward runs through the fused CPU kernels (reference ops elsewhere in this file)
    result = train(cfg, impl="auto", progress=False, log=lambda s: None)
    payload = torch.load(result.checkpoint, weights_only=True)
    assert json.loads(payload["G_config"])["label_size"] == 36
    assert json.loads(payload["D_config"])["label_size"] == 36
    assert payload["G"]["mapping.embed"].shape == (36, 16)
    assert math.isfinite(result.last_log["loss_D"]) and result.last_log["penalty"] > 0
    assert not torch.are_deterministic_algorithms_enabled()  # process-wide flag restored


def test_repeats_schedule_and_resume_mid_group(tiny_cfg, tmp_path):
    """D_repeats=2 (two D minibatches per G step) and minibatch_repeats=2 (schedule held for two steps), stopped
    in the middle of a repeat group and resumed: same trajectory and weights as the uninterrupted run."""
    kw = dict(total_kimg=0.048, lod_training_kimg=0.012, lod_transition_kimg=0.012, D_repeats=2, minibatch_repeats=2)
    full = train(tiny_cfg(outdir=str(tmp_path / "a"), **kw), impl="ref", progress=False, log=lambda s: None)
    assert [n for n, _, _ in full.trajectory] == [8, 16, 24, 32, 40, 48]
    lods = [lod for _, lod, _ in full.trajectory]
    assert lods[0] == lods[1] and lods[2] == lods[3] and lods[4] == lods[5]
    assert lods[2] == pytest.approx(1 - 4 / 12)   # evaluated at 16 images: 4 images into the 12-image fade
    part = train(tiny_cfg(outdir=str(tmp_path / "b"), **kw), impl="ref", progress=False, stop_at_images=24,
                 log=lambda s: None)
    rest = train(tiny_cfg(outdir=str(tmp_path / "b"), **kw), resume="latest", impl="ref", progress=False,
                 log=lambda s: None)
    assert part.trajectory + rest.trajectory == full.trajectory
    wa, _ = _weights(full.checkpoint)
    wb, _ = _weights(rest.checkpoint)
    assert all(torch.equal(wa[n][k], wb[n][k]) for n in wa for k in wa[n])
