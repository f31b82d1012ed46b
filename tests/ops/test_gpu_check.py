"""The prepared GPU check (`stylegan doctor --gpu REPORT`, stylegan/benchmarks/gpu_check.py), without a GPU.

A GPU's few minutes must go to one real run, so everything is exercised here first: the dry run skips each GPU
step with its reason and still writes the report; each step's function runs on the CPU with tiny sizes.
"""
from __future__ import annotations

import sys

import pytest
import torch
from click.testing import CliRunner

from stylegan.benchmarks import gpu_check
from stylegan.cli import main

STEPS = ["Build the CUDA kernels", "pytest -m cuda", "bias_act vs copy bandwidth", "bench ops --device cuda",
         "Training images/s"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the dry run would be the real run")
def test_dry_run_skips_every_gpu_step_with_the_reason_and_writes_the_report(tmp_path):
    path = tmp_path / "report.md"
    lines = []
    assert gpu_check.run_gpu_check(str(path), echo=lines.append) is True
    text = path.read_text()
    assert text == "\n".join(lines) + "\n"
    assert "torch " in text and "## Environment" in text
    for step in STEPS:
        section = text.split(step, 1)[1].split("\n## ", 1)[0]
        assert "skipped: no CUDA device visible to torch" in section, step
    assert "## Done" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the dry run would be the real run")
def test_doctor_prints_the_full_self_check_and_runs_the_gpu_check(tmp_path, no_forced_reference):
    path = tmp_path / "gpu.md"
    result = CliRunner().invoke(main, ["doctor", "--gpu", str(path)])
    assert result.exit_code == 0, result.output
    assert "full self-check against the reference" in result.output
    assert result.output.count("OK (") == 6  # bias_act and upfirdn2d on the CPU, float32, float64 and bfloat16
    assert "impl='auto' uses the kernel" in result.output
    assert path.exists() and "skipped: no CUDA device" in path.read_text()


def test_the_steps_themselves_run_on_the_cpu(tmp_path, no_forced_reference):
    report = gpu_check.Report(str(tmp_path / "r.md"), echo=lambda line: None)
    assert gpu_check.build_and_selfcheck(report, "cpu") is True
    text = "\n".join(report.lines)
    assert text.count("OK (") == 6 and "built and loaded" in text  # 2 ops x float32, float64, bfloat16

    gpu_check.run_command(report, "echo", [sys.executable, "-c", "print('hello from the step')"], 30)
    tail = "\n".join(report.lines[-5:])
    assert "exit status 0" in tail and "hello from the step" in tail, tail

    lines = gpu_check.bias_act_bandwidth(torch.device("cpu"), numel=1 << 19, repeat=2)
    assert lines[0].startswith("copy bandwidth") and len(lines) == 1 + 2 * 2  # float32 x 2 layouts x 2 impls
    assert all("% of copy" in line for line in lines[1:])

    lines = gpu_check.train_points(torch.device("cpu"), points=((8, 2),), repeat=1, fmap_base=64, latent=16)
    assert len(lines) == 2 and all("img/s" in line and "FAILED" not in line for line in lines), lines
