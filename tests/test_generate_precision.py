"""`--precision` of generate / style-mixing / interpolate / metrics: bf16 images of the official fixture network
against fp32, fp32 untouched (the official-equality tests run it), refusals as click errors."""
from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.cli.generate import generate, interpolate, style_mixing
from stylegan.cli.metrics import metrics
from stylegan.generate import generate_images
from stylegan.precision import resolve_precision

from network_test_support import SMALL_PKL, cpu_kernels_unavailable

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.skipif(cpu_kernels_unavailable() is not None, reason=str(cpu_kernels_unavailable()))
def test_bf16_images_of_the_official_fixture_stay_within_a_few_uint8_levels_of_fp32():
    """Measured here (16 seeds, psi 0.7): mean |diff| 1.1 levels, max 35 (a few pixels of high-contrast edges).
    Band: mean <= 3 levels, max <= 96; and the two differ (bf16 really ran)."""
    G = stylegan.load(SMALL_PKL, "cpu").generator
    bf16 = resolve_precision("bf16", torch.device("cpu"), warn=False)
    fp32 = generate_images(G, range(16), psi=0.7, progress=False)
    half = generate_images(G, range(16), psi=0.7, progress=False, precision=bf16)
    diff = np.abs(fp32.astype(int) - half.astype(int))
    assert half.dtype == np.uint8 and half.shape == fp32.shape
    assert 0 < diff.mean() <= 3 and diff.max() <= 96


def test_generate_cli_bf16_says_what_runs_and_writes_images(tmp_path):
    r = CliRunner().invoke(generate, ["--network", str(SMALL_PKL), "--seeds", "1-2", "--outdir",
                                                      str(tmp_path), "--precision", "bf16", "--device", "cpu"])
    assert r.exit_code == 0, r.output + r.stderr
    assert r.stderr.startswith("precision bf16 (requested")
    assert PIL.Image.open(tmp_path / "seed0001.png").size == (32, 32)


@pytest.mark.parametrize("command, args", [
    (generate, ["--seeds", "1"]),
    (style_mixing, []),
    (interpolate, ["--seeds", "1,2", "--frames", "2"]),
    (metrics, ["--data", "builtin:glyphs", "--num", "4"]),
])
def test_fp16_on_a_cpu_is_a_click_error_naming_the_option(command, args, tmp_path):
    r = CliRunner().invoke(command, ["--network", str(SMALL_PKL), "--device", "cpu", "--precision", "fp16"] + args,
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "--precision" in r.output and "'fp16' is for CUDA devices only" in r.output
