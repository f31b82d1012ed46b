"""Issue 20, the generate side: user-sized numbers checked before any work (--frames, --grid, --seeds), and one-line
errors instead of tracebacks (interpolate --out's extension, plot --x, bench train --batch).

The huge cases run in a subprocess under a memory ceiling (RLIMIT_AS), so they prove the command refuses at once:
code that tried to allocate would die there with a MemoryError or std::bad_alloc traceback instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan import generate as api
from stylegan.cli.bench import bench
from stylegan.cli.generate import generate, interpolate
from stylegan.cli.plot import plot
from stylegan.config import GeneratorConfig
from stylegan.generator import Generator
from stylegan.loading import save

from network_test_support import TINY_GENERATOR as TINY

MEMORY_CEILING = 3 << 30  # address space of the capped subprocess: torch and a tiny network fit, the huge cases not


def run_under_memory_ceiling(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs Python `code` in a subprocess whose address space is capped at MEMORY_CEILING."""
    prologue = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CEILING}, {MEMORY_CEILING}))\n"
    env = dict(os.environ, STYLEGAN_OPS="ref")
    return subprocess.run([sys.executable, "-c", prologue + code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def run_cli_under_memory_ceiling(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    """`stylegan ARGS` under the memory ceiling."""
    return run_under_memory_ceiling(f"import sys; sys.argv = ['stylegan'] + {list(args)!r}\n"
                                    f"from stylegan.cli import main; main()", cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in proc.stderr, proc.stderr[-3000:]


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


@pytest.fixture(scope="module")
def tiny_G() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def net_file(tmp_path_factory, tiny_G) -> Path:
    path = tmp_path_factory.mktemp("nets") / "tiny.pt"
    save(path, G=tiny_G, G_ema=tiny_G)
    return path


def test_memory_ceiling_is_real(tmp_path):
    """The ceiling itself must bite, or the fail-fast tests below would prove nothing."""
    proc = run_under_memory_ceiling(f"bytearray({2 * MEMORY_CEILING})", tmp_path)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


# ----------------------------------------------------------------------------------------------------------------
# --frames, --grid, --seeds


def test_interpolate_huge_frames_fails_fast_under_memory_ceiling(tmp_path, net_file):
    proc = run_cli_under_memory_ceiling(["interpolate", "--network", str(net_file), "--seeds", "1,2",
                                         "--frames", "100000000000", "--out", "walk.gif"], tmp_path)
    assert_one_line_error(proc, "--frames", "GiB", "limit of 2.0 GiB")
    assert not (tmp_path / "walk.gif").exists()


def test_interpolate_api_refuses_frames_beyond_the_result_limit(tiny_G):
    frame_bytes = 32 * 32 * 3
    most = api.MAX_RESULT_BYTES // frame_bytes
    with pytest.raises(ValueError, match=f"{most + 1} frames of 32x32x3 pixels need .* above the limit"):
        api.interpolate(tiny_G, [1, 2], most + 1)


def test_generate_api_refuses_seeds_beyond_the_result_limit(tiny_G):
    with pytest.raises(ValueError, match="1000000 images of 32x32x3 pixels need an estimated 2.9 GiB"):
        api.generate_images(tiny_G, range(1_000_000))


def test_interpolate_batches_give_the_same_frames_as_one_batch(tiny_G):
    """Latents are now made per batch: the frames must not depend on the batch size."""
    for space in api.INTERPOLATION_SPACES:
        one = api.interpolate(tiny_G, [3, 4, 5], 7, space=space, batch_size=7, progress=False)
        many = api.interpolate(tiny_G, [3, 4, 5], 7, space=space, batch_size=2, progress=False)
        assert one.shape == (7, 32, 32, 3) and (abs(one.astype(int) - many.astype(int)) <= 1).all()


def test_generate_huge_grid_fails_fast_under_memory_ceiling(tmp_path, net_file):
    proc = run_cli_under_memory_ceiling(["generate", "--network", str(net_file), "--seeds", "1",
                                         "--grid", "100000x100000", "--outdir", "out"], tmp_path)
    assert_one_line_error(proc, "--grid", "3200000x3200000", "limit of 134 Mpx")
    assert not (tmp_path / "out").exists()


def test_generate_refuses_a_grid_beyond_the_pixel_budget(net_file, tmp_path):
    result = CliRunner().invoke(generate, ["--network", str(net_file), "--seeds", "1", "--grid", "1000x1000",
                                           "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "--grid" in result.output and "32000x32000" in result.output and "134 Mpx" in result.output
    assert not (tmp_path / "out").exists()


def test_generate_warns_for_a_large_grid(net_file, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "LARGE_GRID_PIXELS", 4 * 32 * 32)  # a 3x2 grid counts as large here
    result = CliRunner().invoke(generate, ["--network", str(net_file), "--seeds", "1-6", "--grid", "3x2",
                                           "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "warning: a 3x2 grid of 32 px images is a 96x64 image" in result.output
    assert (tmp_path / "out" / "grid.png").is_file()
    result = CliRunner().invoke(generate, ["--network", str(net_file), "--seeds", "1-2", "--grid", "2x1",
                                           "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 0 and "warning" not in result.output


def test_generate_refuses_seeds_beyond_the_result_limit(net_file, tmp_path):
    result = CliRunner().invoke(generate, ["--network", str(net_file), "--seeds", "0-999999",
                                           "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "--seeds" in result.output and "limit of 2.0 GiB" in result.output
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------------
# interpolate --out: the extension decides the format


@pytest.mark.parametrize("name, image_format", [("walk.gif", "GIF"), ("walk.png", "PNG"), ("WALK.PNG", "PNG")])
def test_interpolate_writes_the_format_of_the_extension(net_file, tmp_path, name, image_format):
    out = tmp_path / name
    result = CliRunner().invoke(interpolate, ["--network", str(net_file), "--seeds", "1,2", "--frames", "4",
                                              "--out", str(out)])
    assert result.exit_code == 0, result.output
    with PIL.Image.open(out) as im:
        assert im.format == image_format and im.n_frames == 4 and im.is_animated


def test_interpolate_refuses_other_extensions(net_file, tmp_path):
    out = tmp_path / "walk.mp4"
    result = CliRunner().invoke(interpolate, ["--network", str(net_file), "--seeds", "1,2", "--frames", "4",
                                              "--out", str(out)])
    assert result.exit_code == 2 and "--out" in result.output and ".gif or .png" in result.output
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------------------
# plot --x


def _log(path: Path) -> Path:
    path.write_text("".join(json.dumps({"kimg": k, "loss_G": 2.0 - k}) + "\n" for k in range(5)))
    return path


def test_plot_unknown_x_key_is_an_error_naming_the_option(tmp_path):
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(plot, [str(_log(tmp_path / "log.jsonl")), "--out", str(out), "--x", "nokey"])
    assert result.exit_code == 2, result.output
    assert "--x" in result.output and "'nokey'" in result.output and "kimg, loss_G" in result.output
    assert not out.exists()


def test_plot_series_skips_records_without_the_x_key():
    """A record lacking x used to be drawn at its index, on the same axis as kimg values."""
    from stylegan.plot import series

    records = [{"kimg": 10.0, "loss_G": 1.0}, {"loss_G": 2.0}, {"kimg": 12.0, "loss_G": 3.0}]
    assert series(records, "loss_G") == [(10.0, 1.0), (12.0, 3.0)]


# ----------------------------------------------------------------------------------------------------------------
# bench train --batch


def test_bench_train_batch_not_divisible_by_the_mbstd_group_is_a_one_line_error():
    result = CliRunner().invoke(bench, ["train", "--batch", "7", "--repeat", "1", "--fmap-max", "16"])
    assert result.exit_code == 2, result.output
    assert "--batch" in result.output and "minibatch 7 is not divisible" in result.output
    assert "Traceback" not in result.output and "## malloc" not in result.output  # refused before measuring


def test_bench_point_process_reports_a_bad_option_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stylegan.benchmarks.networks", "--resolution", "3", "--impl", "ref",
                           "--json-out", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "resolution" in proc.stderr and len(proc.stderr.splitlines()) == 1
