"""End to end: 1- and 4-channel data from `stylegan dataset` trains networks of that many channels, whose images
`generate` writes as L / RGBA PNGs and `metrics` scores; the comparison losses (lsgan, wgan) train the tiny run to
finite values, wgan with clipped weights, RMSprop and 5 D steps; the --loss presets yield to explicit options."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan.cli import main
from stylegan.training.config import TrainConfig, apply_options
from stylegan.training.loop import train


def _invoke(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


@pytest.mark.parametrize("channels, mode", [(1, "L"), (4, "RGBA")])
def test_one_and_four_channel_data_train_end_to_end(tmp_path, tiny_cli, channels, mode):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(channels)
    for i in range(8):  # mixed sizes; the majority mode decides (`--channels auto`)
        shape = (24, 20) if channels == 1 else (24, 20, 4)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(src / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(src / "rgb.png")
    out = _invoke("dataset", "--source", src, "--dest", tmp_path / "data.zip", "--resolution", 16)
    assert f"Channels: {channels}" in out and "majority of 9" in out
    run = tmp_path / "run"
    _invoke("train", *tiny_cli, "--outdir", run, "--data", tmp_path / "data.zip", "--cache-dir", tmp_path / "c",
            "--kimg", "0.032", "--swd-num", "16")
    ckpt = sorted(run.glob("checkpoint-*.pt"))[-1]
    payload = torch.load(ckpt, weights_only=True)
    assert json.loads(payload["G_config"])["num_channels"] == channels
    assert json.loads(payload["D_config"])["num_channels"] == channels
    import stylegan
    G = stylegan.load(ckpt).generator
    assert G(torch.randn(2, G.config.latent_size), lod=0.0).shape == (2, channels, 16, 16)
    assert Image.open(run / "reals.png").mode == mode
    _invoke("generate", "--network", ckpt, "--seeds", "0-1", "--outdir", tmp_path / "gen", "--lod", "0")
    pngs = sorted((tmp_path / "gen").glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(p).mode == mode for p in pngs)
    assert Image.open(pngs[0]).size == (16, 16)
    out = _invoke("metrics", "--network", ckpt, "--data", tmp_path / "data.zip", "--num", "8", "--lod", "0",
                  "--json", tmp_path / "m.json")
    assert math.isfinite(json.loads((tmp_path / "m.json").read_text())["metrics"]["swd_avg"])


def _with_loss(tiny_cfg, **given):
    """A tiny config with the options `given` applied as the command line applies them (presets included)."""
    return TrainConfig.from_dict(apply_options(tiny_cfg().to_dict(), given))


def test_wgan_trains_with_clipping_rmsprop_and_five_d_steps(tiny_cfg):
    cfg = _with_loss(tiny_cfg, loss="wgan", total_kimg=0.04)
    assert (cfg.optimizer, cfg.D_repeats, cfg.G_lrate_base, cfg.D_lrate_base) == ("rmsprop", 5, 5e-5, 5e-5)
    result = train(cfg, impl="ref", progress=False, log=lambda s: None)
    # images shown count D's minibatches: 5 x batch 4 per step (official cur_nimg)
    assert [n for n, _, _ in result.trajectory] == [20, 40]
    payload = torch.load(result.checkpoint, weights_only=True)
    for name, value in payload["D"].items():
        if value.is_floating_point() and not name.endswith("filter"):
            assert float(value.abs().max()) <= cfg.wgan_clip + 1e-12, name
    opt_state = payload["training"]["opt_D"]["state"]
    assert opt_state and all("square_avg" in s and "exp_avg" not in s for s in opt_state.values())  # RMSprop
    log = result.last_log
    assert all(math.isfinite(log[k]) for k in ("loss_G", "loss_D")) and log["penalty"] == 0.0


def test_lsgan_trains_to_finite_values_with_optional_r1(tiny_cfg):
    cfg = _with_loss(tiny_cfg, loss="lsgan", total_kimg=0.016)
    assert cfg.r1_gamma == 0.0 and cfg.optimizer == "adam"
    result = train(cfg, impl="ref", progress=False, log=lambda s: None)
    assert math.isfinite(result.last_log["loss_D"]) and result.last_log["penalty"] == 0.0
    cfg = _with_loss(tiny_cfg, loss="lsgan", r1_gamma=0.5, total_kimg=0.016, outdir=cfg.outdir + "2")
    result = train(cfg, impl="ref", progress=False, log=lambda s: None)
    assert math.isfinite(result.last_log["loss_D"]) and result.last_log["penalty"] > 0


def test_loss_presets_yield_to_given_options_in_any_order():
    defaults = TrainConfig().to_dict()
    cfg = apply_options(defaults, {"D_repeats": 2, "loss": "wgan", "G_lrate_base": 1e-4})
    assert cfg["D_repeats"] == 2 and cfg["optimizer"] == "rmsprop"
    assert cfg["G_lrate_base"] == cfg["D_lrate_base"] == 1e-4 and cfg["G_lrate_dict"] == {}
    assert apply_options(defaults, {"loss": "wgan", "optimizer": "adam"})["optimizer"] == "adam"
    # --resume with the run's own --loss again keeps what the run was trained with
    saved = dict(apply_options(defaults, {"loss": "wgan"}), D_repeats=3)
    assert apply_options(saved, {"loss": "wgan"})["D_repeats"] == 3
    assert apply_options(defaults, {"loss": "hinge"}) == dict(defaults, loss="hinge")  # no preset: nothing else
    res = CliRunner().invoke(main, ["train", "--outdir", "x", "--loss", "wgan", "--d-repeats", "1", "--dry-run"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output[:res.output.index("\nSchedule")])
    assert shown["D_repeats"] == 1 and shown["optimizer"] == "rmsprop" and shown["wgan_clip"] == 0.01
