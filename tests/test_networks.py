"""Behaviour of Generator / Discriminator beyond the official fixture: fades, truncation, noise, mixing, fused
resampling, labels, channels, input validation, impl switching, and kernel-vs-reference equality."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from network_test_support import cpu_kernels_unavailable
from stylegan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan.layers import minibatch_stddev, upscale2d_nearest
from stylegan.ops.conv2d import WeightTransform

SMALL_G = dict(resolution=32, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16,
               mapping_layers=2)
SMALL_D = dict(resolution=32, fmap_base=64, fmap_max=16)


def small_G(**kw) -> Generator:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**{**SMALL_G, **kw}), impl="ref")
    _randomize(G)
    return G


def small_D(**kw) -> Discriminator:
    torch.manual_seed(1)
    D = Discriminator(DiscriminatorConfig(**{**SMALL_D, **kw}), impl="ref")
    _randomize(D)
    return D


def _randomize(net: torch.nn.Module) -> None:
    """Moves zero-initialised parameters (biases, noise strengths) away from 0 so every term matters."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if torch.all(p == 0):
                p.normal_(0, 0.3)
        if hasattr(net, "w_avg"):
            net.w_avg.normal_()


def box_down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


# ---- progressive growing --------------------------------------------------------------------------------------------
@torch.no_grad()
def test_generator_fade_is_continuous_at_every_level():
    G = small_G()
    z = torch.randn(2, 16)
    eps = 1e-5
    for k in range(G.config.max_lod):
        at_k = G(z, lod=k, noise_mode="const")
        assert at_k.shape[-1] == 32 >> k
        # lod -> k from above: same resolution, the new level has weight 1 - eps.
        torch.testing.assert_close(G(z, lod=k + eps, noise_mode="const"), at_k, atol=1e-3, rtol=0)
        # lod -> k+1 from below: the old level (nearest-upsampled) takes over.
        below = G(z, lod=k + 1 - eps, noise_mode="const")
        torch.testing.assert_close(below, upscale2d_nearest(G(z, lod=k + 1, noise_mode="const")), atol=1e-3, rtol=0)
        # ... and mid-way it is a genuine mix (not equal to either end).
        mid = G(z, lod=k + 0.5, noise_mode="const")
        assert (mid - at_k).abs().max() > 1e-2 and (mid - below).abs().max() > 1e-2
    assert G(z, lod=G.config.max_lod, noise_mode="const").shape == (2, 3, 4, 4)


@torch.no_grad()
def test_generator_lod_runs_no_layer_above_the_current_level():
    G = small_G()
    ran = []
    for i, layer in enumerate(G.synthesis.layers):
        layer.register_forward_hook(lambda *a, i=i: ran.append(i))
    G(torch.randn(1, 16), lod=1.5)
    assert ran == list(range(6))  # layers up to 16x16 only


@torch.no_grad()
def test_discriminator_fade_is_continuous_at_every_level():
    D = small_D()
    img = torch.randn(4, 3, 32, 32)
    eps = 1e-5
    for k in range(D.config.max_lod):
        x = img
        for _ in range(k):
            x = box_down(x)
        at_k = D(x, lod=k)
        torch.testing.assert_close(D(x, lod=k + eps), at_k, atol=1e-3, rtol=0)
        torch.testing.assert_close(D(x, lod=k + 1 - eps), D(box_down(x), lod=k + 1), atol=1e-3, rtol=0)
        assert (D(x, lod=k + 0.5) - at_k).abs().max() > 1e-4


# ---- truncation, mixing, w_avg -----------------------------------------------------------------------------------
def test_truncation():
    G = small_G()
    ws = G.mapping(torch.randn(3, 16))
    for psi, cutoff in ((1.0, 8), (None, 8), (0.5, None), (0.5, 0), (0.5, -1)):
        assert G.truncate(ws, psi, cutoff) is ws
    out = G.truncate(ws, 0.0, 3)
    torch.testing.assert_close(out[:, :3], G.w_avg.expand(3, 3, -1))
    torch.testing.assert_close(out[:, 3:], ws[:, 3:])
    half = G.truncate(ws, 0.5, 100)
    torch.testing.assert_close(half, (ws + G.w_avg) / 2)


def test_mix_and_crossover():
    G = small_G()
    ws, ws2 = G.mapping(torch.randn(2, 16)), G.mapping(torch.randn(2, 16))
    mixed = G.mix(ws, ws2, 3)
    assert torch.equal(mixed[:, :3], ws[:, :3]) and torch.equal(mixed[:, 3:], ws2[:, 3:])
    per_sample = G.mix(ws, ws2, torch.tensor([0, 8]))
    assert torch.equal(per_sample[0], ws2[0]) and torch.equal(per_sample[1], ws[1])
    with pytest.raises(ValueError, match="crossover"):
        G.mix(ws, ws2, 2.5)
    with pytest.raises(ValueError, match="crossover"):
        G(torch.randn(2, 16), z2=torch.randn(2, 16))


def test_update_w_avg():
    G = small_G()
    before = G.w_avg.clone()
    ws = G.mapping(torch.randn(4, 16))
    G.update_w_avg(ws, beta=0.9)
    torch.testing.assert_close(G.w_avg, ws[:, 0].mean(0).detach() + (before - ws[:, 0].mean(0).detach()) * 0.9)


# ---- noise -------------------------------------------------------------------------------------------------------
@torch.no_grad()
def test_noise_modes():
    G = small_G()
    ws = G.mapping(torch.randn(2, 16))
    const = G.synthesis(ws, noise_mode="const")
    assert torch.equal(const, G.synthesis(ws, noise_mode="const"))
    assert not torch.allclose(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(none, G.synthesis(ws, noise_mode="none")) and not torch.allclose(none, const)
    explicit = G.synthesis(ws, noise=G.synthesis.const_noise())
    torch.testing.assert_close(explicit, const)
    zeros = [torch.zeros_like(n) for n in G.synthesis.const_noise()]
    torch.testing.assert_close(G.synthesis(ws, noise=zeros), none)
    per_sample = [n.expand(2, -1, -1, -1).clone() for n in G.synthesis.const_noise()]
    per_sample[5][1].normal_()
    out = G.synthesis(ws, noise=per_sample)
    torch.testing.assert_close(out[0], const[0])
    assert not torch.allclose(out[1], const[1])


def test_noise_validation():
    G = small_G()
    ws = G.mapping(torch.randn(2, 16))
    noise = G.synthesis.const_noise()
    with pytest.raises(ValueError, match="num_layers=8"):
        G.synthesis(ws, noise=noise[:7])
    bad = list(noise)
    bad[3] = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"noise\[3\]"):
        G.synthesis(ws, noise=bad)
    bad[3] = torch.zeros(3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"noise\[3\]"):
        G.synthesis(ws, noise=bad)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


# ---- fused resampling ----------------------------------------------------------------------------------------------
BIG_G = dict(resolution=256, fmap_base=256, fmap_max=16, latent_size=8, dlatent_size=8, mapping_fmaps=8,
             mapping_layers=2)


@torch.no_grad()
def test_fused_up_conv_equals_nearest_up_and_flipped_conv():
    G = Generator(GeneratorConfig(**BIG_G), impl="ref")
    fused = [layer.fused for layer in G.synthesis.layers]
    assert fused == [False] * 10 + [True, False, True, False]  # up-convs producing 128 and 256 px
    layer = G.synthesis.layers[10]
    x = torch.randn(2, layer.conv.weight.shape[1], 64, 64)
    w = torch.randn(2, 8)
    w_rt = layer.conv.scaled_weight()
    expected = layer.resample.blur(F.conv2d(upscale2d_nearest(x), w_rt.flip(2, 3), padding=1))
    torch.testing.assert_close(layer.produce(x, w), expected, atol=1e-4, rtol=1e-4)
    # and it is NOT the non-fused path with the same weights (docs/FORMATS.md §1.8)
    assert not torch.allclose(layer.produce(x, w), layer.resample.blur(F.conv2d(upscale2d_nearest(x), w_rt, padding=1)),
                              atol=1e-3)
    img = G(torch.randn(2, 8), noise_mode="const")
    assert img.shape == (2, 3, 256, 256) and torch.isfinite(img).all()


@torch.no_grad()
def test_fused_down_conv_equals_conv_and_box_average():
    D = Discriminator(DiscriminatorConfig(resolution=256, fmap_base=256, fmap_max=16), impl="ref")
    assert [b.conv1.fused for b in D.blocks] == [False] * 4 + [True] * 2  # blocks at input res 128 and 256
    conv = D.blocks[4].conv1
    x = torch.randn(2, conv.weight.shape[1], 32, 32)
    w = conv.scaled_weight()
    torch.testing.assert_close(F.conv2d(x, WeightTransform(fused=True, fused_gain=0.25)(w), stride=2, padding=1),
                               F.avg_pool2d(F.conv2d(x, w, padding=1), 2), atol=1e-5, rtol=1e-5)
    non_fused = copy.deepcopy(conv)
    non_fused.fused = False
    torch.testing.assert_close(conv(x), non_fused(x), atol=1e-5, rtol=1e-5)
    assert D(torch.randn(4, 3, 256, 256)).shape == (4, 1)


def test_forced_fused_scale_settings():
    G = Generator(GeneratorConfig(**{**SMALL_G, "fused_scale": True}), impl="ref")
    assert all(layer.fused for layer in G.synthesis.layers[2::2])
    G = Generator(GeneratorConfig(**{**BIG_G, "fused_scale": False}), impl="ref")
    assert not any(layer.fused for layer in G.synthesis.layers)
    D = Discriminator(DiscriminatorConfig(**{**SMALL_D, "fused_scale": True}), impl="ref")
    assert all(b.conv1.fused for b in D.blocks)


def _fused(w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """The 4x4 kernel of a fused up/down conv, as the layers build it."""
    return WeightTransform(fused=True, fused_gain=gain)(w)


def test_fused_kernel_is_bit_identical_to_pad_and_add_and_has_its_gradient():
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    p = F.pad(w, [1, 1, 1, 1])
    expected = p[..., 1:, 1:] + p[..., :-1, 1:] + p[..., 1:, :-1] + p[..., :-1, :-1]
    for gain in (1.0, 0.25):
        k = _fused(w, gain)
        assert k.is_contiguous() and torch.equal(k, expected * gain)
        g = torch.randn(5, 4, 4, 4, dtype=torch.float64)
        (ours,) = torch.autograd.grad(k, w, g)
        (ref,) = torch.autograd.grad(expected * gain, w, g)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    w32 = torch.randn(64, 32, 3, 3)
    p32 = F.pad(w32, [1, 1, 1, 1])
    assert torch.equal(_fused(w32), p32[..., 1:, 1:] + p32[..., :-1, 1:] + p32[..., 1:, :-1] + p32[..., :-1, :-1])
    assert torch.equal(_fused(w32.transpose(0, 1)), _fused(w32.transpose(0, 1).contiguous()))


def _flip_up_conv_weights(src: Generator, dst: Generator) -> None:
    """dst <- src's weights with every up-conv's 3x3 kernel flipped (official fused up-conv = flipped unfused)."""
    state = src.state_dict()
    for i, layer in enumerate(dst.synthesis.layers):
        if layer.kind == "up":
            key = f"synthesis.layers.{i}.conv.weight"
            state[key] = state[key].flip(2, 3)
    dst.load_state_dict(state)


@pytest.mark.parametrize("impl", ["ref", "auto"])
@pytest.mark.parametrize("lod", [0.0, 0.5, 1.5])
def test_fused_scale_networks_compute_the_unfused_function(impl, lod):
    """fused_scale=True at low resolutions (training's default): D with the SAME weights, G with its up-conv
    kernels flipped, give the unfused outputs and input gradients to float tolerance; G with the same
    (unflipped) weights does not (official fused semantics, docs/FORMATS.md §1.8)."""
    G0 = small_G(fused_scale=False)
    G1 = Generator(GeneratorConfig(**{**SMALL_G, "fused_scale": True}), impl="ref")
    assert all(layer.fused for layer in G1.synthesis.layers if layer.kind == "up")
    assert not any(layer.fused for layer in G0.synthesis.layers)
    _flip_up_conv_weights(G0, G1)
    D0 = small_D(fused_scale=False)
    D1 = Discriminator(DiscriminatorConfig(**{**SMALL_D, "fused_scale": True}), impl="ref")
    D1.load_state_dict(D0.state_dict())
    assert all(b.conv1.fused for b in D1.blocks) and not any(b.conv1.fused for b in D0.blocks)
    for net in (G0, G1, D0, D1):
        net.impl = impl

    ws = G0.mapping(torch.randn(4, 16)).detach()
    results = []
    for G, D in ((G0, D0), (G1, D1)):
        w = ws.clone().requires_grad_(True)
        img = G.synthesis(w, lod=lod, noise_mode="const")
        x = img.detach().requires_grad_(True)
        score = D(x, lod=lod)
        (g_img,) = torch.autograd.grad(score.sum(), x)
        (g_ws,) = torch.autograd.grad((img * g_img).sum(), w)
        results.append((img.detach(), score.detach(), g_img, g_ws))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * a.abs().max().item())
    assert results[0][0].shape[-1] == G0.config.resolution_at(lod)
    _flip_up_conv_weights(G1, G1)  # the unfused kernels unflipped in the fused network: a different function
    assert not torch.allclose(G1.synthesis(ws, lod=lod, noise_mode="const"), results[0][0], atol=1e-3)


# ---- minibatch stddev -----------------------------------------------------------------------------------------------
def test_minibatch_stddev_uses_strided_groups():
    x = torch.randn(6, 4, 2, 2)
    y = minibatch_stddev(x, group_size=2, num_features=1)
    assert y.shape == (6, 5, 2, 2) and torch.equal(y[:, :4], x)
    for m in range(3):  # group m = samples m and m + 3
        members = x[[m, m + 3]]
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(y[m, 4], expected.expand(2, 2))
        torch.testing.assert_close(y[m + 3, 4], expected.expand(2, 2))
    with pytest.raises(ValueError, match="not divisible by the group size 4"):
        minibatch_stddev(torch.randn(6, 4, 2, 2), group_size=4)
    D = small_D()
    with pytest.raises(ValueError, match="batch size 6"):
        D(torch.randn(6, 3, 32, 32))
    assert D(torch.randn(3, 3, 32, 32)).shape == (3, 1)  # G = min(4, 3) = 3 divides 3


# ---- labels, channels, options -----------------------------------------------------------------------------------
@torch.no_grad()
def test_label_conditional_networks():
    G = small_G(label_size=3)
    D = small_D(label_size=3)
    z = torch.randn(2, 16)
    eye = torch.eye(3)
    a, b = G(z, eye[:2], noise_mode="const"), G(z, eye[1:], noise_mode="const")
    assert not torch.allclose(a, b)
    img = torch.randn(4, 3, 32, 32)
    c = torch.rand(4, 3)
    parts = torch.cat([D(img, eye[[i] * 4]) for i in range(3)], dim=1)  # per-label scores
    torch.testing.assert_close(D(img, c), (parts * c).sum(1, keepdim=True), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="label_size=3"):
        G(z)
    with pytest.raises(ValueError, match="label_size=3"):
        D(img, torch.rand(4, 2))
    with pytest.raises(ValueError, match="label_size=0"):
        small_D()(img, c)


@torch.no_grad()
def test_single_channel_images():
    G, D = small_G(num_channels=1), small_D(num_channels=1)
    img = G(torch.randn(2, 16), lod=0.5)
    assert img.shape == (2, 1, 32, 32)
    assert D(img, lod=0.5).shape == (2, 1)


@torch.no_grad()
@pytest.mark.parametrize("options", [
    dict(const_input_layer=False), dict(use_styles=False), dict(use_noise=False), dict(use_pixel_norm=True),
    dict(use_instance_norm=False), dict(nonlinearity="relu", mapping_nonlinearity="relu"),
    dict(use_wscale=False, normalize_latents=False), dict(blur_filter=None), dict(fmap_decay=0.5),
])
def test_generator_options_run(options):
    G = small_G(**options)
    ref = small_G()
    z = torch.randn(2, 16)
    img = G(z, noise_mode="const", lod=0.25)
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    if options != dict(fmap_decay=0.5):
        assert not torch.allclose(img, ref(z, noise_mode="const", lod=0.25), atol=1e-3)


# ---- input validation ----------------------------------------------------------------------------------------------
def test_bad_inputs_are_named():
    G, D = small_G(), small_D()
    with pytest.raises(ValueError, match="z has shape"):
        G(torch.randn(2, 15))
    with pytest.raises(ValueError, match="z has shape"):
        G(torch.randn(16))
    with pytest.raises(ValueError, match="lod"):
        G(torch.randn(2, 16), lod=3.5)
    with pytest.raises(ValueError, match="lod"):
        G(torch.randn(2, 16), lod=-0.5)
    with pytest.raises(ValueError, match="ws has shape"):
        G.synthesis(torch.randn(2, 7, 16))
    with pytest.raises(ValueError, match=r"img has shape \[2, 3, 32, 32\].*16, 16"):
        D(torch.randn(2, 3, 32, 32), lod=1.0)
    with pytest.raises(ValueError, match="num_channels=3"):
        D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="lod"):
        D(torch.randn(2, 3, 32, 32), lod=4)
    with pytest.raises(ValueError, match="impl"):
        G.impl = "fast"
    with pytest.raises(TypeError, match="GeneratorConfig"):
        Generator(DiscriminatorConfig())


# ---- impl plumbing -------------------------------------------------------------------------------------------------
def test_impl_flows_to_every_layer_and_copies_are_independent():
    G, D = small_G(), small_D()
    G.impl = "cpu"
    assert {m.ctx.impl for m in G.modules() if hasattr(m, "ctx")} == {"cpu"}
    G2 = copy.deepcopy(G)  # e.g. the EMA copy
    G2.impl = "ref"
    assert G.impl == "cpu" and {m.ctx.impl for m in G2.modules() if hasattr(m, "ctx")} == {"ref"}
    D.impl = "cuda"
    assert {m.ctx.impl for m in D.modules() if hasattr(m, "ctx")} == {"cuda"}


def _grads(net: torch.nn.Module):
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]


def _gp_step(G: Generator, D: Discriminator, z: torch.Tensor, reals: torch.Tensor, lod: float):
    """One WGAN-GP style step: G loss grads, D loss + gradient penalty (double backward) grads."""
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    fake = G(z, lod=lod, noise_mode="const")
    (-D(fake, lod=lod).mean()).backward()
    g_grads = _grads(G)
    D.zero_grad(set_to_none=True)
    reals = reals.detach().requires_grad_(True)
    score = D(reals, lod=lod)
    (grad,) = torch.autograd.grad(score.sum(), reals, create_graph=True)
    loss = D(fake.detach(), lod=lod).mean() - score.mean() + 10 * (grad.square().sum((1, 2, 3)).sqrt() - 1).square().mean()
    loss.backward()
    return fake.detach(), g_grads, _grads(D)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lod", [0.0, 0.5])
def test_cpu_kernels_equal_reference_incl_gradient_penalty(lod, dtype):
    """impl='cpu' vs 'ref': images, G grads and D grads through the gradient-penalty double backward.

    float64: every gradient element to 1e-5 relative (of that tensor's largest entry). float32: images to 1e-5;
    gradients by tensor norm to 1e-3, as some (e.g. the 4x4 noise strengths: measured 5e-4) are sums of cancelling
    terms whose float32 rounding depends on summation order (the same grads agree to ~1e-15 in float64).
    """
    reason = cpu_kernels_unavailable()
    if reason:
        pytest.skip(f"impl='cpu' cannot run yet: {reason}")
    G, D = small_G(resolution=16).to(dtype), small_D(resolution=16).to(dtype)
    z = torch.randn(4, 16, dtype=dtype)
    reals = torch.randn(4, 3, 16, 16, dtype=dtype)
    results = {}
    for impl in ("ref", "cpu"):
        G.impl = D.impl = impl
        results[impl] = _gp_step(G, D, z, reals, lod)
    (fr, gr, dr), (fc, gc, dc) = results["ref"], results["cpu"]
    torch.testing.assert_close(fc, fr, rtol=1e-5, atol=1e-5 * fr.abs().max().item())
    names = [n for n, _ in G.named_parameters()] + [n for n, _ in D.named_parameters()]
    assert any(b.abs().max() > 0 for b in gr) and any(b.abs().max() > 0 for b in dr)
    for name, a, b in zip(names, gc + dc, gr + dr):
        if dtype == torch.float64:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item() + 1e-30, msg=name)
        else:
            assert (a - b).norm() <= 1e-3 * b.norm() + 1e-30, name


def test_networks_bench_smoke():
    """The benchmark's measurement runs a real WGAN-GP step (tiny networks, in-process)."""
    from stylegan.benchmarks.networks import run_networks_bench

    out = run_networks_bench(resolutions=(8,), batch=4, repeat=1, impls=("ref",), fmap_base=16, fmap_max=8,
                             latent_size=8, isolate=False, echo=False)
    (row,) = out["rows"]
    assert row["resolution"] == 8 and row["impl"] == "ref"
    assert row["g_forward_img_s"] > 0 and row["train_img_s"] > 0 and row["peak_rss_mib"] > 0
    assert "train img/s" in out["table"]


def test_networks_bench_times_the_training_loops_step(monkeypatch):
    """The timed step is Trainer.step (what `stylegan train` runs), with the training config's fused_scale."""
    from stylegan.benchmarks import networks as bench_networks
    from stylegan.training.loop import Trainer

    calls = []
    original = Trainer.step

    def spy(self, phase, loader):
        calls.append((phase.lod, phase.batch, self.cfg.fused_scale))
        return original(self, phase, loader)

    monkeypatch.setattr(Trainer, "step", spy)
    row = bench_networks.measure_point(16, "ref", batch=4, repeat=1, fmap_base=16, fmap_max=8, latent_size=8,
                                       lod=0.5, fused_scale="auto")
    assert calls == [(0.5, 4, "auto")] * 2  # warm-up + one timed step
    assert row["fused_scale"] == "auto" and row["train_img_s"] > 0


def _instance_norm_float64(x, scale, shift, eps=1e-8):
    xc = x.double() - x.double().mean((2, 3), keepdim=True)
    return xc * torch.rsqrt(xc.square().mean((2, 3), keepdim=True) + eps) * scale.double() + shift.double()


@pytest.mark.parametrize("size", [4, 16, 64])
def test_instance_norm_of_a_constant_map_is_the_shift(size):
    """A constant map (e.g. the const layer at init) has var = 0, so y is `shift` (official: x - mean is 0). The
    rounding a float32 mean leaves must not be amplified by rsqrt(eps) = 1e4: without the residual-mean
    correction these maps are off by up to 0.8."""
    from stylegan.layers import instance_norm_modulate

    x = torch.full((2, 3, size, size), 0.7311) + torch.arange(3.0).view(1, 3, 1, 1) * 123.4
    scale, shift = torch.rand(2, 3, 1, 1) + 0.5, torch.randn(2, 3, 1, 1)
    torch.testing.assert_close(instance_norm_modulate(x, scale, shift), shift.expand_as(x), atol=1e-6, rtol=0)
    assert torch.equal(instance_norm_modulate(x.bfloat16(), scale, shift), shift.bfloat16().expand_as(x))
    for x in (torch.randn(2, 3, size, size) * 1e-3 + 50, torch.randn(2, 3, size, size) * 3 - 1):
        torch.testing.assert_close(instance_norm_modulate(x, scale, shift).double(),
                                   _instance_norm_float64(x, scale, shift), atol=2e-6, rtol=1e-6)
        xb = x.bfloat16()  # bf16 in, bf16 out: within a few bf16 roundings of the float64 result on the same input
        torch.testing.assert_close(instance_norm_modulate(xb, scale, shift).double(),
                                   _instance_norm_float64(xb.float(), scale, shift), atol=0.02, rtol=2 ** -7)
    y = instance_norm_modulate(torch.randn(2, 3, 4, 4) * 5 + 2, None, None)
    torch.testing.assert_close(y.mean((2, 3)), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.square().mean((2, 3)), torch.ones(2, 3), atol=1e-4, rtol=0)
