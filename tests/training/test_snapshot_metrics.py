"""`stylegan train --metrics`: snapshot metrics of G_ema in log.jsonl equal `stylegan metrics` on the checkpoint."""
import json

import pytest
import torch
from click.testing import CliRunner

from stylegan.cli.train import train as train_cmd
from stylegan.loading import load
from stylegan.metrics import glyph_classifier
from stylegan.metrics import MetricOptions, Processes, RealImages, compute_metric, protocol_for
from stylegan.training.checkpoint import list_checkpoints
from stylegan.training.config import ConfigError
from stylegan.training.dataset import ImageDataset
from stylegan.training.loop import train
from stylegan.training.snapshots import Snapshots

from feature_net_standins import write_standin


def test_snapshot_metrics_are_logged_and_equal_the_checkpoint_metric(tiny_cfg, tmp_path):
    standin = write_standin(tmp_path / "standin.pt")
    cfg = tiny_cfg(metrics="fid50k_full,kid50k_full", metrics_num=16, inception=str(standin))
    train(cfg, impl="ref", progress=False)
    recs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    snaps = [r for r in recs if "fid16_full" in r]
    assert len(snaps) == 2 and all(r["fid16_full"] > 0 and "kid16_full" in r for r in snaps)
    assert "fid16_full" not in recs[0]
    last = list_checkpoints(tmp_path / "run")[-1]
    nets = load(last)
    ds = ImageDataset(cfg.data, cfg.resolution, cache_dir=cfg.cache_dir, glyphs_count=cfg.glyphs_count)
    again = compute_metric(protocol_for("fid50k_full", 16), G=nets.generator.eval(), reals=RealImages.of(ds),
                           opts=MetricOptions(inception=str(standin), seed=cfg.seed, processes=Processes()))
    assert again.results["fid16_full"] == pytest.approx(snaps[-1]["fid16_full"], rel=1e-5)


def test_bad_metric_options_are_refused_naming_the_option(tiny_cfg, tiny_cli, tmp_path):
    with pytest.raises(ConfigError, match="metrics"):
        tiny_cfg(metrics="fid,nope")
    with pytest.raises(ConfigError, match=r"metrics_num = 2: expected an int >= 4 \("):
        tiny_cfg(metrics="pr50k3_full", metrics_num=2)
    res = CliRunner().invoke(train_cmd, ["--outdir", str(tmp_path / "r"), "--metrics", "fid51k", *tiny_cli])
    assert res.exit_code == 2 and "--metrics" in res.output and "fid50k_full" in res.output, res.output


def _weights(run_dir):
    ckpt = torch.load(list_checkpoints(run_dir)[-1], map_location="cpu", weights_only=False)
    return {f"{net}.{name}": t for net in ("G", "D", "G_ema") for name, t in ckpt[net].items() if torch.is_tensor(t)}


def test_snapshot_metrics_do_not_change_training(tiny_cfg, tmp_path):
    """A run that computes glyph_acc at its snapshots trains bit-identically to one that does not. Loading the
    classifier used to draw its throw-away init from the global RNG, so every step after the first snapshot
    differed; the classifier cache is cleared so the first load happens inside this run."""
    plain = tiny_cfg(cond=True, outdir=str(tmp_path / "plain"))
    train(plain, impl="ref", progress=False)
    glyph_classifier._shipped.cache_clear()
    measured = tiny_cfg(cond=True, outdir=str(tmp_path / "measured"), metrics="glyph_acc", metrics_num=36)
    train(measured, impl="ref", progress=False)
    logged = [json.loads(line) for line in (tmp_path / "measured" / "log.jsonl").read_text().splitlines()]
    assert any("glyph_acc" in r for r in logged), logged[-1]
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "measured")
    assert a.keys() == b.keys()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert not changed, f"snapshot metrics changed {len(changed)} tensors, e.g. {changed[:3]}"


def test_snapshot_code_that_draws_random_numbers_does_not_move_training(tiny_cfg, tmp_path, monkeypatch):
    """The loop itself keeps the training RNG stream out of reach of whatever a snapshot computes."""
    train(tiny_cfg(outdir=str(tmp_path / "plain")), impl="ref", progress=False)
    real_metrics = Snapshots.metrics

    def drawing_metrics(self, G_ema, phase):
        torch.rand(7)
        return real_metrics(self, G_ema, phase)
    monkeypatch.setattr(Snapshots, "metrics", drawing_metrics)
    train(tiny_cfg(outdir=str(tmp_path / "drawing")), impl="ref", progress=False)
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "drawing")
    assert all(torch.equal(a[k], b[k]) for k in a)
