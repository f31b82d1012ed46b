"""`stylegan bench networks|train --precision fp32,bf16`: one row per precision in one run, with the bf16/fp32
ratio columns; bad lists are click errors. (A benchmark, not a timed test: nothing here checks a speed.)"""
from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from stylegan.benchmarks.networks import run_networks_bench
from stylegan.cli import main


def test_rows_per_precision_and_the_vs_fp32_columns():
    torch.set_num_threads(1)
    out = run_networks_bench([8], batch=4, repeat=1, impls=("auto",), fmap_base=32, fmap_max=8, latent_size=8,
                             isolate=False, echo=False, lod=0.5, precisions=("fp32", "bf16"))
    rows = out["rows"]
    assert [(r["resolution"], r["impl"], r["precision"]) for r in rows] == [(8, "auto", "fp32"), (8, "auto", "bf16")]
    assert all(r["train_img_s"] > 0 and r["g_forward_img_s"] > 0 for r in rows)
    header = out["table"].splitlines()[2]
    assert "precision" in header and "vs fp32 train" in header
    bf16_line = out["table"].splitlines()[-1]
    ratio = rows[1]["train_img_s"] / rows[0]["train_img_s"]
    assert f"{ratio:.2f}" in bf16_line and math.isfinite(ratio)


@pytest.mark.parametrize("args, match", [
    (["--precision", "fp64"], "'fp64': expected a comma-separated list of auto, fp32, bf16, fp16"),
    (["--precision", "fp32,fp16"], "'fp16' is for CUDA devices only"),
    (["--impls", "cuda"], "'cuda': expected a comma-separated list of auto, ref"),
])
def test_bad_lists_are_click_errors(args, match):
    r = CliRunner().invoke(main, ["bench", "train", "--repeat", "1"] + args)
    assert r.exit_code == 2 and match in r.output, r.output
