"""`stylegan bench conv`: the widths are the networks' own, the FLOP count is torch's, the ratios are the times',
the dtype and layout asked for are the ones the convolution gets, and bad options are refused.
A benchmark, not a timed test: nothing here checks a speed."""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from stylegan.benchmarks import conv
from stylegan.cli import main
from stylegan.config import GeneratorConfig
from stylegan.generator import Generator
from stylegan.precision import cpu_flags, native_bf16_flag


def test_widths_are_those_of_the_generator_blocks():
    cfg = GeneratorConfig(resolution=64, fmap_base=128, fmap_max=32, latent_size=16, dlatent_size=16,
                          mapping_fmaps=16)
    layers = Generator(cfg).synthesis.layers
    for res in (4, 8, 16, 32, 64):
        second_conv = layers[2 * (int(math.log2(res)) - 2) + 1].conv.weight  # the block's channels -> channels conv
        c = conv.block_channels(res, 128, 32)
        assert tuple(second_conv.shape) == (c, c, 3, 3), res
    assert [conv.block_channels(r, 8192, 512) for r in (8, 32, 64, 256, 1024)] == [512, 512, 256, 64, 16]


@pytest.mark.parametrize("backward", [False, True])
def test_flop_count_is_torchs(backward):
    batch, channels, res = 2, 6, 8
    x = torch.randn(batch, channels, res, res, requires_grad=True)
    w = torch.randn(channels, channels, 3, 3, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        y = torch.nn.functional.conv2d(x, w, padding=1)
        if backward:
            torch.autograd.grad(y, (x, w), torch.ones_like(y))
    assert conv.conv_flops(batch, channels, res, backward) == counter.get_total_flops()


def _row(res, dtype, layout, fwd_s, fwd_bwd_s):
    return {"resolution": res, "channels": 8, "batch": 2, "dtype": dtype, "layout": layout, "fwd_s": fwd_s,
            "fwd_bwd_s": fwd_bwd_s, "fwd_gflops": 1.0, "fwd_bwd_gflops": 1.0}


def test_ratios_and_ceiling_come_from_the_times():
    rows = [_row(8, "fp32", "nchw", 4.0, 12.0), _row(8, "bf16", "nchw", 2.0, 8.0),
            _row(8, "bf16", "channels_last", 1.0, 4.0), _row(16, "fp32", "nchw", 10.0, 30.0),
            _row(16, "bf16", "nchw", 5.0, 20.0)]
    table = conv.table_rows(rows)
    assert [r[-2:] for r in table] == [[1.0, 1.0], [2.0, 1.5], [4.0, 3.0], [1.0, 1.0], [2.0, 1.5]]
    assert conv.ceilings(rows) == [
        "bf16 nchw vs fp32 nchw, fwd+bwd: 1.50x over all resolutions together (1.50x to 1.50x per resolution)",
        "bf16 channels_last vs fp32 nchw, fwd+bwd: 3.00x over all resolutions together (3.00x to 3.00x per "
        "resolution)"]
    rows.append(_row(16, "bf16", "channels_last", 1.0, 6.0))  # 42 s of fp32 against 10 s: 4.2x together
    assert conv.ceilings(rows)[1].startswith("bf16 channels_last vs fp32 nchw, fwd+bwd: 4.20x over all resolutions "
                                             "together (3.00x to 5.00x per resolution)")
    assert conv.ceilings(rows[:1]) == []  # fp32 NCHW alone: nothing to compare


def test_each_point_runs_in_the_dtype_and_layout_asked(monkeypatch):
    seen = []
    real_conv2d = conv.F.conv2d

    def recording_conv2d(x, w, **kw):
        seen.append((x.dtype, w.dtype, x.is_contiguous(memory_format=torch.channels_last),
                     x.is_contiguous()))
        return real_conv2d(x, w, **kw)

    monkeypatch.setattr(conv.F, "conv2d", recording_conv2d)
    result = conv.measure_all([8], 2, ["fp32", "bf16"], ["nchw", "channels_last"], 64, 16, torch.device("cpu"), 1)
    assert [(r["dtype"], r["layout"]) for r in result["rows"]] == [
        ("fp32", "nchw"), ("bf16", "nchw"), ("fp32", "channels_last"), ("bf16", "channels_last")]
    calls_per_point = len(seen) // 4
    for i, (dtype, layout) in enumerate([(torch.float32, "nchw"), (torch.bfloat16, "nchw"),
                                         (torch.float32, "channels_last"), (torch.bfloat16, "channels_last")]):
        for x_dtype, w_dtype, channels_last, contiguous in seen[i * calls_per_point:(i + 1) * calls_per_point]:
            assert x_dtype == w_dtype == dtype
            assert (channels_last, contiguous) == ((True, False) if layout == "channels_last" else (False, True))
    assert all(r["fwd_s"] > 0 and r["fwd_bwd_s"] > 0 for r in result["rows"])


def test_cli_prints_the_table_and_writes_the_json(tmp_path):
    out = tmp_path / "conv.json"
    res = CliRunner().invoke(main, ["bench", "conv", "--resolutions", "8,16", "--batch", "2", "--fmap-base", "64",
                                    "--fmap-max", "16", "--repeat", "1", "--malloc", "default", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "## bench conv, malloc=default" in res.output
    assert "bf16 channels_last vs fp32 nchw, fwd+bwd:" in res.output
    data = json.loads(out.read_text())["default"]
    assert len(data["rows"]) == 2 * 2 * 2
    assert {(r["resolution"], r["channels"]) for r in data["rows"]} == {(8, 16), (16, 8)}
    assert data["machine"]["torch_threads"] >= 1
    assert data["device"].startswith("cpu (native bf16: " if native_bf16_flag(cpu_flags()) else "cpu (no native bf16")
    assert data["device"] in res.output


@pytest.mark.parametrize("args, hint, message", [
    (["--resolutions", "8,12"], "--resolutions", "'8,12': expected comma-separated powers of two from 4 to 1024"),
    (["--resolutions", "2048"], "--resolutions", "powers of two from 4 to 1024"),
    (["--dtypes", "fp32,int8"], "--dtypes", "expected a comma-separated list of fp32, bf16, fp16"),
    (["--dtypes", "fp16"], "--dtypes", "precision 'fp16' is for CUDA devices only"),
    (["--layouts", "nhwc"], "--layouts", "expected a comma-separated list of nchw, channels_last"),
])
def test_bad_options_are_refused_before_measuring(args, hint, message):
    res = CliRunner().invoke(main, ["bench", "conv", *args])
    assert res.exit_code == 2
    assert hint in res.output and message in res.output
    assert "Traceback" not in res.output and "measuring" not in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    res = CliRunner().invoke(main, ["bench", "conv", "--device", "cuda"])
    assert res.exit_code == 2 and "CUDA is not available" in res.output

