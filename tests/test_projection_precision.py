"""`stylegan project --precision`: the optimisation steps run the synthesis network in bf16, the result is rendered
in fp32 (so proj.png is what `generate --ws` draws), the file says which precision ran, the bf16 projection is as
good as the fp32 one on a target the network can draw, and fp16 on a CPU is refused before any work."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from stylegan.cli import main
from stylegan.loading import save
from stylegan.precision import resolve_precision
from stylegan.projection import ProjectionConfig, project, render
from stylegan.ws_file import load_ws_file

from projection_support import own_targets, small_generator

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIG = ProjectionConfig(num_steps=100, w_avg_samples=1000)


@pytest.fixture(scope="module")
def bf16():
    return resolve_precision("bf16", torch.device("cpu"), warn=False)


def _conv_output_dtypes(G):
    """Records the output dtype of every synthesis layer with a convolution while the hooks are installed."""
    seen = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
             for layer in G.synthesis.layers if getattr(layer, "conv", None) is not None]
    return seen, hooks


def test_bf16_steps_and_an_fp32_result(bf16):
    G = small_generator(noise_strength=0.0)  # no noise: W alone can reproduce the network's own images
    target = own_targets(G, 2)
    seen, hooks = _conv_output_dtypes(G)
    try:
        result = project(G, target, CONFIG, progress=False, precision=bf16)
    finally:
        for h in hooks:
            h.remove()
    per_render = len([layer for layer in G.synthesis.layers if getattr(layer, "conv", None) is not None])
    final_renders = per_render * target.shape[0]  # `render` draws one target per forward
    steps, final = seen[:-final_renders], seen[-final_renders:]
    assert len(steps) == CONFIG.num_steps * per_render
    assert set(steps) == {torch.bfloat16}  # every optimisation step ran the convolutions in bf16
    assert set(final) == {torch.float32}   # the result's rendering is the fp32 one
    assert (result.images == render(G, result.ws, result.noise)).all()

    fp32 = project(G, target, CONFIG, progress=False)
    assert [r["loss"] for r in result.log] != [r["loss"] for r in fp32.log]  # bf16 arithmetic, not fp32's
    # Both find the network's own images (measured on the EPYC VM: fp32 39.2 / 46.1 dB, bf16 39.6 / 45.6 dB).
    assert min(fp32.psnr) >= 35 and min(result.psnr) >= 35, (fp32.psnr, result.psnr)
    assert max(abs(a - b) for a, b in zip(result.psnr, fp32.psnr)) < 1.5, (result.psnr, fp32.psnr)


def test_cli_precision_is_recorded_and_fp16_is_refused(tmp_path):
    G = small_generator()
    save(tmp_path / "net.pt", G=G)
    import PIL.Image
    PIL.Image.fromarray(own_targets(G, 1)[0].permute(1, 2, 0).numpy()).save(tmp_path / "t.png")
    base = ["project", "--network", str(tmp_path / "net.pt"), "--target", str(tmp_path / "t.png"), "--steps", "3",
            "--device", "cpu"]
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        res = CliRunner().invoke(main, base + ["--outdir", str(out), "--precision", precision])
        assert res.exit_code == 0, res.output
        assert load_ws_file(out / "projected.npz").meta["precision"] == precision
    assert "precision bf16" in res.output  # what runs is said on stderr
    res = CliRunner().invoke(main, base + ["--outdir", str(tmp_path / "fp16"), "--precision", "fp16"])
    assert res.exit_code == 2 and "--precision" in res.output
    assert "precision 'fp16' is for CUDA devices only" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "fp16").exists()
