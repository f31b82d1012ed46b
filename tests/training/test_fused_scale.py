"""TrainConfig.fused_scale / `stylegan train --fused-scale`: the value reaches both networks, old configs keep 'auto'."""
import json

import pytest
from click.testing import CliRunner

from stylegan.cli.train import train as train_cmd
from stylegan.training.config import TrainConfig
from stylegan.training.loop import build_networks


def _fused(G, D):
    return ([layer.fused for layer in G.synthesis.layers if layer.kind == "up"], [b.conv1.fused for b in D.blocks])


def test_default_is_fused_at_every_resolution_and_reaches_both_networks(tiny_cfg):
    cfg = tiny_cfg()
    assert cfg.fused_scale is True
    G, D, G_ema = build_networks(cfg, num_channels=3, label_size=0)
    assert _fused(G, D) == ([True, True], [True, True])
    assert G.config.fused_scale is True and D.config.fused_scale is True and G_ema.config.fused_scale is True
    G, D, _ = build_networks(tiny_cfg(fused_scale="auto"), num_channels=3, label_size=0)
    assert _fused(G, D) == ([False, False], [False, False])  # official: fused only from 128 px
    G, D, _ = build_networks(tiny_cfg(fused_scale=False), num_channels=1, label_size=0)
    assert _fused(G, D) == ([False, False], [False, False])


@pytest.mark.parametrize("bad", ["yes", "true", 1, 0, None])
def test_bad_values_are_rejected(tiny_cfg, bad):
    with pytest.raises(ValueError, match="fused_scale"):
        tiny_cfg(fused_scale=bad)


def test_json_round_trip_and_configs_saved_before_the_field(tiny_cfg):
    for value in (True, False, "auto"):
        cfg = tiny_cfg(fused_scale=value)
        assert TrainConfig.from_json(cfg.to_json()).fused_scale == value
    old = json.loads(tiny_cfg().to_json())
    del old["fused_scale"]
    assert TrainConfig.from_dict(old).fused_scale == "auto"  # what such runs were trained with


@pytest.mark.parametrize("option, expected", [([], True), (["--fused-scale", "auto"], "auto"),
                                              (["--fused-scale", "false"], False)])
def test_cli_option(tmp_path, tiny_cli, option, expected):
    out = tmp_path / "run"
    res = CliRunner().invoke(train_cmd, ["--outdir", str(out), "--kimg", "0.004", "--cache-dir", str(tmp_path / "c"),
                                         "--swd-num", "0", *tiny_cli, *option])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert json.loads((out / "config.json").read_text())["fused_scale"] == expected


def test_cli_rejects_a_bad_choice(tmp_path):
    res = CliRunner().invoke(train_cmd, ["--outdir", str(tmp_path / "o"), "--fused-scale", "yes"])
    assert res.exit_code == 2 and "yes" in res.output
