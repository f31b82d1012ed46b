"""The NVlabs fp16 recipe (stylegan/fp16_recipe.py) on CPU tensors: which resolutions run in float16, the +-256
conv clamp, the nan_to_num repair of gradients, and `--precision fp16` refused on a CPU. The recipe's logic is
device-independent; CPU autocast runs float16 for these checks (through the pure-torch ops: the CPU kernels have no
float16), only its speed needs CUDA. The CUDA run of the recipe skips with a visible reason without a GPU."""
from __future__ import annotations

import types

import pytest
import torch
from click.testing import CliRunner

from stylegan import fp16_recipe as R
from stylegan.cli import main
from stylegan.config import DiscriminatorConfig, GeneratorConfig
from stylegan.discriminator import Discriminator, DownConv
from stylegan.generator import Generator
from stylegan.layers import EqualizedConv2d
from stylegan.precision import Precision, resolve_precision
from stylegan.synthesis import SynthesisLayer
from stylegan.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("single_thread")

FP16_CPU = Precision("fp16", "cpu", "fp16", "test: the recipe's logic on CPU tensors", num_fp16_res=2)
TINY = dict(resolution=32, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16,
            mapping_layers=2)


@pytest.mark.parametrize("max_res, k, want", [
    (1024, 4, 128), (256, 4, 32), (64, 4, 8), (32, 4, 8), (1024, 1, 1024), (1024, 2, 512), (32, 0, 64),
])
def test_fp16_resolution_is_the_official_formula(max_res, k, want):
    assert R.fp16_resolution(max_res, k) == want
    recipe = R.Recipe(k)
    fp16 = [r for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024) if r <= max_res and recipe.uses_fp16(r, max_res)]
    assert fp16 == [r for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024) if want <= r <= max_res]
    assert 4 not in fp16  # the 4x4 layers never run in float16


@pytest.mark.parametrize("max_res, k, match", [(48, 4, "power of two"), (2, 1, "power of two"),
                                               (64, -1, "int >= 0"), (64, 1.0, "int >= 0")])
def test_fp16_resolution_rejects_bad_input(max_res, k, match):
    with pytest.raises(ValueError, match=match):
        R.fp16_resolution(max_res, k)


def test_nan_to_num_grads_replaces_only_non_finite_values():
    a, b, c = (torch.nn.Parameter(torch.zeros(5)) for _ in range(3))
    a.grad = torch.tensor([1.5, float("nan"), float("inf"), -float("inf"), -2.25])
    b.grad = torch.tensor([3e38, -1e-30, 0.0, 7.0, 1e5])
    before_b = b.grad.clone()
    R.nan_to_num_grads_([a, b, c])  # c has no gradient: skipped
    assert a.grad.tolist() == [1.5, 0.0, 1e5, -1e5, -2.25]
    assert torch.equal(b.grad, before_b) and c.grad is None


def test_trainer_repairs_gradients_under_fp16_only():
    net = torch.nn.Linear(2, 1)
    for name, want in (("fp32", [float("nan"), float("inf")]), ("bf16", [float("nan"), float("inf")]),
                       ("fp16", [0.0, 1e5])):
        net.bias.grad = None
        net.weight.grad = torch.tensor([[float("nan"), float("inf")]])
        Trainer._repair_grads(types.SimpleNamespace(precision=Precision(name, "cpu")), net)
        got = net.weight.grad.flatten().tolist()
        assert str(got) == str(want), (name, got)  # NaN compared through its text


def test_conv_clamp_exists_only_inside_an_fp16_region():
    assert R.conv_clamp() is None and R.active() is None
    with FP16_CPU.autocast():
        assert R.conv_clamp() == 256.0 and R.active() == R.Recipe(2)
    assert R.conv_clamp() is None
    with resolve_precision("bf16", torch.device("cpu"), flags=["avx512_bf16"]).autocast():
        assert R.conv_clamp() is None  # bf16 has float32's range: no recipe


def _output_dtypes(net, modules, call):
    seen = {}
    def record(key):
        def hook(mod, inp, out) -> None:
            seen[key] = out.dtype
        return hook

    hooks = [m.register_forward_hook(record(key)) for key, m in modules.items()]
    try:
        call()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_generator_runs_float16_only_at_its_highest_resolutions():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**TINY), impl="ref")
    layers = {(m.resolution, m.layer_idx): m for m in G.modules() if isinstance(m, SynthesisLayer)}
    z = torch.randn(2, 16)
    seen = _output_dtypes(G, layers, lambda: FP16_CPU.run(G, z, noise_mode="const"))
    # 32 px, 2 fp16 resolutions: 16 and 32 px in float16, 4 and 8 px in float32
    assert {k: str(v) for k, v in seen.items()} == {
        k: "torch.float16" if k[0] >= 16 else "torch.float32" for k in layers}
    with torch.no_grad():
        img = FP16_CPU.run(G, z, noise_mode="const")
        ref = G(z, noise_mode="const")
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    assert float((img - ref).abs().max()) < 0.05 * float(ref.abs().max())  # float16 tracks float32


def test_discriminator_runs_float16_only_at_its_highest_resolutions_and_clamps_every_conv():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(resolution=32, fmap_base=64, fmap_max=16), impl="ref")
    convs = {name: m for name, m in D.named_modules() if isinstance(m, (EqualizedConv2d, DownConv))}
    scaled = ("fromrgb.3", "blocks.0.conv0")  # a float16 layer (32 px) and a float32 one (8 px)
    with torch.no_grad():
        for name in scaled:
            convs[name].weight.mul_(300.0)  # pre-activations far beyond +-256 (the others stay below it)
    img = torch.randn(4, 3, 32, 32)
    seen = {}
    peaks = {}

    def hook(key):
        def record(mod, inp, out):
            seen[key] = out.dtype
            peaks[key] = float(out.detach().float().abs().max())
        return record

    hooks = [m.register_forward_hook(hook(name)) for name, m in convs.items()]
    try:
        FP16_CPU.run(D, img)
    finally:
        for h in hooks:
            h.remove()
    for name in convs:
        kind, index = name.split(".")[:2]
        res = {"blocks": 8 << int(index) if index.isdigit() else 0, "fromrgb": 4 << int(index) if index.isdigit()
               else 0}.get(kind, 4)  # blocks[j]: 8 << j px; the epilogue: 4 px
        if name not in seen:
            assert kind == "fromrgb" and res != 32  # lod 0: only the top FromRGB runs
            continue
        assert seen[name] == (torch.float16 if res >= 16 else torch.float32), (name, seen[name])
        assert peaks[name] <= 256.0, (name, peaks[name])  # conv_clamp on every conv layer, fp16 or not
    assert all(peaks[name] == 256.0 for name in scaled), peaks
    assert float(D.fromrgb[3](img).detach().abs().max()) > 256.0  # without the recipe the same layer is not clamped


def test_fp16_on_a_cpu_is_refused_at_the_command_line(tmp_path):
    r = CliRunner().invoke(main, ["train", "--outdir", str(tmp_path / "run"), "--data", "builtin:glyphs",
                                  "--glyphs", "64", "--resolution", "8", "--kimg", "0.01", "--precision", "fp16",
                                  "--device", "cpu"])
    assert r.exit_code == 2 and "'fp16' is for CUDA devices only" in r.output, r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", "--outdir", str(tmp_path / "run2"), "--fp16-res", "-1"])
    assert r.exit_code == 2 and "--fp16-res: -1: expected an int >= 0" in r.output, r.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: the fp16 recipe's speed path")
def test_fp16_recipe_on_cuda_runs_finite_and_tracks_fp32():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**TINY)).to(dev)
    fp16 = resolve_precision("fp16", dev, num_fp16_res=2)
    z = torch.randn(4, 16, device=dev)
    with torch.no_grad():
        img = fp16.run(G, z, noise_mode="const")
        ref = G(z, noise_mode="const")
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    assert float((img - ref).abs().max()) < 0.05 * float(ref.abs().max())
