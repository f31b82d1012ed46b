"""`stylegan train --metrics`: snapshot metrics of G_ema in log.jsonl equal `stylegan metrics` on the checkpoint."""
import json

import pytest
from click.testing import CliRunner

from stylegan.cli.train import train as train_cmd
from stylegan.loading import load
from stylegan.metrics import MetricOptions, Processes, RealImages, compute_metric, protocol_for
from stylegan.training.checkpoint import list_checkpoints
from stylegan.training.config import ConfigError
from stylegan.training.dataset import ImageDataset
from stylegan.training.loop import train

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
    with pytest.raises(ConfigError, match="metrics_num"):
        tiny_cfg(metrics="pr50k3_full", metrics_num=2)
    res = CliRunner().invoke(train_cmd, ["--outdir", str(tmp_path / "r"), "--metrics", "fid51k", *tiny_cli])
    assert res.exit_code == 2 and "--metrics" in res.output and "fid50k_full" in res.output, res.output
