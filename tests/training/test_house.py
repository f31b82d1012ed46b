"""The training house: TrainConfig as the one source of `stylegan train`, the tick logger, the loop's contracts."""
import json
import math
import resource

import pytest
import torch
from click.testing import CliRunner

from stylegan.cli import train as train_cli
from stylegan.training import checkpoint as ckpt_mod
from stylegan.training.config import ConfigError, TrainConfig, apply_options, cli_options, option_of
from stylegan.training.loop import Trainer


def test_every_option_of_train_is_a_config_field_with_its_default():
    """The click options are generated from TrainConfig: each field's flag is there with the field's default."""
    command = train_cli.train
    params = {p.name: p for p in command.params}
    defaults = TrainConfig()
    for name, spec in cli_options():
        assert name in params, f"{spec.flag} is missing from stylegan train"
        assert spec.flag in params[name].opts
        if not spec.required and spec.choices is None:
            assert params[name].default == getattr(defaults, name), name
    non_config = {"resume", "impl", "threads", "quiet", "allow_nonfinite", "dry_run"}
    assert set(params) - {n for n, _ in cli_options()} == non_config


@pytest.mark.parametrize("fields, bad", [
    (dict(mapping_layers=True), "mapping_layers"),      # a bool is not a layer count
    (dict(tick_kimg="4"), "tick_kimg"),                 # untyped values are refused, not compared
    (dict(snapshot_ticks=2.5), "snapshot_ticks"),
    (dict(seed=-1), "seed"),
    (dict(device="gpu"), "device"),
    (dict(cond="yes"), "cond"),
])
def test_config_refuses_wrongly_typed_values(fields, bad):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**fields)
    assert info.value.field == bad and f"TrainConfig.{bad}" in str(info.value)


def test_apply_options_sets_the_fields_an_option_stands_for():
    base = TrainConfig().to_dict()
    out = apply_options(base, {"latent_size": 64, "G_lrate_base": 0.003, "lod_training_kimg": 24.0})
    assert out["latent_size"] == out["dlatent_size"] == out["mapping_fmaps"] == 64
    assert out["G_lrate_base"] == out["D_lrate_base"] == 0.003 and out["G_lrate_dict"] == out["D_lrate_dict"] == {}
    assert out["lod_training_kimg"] == out["lod_transition_kimg"] == 24.0
    assert base["G_lrate_dict"] and base["latent_size"] == 512  # the base is not modified
    assert option_of("mapping_fmaps") == "--latent" and option_of("D_lrate_dict") == "--lr"
    assert option_of("minibatch_base") is None


def test_dry_run_prints_config_and_level_starts_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(train_cli.train, ["--outdir", str(out), "--resolution", "32", "--phase-kimg", "24",
                                               "--kimg", "120", "--batch", "16", "--dry-run"])
    assert res.exit_code == 0, res.output
    config_text = res.output[:res.output.index("\nSchedule")]
    cfg = TrainConfig.from_dict(json.loads(config_text))
    assert cfg.lod_training_kimg == cfg.lod_transition_kimg == 24.0 and cfg.batch == 16 and cfg.total_kimg == 120
    rows = [line.split() for line in res.output.splitlines() if line.strip()[:1].isdigit()]
    assert [(float(r[0]), int(r[1]), int(r[2])) for r in rows] == [(0.0, 8, 16), (24.001, 16, 16), (72.001, 32, 16)]
    assert not out.exists()


def test_a_bad_value_names_its_option_even_through_sets(tmp_path):
    res = CliRunner().invoke(train_cli.train, ["--outdir", str(tmp_path / "o"), "--resolution", "16",
                                               "--start-res", "32", "--dry-run"])
    assert res.exit_code == 2 and "--start-res" in res.output and "above --resolution" in res.output


def test_refused_mallopt_is_reported(monkeypatch):
    class FakeLibc:
        def mallopt(self, param, value):
            return 0 if param == -3 else 1  # glibc refuses M_MMAP_THRESHOLD

    import ctypes
    monkeypatch.delenv("STYLEGAN_NO_MALLOPT", raising=False)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    assert train_cli._apply_malloc_tuning() == [f"M_MMAP_THRESHOLD={2 ** 30}"]
    monkeypatch.setattr(ctypes, "CDLL", lambda name: type("Ok", (), {"mallopt": lambda self, p, v: 1})())
    assert train_cli._apply_malloc_tuning() == []


def test_resume_reads_the_checkpoint_once(tmp_path, tiny_cli, monkeypatch):
    base = ["--outdir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"), *tiny_cli]
    res = CliRunner().invoke(train_cli.train, [*base, "--kimg", "0.032"])
    assert res.exit_code == 0, res.output
    reads = []
    real_load = ckpt_mod.load_checkpoint
    monkeypatch.setattr(ckpt_mod, "load_checkpoint", lambda path: reads.append(path) or real_load(path))
    res = CliRunner().invoke(train_cli.train, [*base, "--kimg", "0.048", "--resume", "latest"])
    assert res.exit_code == 0, res.output
    assert len(reads) == 1 and reads[0].name == "checkpoint-0000000032.pt"


def test_log_records_current_and_peak_memory_by_their_names(tiny_cfg):
    trainer = Trainer(tiny_cfg(total_kimg=0.032, snapshot_ticks=100), impl="ref", progress=False,
                      log=lambda s: None)
    trainer.run()
    recs = [json.loads(x) for x in (trainer.outdir / "log.jsonl").read_text().splitlines()]
    assert "mem_MiB" not in recs[0]
    from stylegan.training.tick_logger import rss_mib
    peak_now = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_mib())
    for r in recs:
        assert 0 < r["rss_MiB"] <= r["peak_MiB"]        # the peak can never be below the current RSS
        assert r["peak_MiB"] <= peak_now + 0.05         # the process peak so far (rounded to 0.1 MiB)
    assert [r["peak_MiB"] for r in recs] == sorted(r["peak_MiB"] for r in recs)  # a peak never goes down


@pytest.mark.parametrize("augment", [{}, {"augment": "ada", "augment_p": 0.5}, {"augment": "diffaug"}])
def test_a_training_step_never_reads_a_tensor_on_the_host(tiny_cfg, monkeypatch, augment):
    """Between ticks no device tensor becomes a Python number (on a GPU each such read is a host sync): the step's
    loss terms stay tensors until TickLogger reads them once per tick.

    On this CPU-only machine every tensor is a CPU tensor, so the test records where each read happens and allows
    only reads of tensors that live on the CPU on a GPU too: Adam's step counters (torch keeps them on the CPU
    unless capturable/fused) and the loop's coin flips drawn from the CPU generator (style-mixing crossover,
    mirror flips; the augmentation's parameters, which it keeps on the CPU). The ADA controller's update, every 4th
    step, reads r_t once (as official); these two steps do not reach it."""
    import traceback

    trainer = Trainer(tiny_cfg(total_kimg=1.0, mirror_augment=True, **augment), impl="ref", progress=False,
                      log=lambda s: None)
    from stylegan.training.dataset import make_loader
    phase = trainer.phase(40)   # mid-fade: both resolutions' layers and the fade-in run
    loader = make_loader(trainer.dataset, phase.batch, start=0, seed=0, workers=0)
    trainer.step(phase, loader)  # warm-up: builds lazily initialised state
    allowed = {("optimizer.py", "_get_value"), ("generator.py", "random_crossover_point"),
               ("dataset.py", "random_mirror"), ("augment.py", "blit"), ("augment.py", "geometric_warp"),
               ("augment.py", "apply")}  # augment.py reads only its parameters, drawn and kept on the CPU
    reads = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _name=name, _original=original, **k):
            caller = traceback.extract_stack()[-2]
            where = (caller.filename.rsplit("/", 1)[-1], caller.name)
            if where not in allowed:
                reads.append((_name, *where, caller.lineno))
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, spy)
    terms = trainer.step(phase, loader)
    monkeypatch.undo()
    assert reads == []
    assert set(terms) == {"loss_G", "loss_D", "penalty", "ada_rt"}
    assert all(isinstance(t, torch.Tensor) for t in terms.values())
    assert all(math.isfinite(float(t)) for t in terms.values())


def test_resume_refuses_another_architecture_naming_the_field(tmp_path, tiny_cli):
    base = ["--outdir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"), *tiny_cli]
    assert CliRunner().invoke(train_cli.train, [*base, "--kimg", "0.016"]).exit_code == 0
    res = CliRunner().invoke(train_cli.train, [*base, "--kimg", "0.032", "--resume", "latest", "--fmap-max", "32"])
    assert res.exit_code == 2, res.output
    assert "it was trained with fmap_max=16, this run has fmap_max=32" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(train_cli.train, [*base, "--kimg", "0.032", "--resume", "latest"])
    assert res.exit_code == 0 and "Resumed from" in res.output, res.output
