"""Fine-tuning (`--resume-from`), Freeze-D and D augmentation inside the training loop: tiny CPU runs."""
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.cli.train import train as train_cmd
from stylegan.training.checkpoint import load_checkpoint
from stylegan.training.config import TrainConfig
from stylegan.training.loop import Trainer, build_networks
from stylegan.training.transfer import architecture_of

import rosinality_reference as ref

SMALL_PKL = Path(__file__).resolve().parents[1] / "data" / "small.pkl"
QUIET = dict(impl="ref", progress=False, log=lambda s: None)


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------------------------
# Augmentation in the loop.

def _ada_trainer(cfg, resume=None):
    trainer = Trainer(cfg, resume=resume, **QUIET)
    trainer.ada.target = -1.0  # below any r_t, so p rises (the config only takes targets in (0, 1))
    return trainer


def test_ada_run_logs_p_and_rt_and_resumes_bit_identically(tiny_cfg, tmp_path):
    kw = dict(total_kimg=0.048, lod_training_kimg=0.012, lod_transition_kimg=0.012, augment="ada", ada_kimg=0.1)
    full = _ada_trainer(tiny_cfg(outdir=str(tmp_path / "a"), **kw)).run()
    part = _ada_trainer(tiny_cfg(outdir=str(tmp_path / "b"), **kw)).run(stop_at_images=20)  # mid-interval
    assert part.status == "stopped"
    rest = _ada_trainer(tiny_cfg(outdir=str(tmp_path / "b"), **kw), resume="latest")
    rest_result = rest.run()
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(rest_result.checkpoint)
    for net in ("G", "D", "G_ema"):
        assert _same_state(a[net], b[net]), net
    pa, pb = a["training"]["augment"], b["training"]["augment"]
    # 12 steps of batch 4, one update per 4 steps of 4 * 4 / 100 = 0.16
    assert pa["pipeline"]["p"] == pb["pipeline"]["p"] == pytest.approx(0.48)
    assert torch.equal(pa["pipeline"]["generator"], pb["pipeline"]["generator"])
    logs = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["augment_p"] for r in logs] == pytest.approx([0.16, 0.32, 0.48])
    assert all(-1.0 <= r["ada_rt"] <= 1.0 for r in logs)
    logs_b = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["augment_p"] for r in logs_b] == [r["augment_p"] for r in logs]


def test_diffaug_run_resumes_bit_identically(tiny_cfg, tmp_path):
    """DiffAugment draws from its own generator too: the checkpoint holds its state, so a resume repeats the
    uninterrupted run's augmentations (and weights) exactly."""
    kw = dict(total_kimg=0.032, lod_training_kimg=0.012, lod_transition_kimg=0.012, augment="diffaug", swd_num=0)
    full = Trainer(tiny_cfg(outdir=str(tmp_path / "a"), **kw), **QUIET).run()
    assert Trainer(tiny_cfg(outdir=str(tmp_path / "b"), **kw), **QUIET).run(stop_at_images=12).status == "stopped"
    rest = Trainer(tiny_cfg(outdir=str(tmp_path / "b"), **kw), resume="latest", **QUIET).run()
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(rest.checkpoint)
    for net in ("G", "D", "G_ema"):
        assert _same_state(a[net], b[net]), net
    ga, gb = a["training"]["augment"]["pipeline"]["generator"], b["training"]["augment"]["pipeline"]["generator"]
    assert torch.equal(ga, gb)
    assert a["training"]["augment"]["ada"] is None


@pytest.mark.parametrize("augment, loss", [("diffaug", "logistic"), ("ada", "hinge")])
def test_augmented_runs_with_every_loss(tiny_cfg, augment, loss):
    extra = {"augment_p": 1.0} if augment == "ada" else {}
    trainer = Trainer(tiny_cfg(augment=augment, loss=loss, r1_gamma=1.0, swd_num=0, **extra), **QUIET)
    result = trainer.run(stop_at_images=32)  # through the fade-in at lod in (0, 1) and into lod 0
    assert result.status == "stopped" and result.lod < 1
    logs = [json.loads(x) for x in (Path(trainer.cfg.outdir) / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss_D"])) for r in logs)
    if loss == "logistic":
        assert logs[-1]["penalty"] > 0
    assert ("augment_p" in logs[0]) == (augment == "ada")


def test_freeze_d_leaves_those_parameters_bit_identical(tiny_cfg):
    cfg = tiny_cfg(lod_initial_resolution=16, freezed=1, swd_num=0)  # 16 px from the start: every block trains
    trainer = Trainer(cfg, **QUIET)
    before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.run(stop_at_images=16)
    after = trainer.D.state_dict()
    frozen = [k for k in before if k.startswith(("blocks.1.", "fromrgb.2."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    trained = [k for k in before if k.startswith(("blocks.0.", "epilogue."))]
    assert trained and all(not torch.equal(before[k], after[k]) for k in trained)


# ---------------------------------------------------------------------------------------------------------------
# --resume-from with each format.

def _ours(tmp_path, tiny_cfg):
    cfg = tiny_cfg()
    G, D, G_ema = build_networks(cfg, 3, 0, impl="ref")
    with torch.no_grad():  # a "trained" G_ema that differs from G
        for p in G_ema.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "ours.pt"
    stylegan.save(path, G=G, D=D, G_ema=G_ema)
    return path


def _rosinality_g_only(tmp_path, tiny_cfg):
    path = tmp_path / "rosinality.model"
    torch.save(ref.random_generator_state(1, seed=4), path)  # a bare g_running state: G_ema only, 8 px
    return path


def _official(tmp_path, tiny_cfg):
    return SMALL_PKL


@pytest.mark.parametrize("make", [_ours, _official, _rosinality_g_only])
def test_resume_from_starts_with_the_source_networks(make, tmp_path, tiny_cfg):
    path = make(tmp_path, tiny_cfg)
    source = stylegan.load(path)
    cfg = tiny_cfg(**{**architecture_of(source), "resume_pkl": str(path), "swd_num": 0})
    lines = []
    trainer = Trainer(cfg, impl="ref", progress=False, log=lines.append)
    z = torch.randn(4, cfg.latent_size, generator=torch.Generator().manual_seed(0))
    source.generator.impl = "ref"  # the trainer's impl: the same ops, so the same bits
    with torch.no_grad():
        want = source.generator(z, noise_mode="const")
        assert torch.equal(trainer.G_ema(z, noise_mode="const"), want)
    if source.D is not None:
        assert _same_state(trainer.D.state_dict(), source.D.state_dict())
    else:
        assert any("holds no discriminator" in line for line in lines)
    assert trainer.state.images_shown == 0 and trainer.phase(0).lod == 0.0  # the file's resolution, no growing
    saved = json.loads((Path(cfg.outdir) / "config.json").read_text())
    assert saved["resume_pkl"] == str(path) and len(saved["resume_pkl_sha256"]) == 64
    assert saved["ada_kimg"] is None and TrainConfig.from_dict(saved).ada_kimg_used == 100.0


def test_resume_from_trains_and_resumes_with_the_file_configs(tmp_path, tiny_cfg):
    """A rosinality file's variant configs (instance-norm eps, ...) survive into checkpoints and a --resume."""
    path = _rosinality_g_only(tmp_path, tiny_cfg)
    source = stylegan.load(path)
    cfg = tiny_cfg(**{**architecture_of(source), "resume_pkl": str(path), "swd_num": 0, "batch": 4,
                      "augment": "ada", "freezed": 1})
    first = Trainer(cfg, **QUIET).run(stop_at_images=8)
    payload = load_checkpoint(first.checkpoint)
    assert json.loads(payload["G_config"])["instance_norm_eps"] == source.generator.config.instance_norm_eps
    again = Trainer(cfg.replace(total_kimg=0.012), resume="latest", **QUIET)
    assert again.G.config == source.generator.config
    assert again.run().images_shown == 12


# ---------------------------------------------------------------------------------------------------------------
# The command line: architecture options, start resolution, one-line errors.

def _cli(tmp_path, *args):
    return CliRunner().invoke(train_cmd, ["--outdir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"),
                                          "--quiet", *args])


def test_cli_resume_from_takes_the_architecture_and_refuses_changes(tmp_path):
    res = _cli(tmp_path, "--resume-from", str(SMALL_PKL), "--dry-run")
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output[:res.output.index("\nSchedule")])
    assert (cfg["resolution"], cfg["lod_initial_resolution"], cfg["fmap_max"], cfg["latent_size"]) == (32, 32, 64, 32)
    res = _cli(tmp_path, "--resume-from", str(SMALL_PKL), "--start-res", "8", "--dry-run")
    assert res.exit_code == 0 and '"lod_initial_resolution": 8' in res.output
    res = _cli(tmp_path, "--resume-from", str(SMALL_PKL), "--fmap-max", "16", "--dry-run")
    assert res.exit_code == 2 and "--fmap-max 16 would change the architecture" in res.output
    assert "fmap_max=64" in res.output and "Traceback" not in res.output


def test_cli_bad_inputs_are_one_line_errors(tmp_path, tiny_cli, monkeypatch):
    monkeypatch.setenv("STYLEGAN_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    cfg = TrainConfig(**{**dict(resolution=16), "outdir": str(tmp_path)})
    G, D, _ = build_networks(cfg.replace(fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16,
                                         mapping_fmaps=16, mapping_layers=2), 3, 0, impl="ref")
    d_only = tmp_path / "d_only.pt"
    stylegan.save(d_only, D=D)
    cases = [
        (["--resume-from", str(d_only)], "holds no generator"),
        (["--resume-from", "http://127.0.0.1:9/network.pkl"], "cannot download http://127.0.0.1:9/network.pkl"),
        (["--resume-from", str(tmp_path / "missing.pkl")], "not found"),
        (["--freeze-d", "3"], "--freeze-d"),
        (["--ada-target", "1.5"], "--ada-target"),
        (["--augment", "ada", "--aug-p", "2"], "--aug-p"),
        (["--aug-p", "0.5"], "--augment is ada"),
        (["--resume", "latest", "--resume-from", str(SMALL_PKL)], "give one of them"),
    ]
    for args, message in cases:
        res = _cli(tmp_path, *tiny_cli, *args, "--dry-run")
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output
    res = _cli(tmp_path, *tiny_cli, "--freeze-d", "3", "--dry-run")
    assert "3: expected an integer in [0, 2] (D has 2 blocks at 16 px)" in res.output
