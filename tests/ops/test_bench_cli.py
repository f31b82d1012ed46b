"""`stylegan bench ops` smoke test (tiny --quick shapes; nothing here is timed) and the table/allocator helpers."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from stylegan.benchmarks import timing
from stylegan.cli.bench import bench


def test_bench_ops_quick_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(bench, ["ops", "--quick", "--repeat", "1", "--malloc", "tuned", "--json", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "malloc=tuned" in result.output and "MALLOC_MMAP_THRESHOLD_=4294967296" in result.output
    assert "copy bandwidth" in result.output and "torch" in result.output and "threads" in result.output
    data = json.loads(out.read_text())
    run = data["tuned"]
    assert run["machine"]["malloc"]["name"] == "tuned"  # the subprocess really ran under the tuned env
    assert run["kernel_used"]["bias_act"] == "kernel"
    rows = run["rows"]
    assert {r["phase"] for r in rows} == {"fwd", "fwd+bwd", "double bwd"}
    assert {r["op"] for r in rows} >= {"bias_act lrelu+bias", "upsample2d f=[1,3,3,1]", "filter2d blur [1,2,1]",
                                       "downsample2d box f=[1,1]"}
    for r in rows:
        assert r["ref_ms"] > 0 and r["kernel_ms"] > 0
        assert r["speedup"] == pytest.approx(r["ref_ms"] / r["kernel_ms"])


def test_bench_rejects_bad_options():
    runner = CliRunner()
    result = runner.invoke(bench, ["ops", "--malloc", "fast"])
    assert result.exit_code == 2 and "fast" in result.output
    result = runner.invoke(bench, ["ops", "--repeat", "0"])
    assert result.exit_code == 2 and "--repeat" in result.output


def test_env_for_malloc_sets_or_removes_the_allocator_variables():
    base = {"PATH": "/bin", "MALLOC_TOP_PAD_": "7"}
    tuned = timing.env_for_malloc("tuned", base)
    assert {k: tuned[k] for k in timing.TUNED_MALLOC_ENV} == timing.TUNED_MALLOC_ENV and tuned["PATH"] == "/bin"
    default = timing.env_for_malloc("default", base)
    assert not any(k in default for k in timing.TUNED_MALLOC_ENV)
    assert timing.malloc_settings(default)["name"] == "default"
    assert timing.malloc_settings(tuned)["name"] == "tuned"
    assert timing.malloc_settings(base)["name"] == "custom"
    with pytest.raises(ValueError, match="'huge'"):
        timing.env_for_malloc("huge")


def test_format_table_aligns_columns():
    text = timing.format_table(["op", "ms"], [["a", 1.5], ["long name", 123.456]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # every line the same width
    assert "123.5" in text and "1.50" in text and lines[1].endswith(":|")


def test_measure_validates_repeat():
    with pytest.raises(ValueError, match="repeat must be >= 1, got 0"):
        timing.measure(lambda: None, repeat=0)
    assert timing.measure(lambda: None, repeat=3).runs == 3
