"""`stylegan bench train --rosinality DIR`: the peer's row and the 'vs rosinality' columns in the same run, with a
stand-in checkout (a model.py with the peer's class names and call signatures) that records how it is called.
A benchmark, not a timed test: nothing here checks a speed."""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from stylegan.benchmarks import peer_rosinality
from stylegan.benchmarks.networks import run_networks_bench
from stylegan.cli import main

STANDIN_MODEL = '''
import json, os
import torch
from torch import nn

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl")


def _log(**kw):
    with open(LOG, "a") as f:
        f.write(json.dumps(kw) + "\\n")


class StyledGenerator(nn.Module):
    def __init__(self, code_dim=512):
        super().__init__()
        self.style = nn.Linear(code_dim, 8)
        self.generator = nn.Linear(8, 3)

    def forward(self, input, noise=None, step=0, alpha=-1, mean_style=None, style_weight=0, mixing_range=(-1, -1)):
        inputs = input if isinstance(input, (list, tuple)) else [input]
        _log(net="G", step=step, alpha=alpha, latents=len(inputs), batch=inputs[0].shape[0])
        size = 4 * 2 ** step
        w = sum(self.style(z) for z in inputs)
        return self.generator(w)[:, :, None, None].expand(-1, -1, size, size)


class Discriminator(nn.Module):
    def __init__(self, fused=True, from_rgb_activate=False):
        super().__init__()
        self.from_rgb_activate = from_rgb_activate
        self.linear = nn.Linear(3, 1)

    def forward(self, input, step=0, alpha=-1):
        _log(net="D", step=step, alpha=alpha, size=input.shape[-1], needs_input_grad=input.requires_grad)
        return self.linear(torch.tanh(input).square().mean((2, 3)))
'''


@pytest.fixture
def standin(tmp_path):
    folder = tmp_path / "style-based-gan-pytorch"
    folder.mkdir()
    (folder / "model.py").write_text(STANDIN_MODEL)
    return folder


def test_peer_row_and_ratio_columns(standin):
    out = run_networks_bench([16], batch=4, repeat=1, impls=("auto",), fmap_base=32, fmap_max=8, latent_size=8,
                             isolate=False, echo=False, lod=0.5, rosinality=str(standin))
    rows = out["rows"]
    assert [(r["resolution"], r["impl"], r["precision"]) for r in rows] == [(16, "auto", "fp32"),
                                                                           (16, "rosinality", "fp32")]
    assert rows[1]["train_img_s"] > 0 and rows[1]["train_step_cpu_s"] > 0
    lines = out["table"].splitlines()
    assert "vs rosinality train" in lines[2] and "vs rosinality train CPU" in lines[2]
    ours = rows[0]["train_img_s"] / rows[1]["train_img_s"]
    assert math.isfinite(ours) and f"{ours:.2f}" in lines[-2]
    calls = [json.loads(line) for line in (standin / "calls.jsonl").read_text().splitlines()]
    assert {c["step"] for c in calls} == {2} and {c["alpha"] for c in calls} == {0.5}  # 16 px is the peer's step 2
    d_calls = [c for c in calls if c["net"] == "D"]
    assert {c["size"] for c in d_calls} == {16}
    # per iteration: D on reals, on fakes (G frozen), on interpolates (for the penalty's input gradient), and on
    # the G step's fakes (carrying G's graph)
    assert [c["needs_input_grad"] for c in d_calls[:4]] == [False, False, True, True]
    g_calls = [c for c in calls if c["net"] == "G"]
    # generation (warm-up + 1 timed) on one latent, then every training G call mixing two latents per sample
    assert [c["latents"] for c in g_calls] == [1, 1] + [2] * (len(g_calls) - 2) and len(g_calls) == 2 + 2 * 2


def test_peer_through_the_cli(standin, tmp_path):
    report = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", "train", "--resolutions", "8", "--batch", "4", "--repeat", "1",
                                  "--fmap-base", "32", "--fmap-max", "8", "--latent", "8", "--impls", "auto",
                                  "--malloc", "default", "--rosinality", str(standin), "--json", str(report)])
    assert r.exit_code == 0, r.output
    assert "rosinality" in r.output and "vs rosinality train" in r.output
    rows = json.loads(report.read_text())["default"]["rows"]
    assert [row["impl"] for row in rows] == ["auto", "rosinality"]


@pytest.mark.parametrize("layout, match", [
    ("empty", "has no model.py: expected a checkout of https://github.com/rosinality/style-based-gan-pytorch"),
    ("other", "defines no StyledGenerator / Discriminator"),
])
def test_a_folder_that_is_not_the_peer_is_refused(tmp_path, layout, match):
    folder = tmp_path / "peer"
    folder.mkdir()
    if layout == "other":
        (folder / "model.py").write_text("class Something: pass\n")
    r = CliRunner().invoke(main, ["bench", "train", "--repeat", "1", "--rosinality", str(folder)])
    assert r.exit_code == 2 and "--rosinality" in r.output and match in r.output, r.output


def test_a_resolution_the_peer_cannot_run_is_refused(standin):
    r = CliRunner().invoke(main, ["bench", "train", "--repeat", "1", "--resolutions", "4",
                                  "--rosinality", str(standin)])
    assert r.exit_code == 2 and "resolution 4 is invalid for the peer" in r.output, r.output
    assert peer_rosinality.step_for(64) == 4
