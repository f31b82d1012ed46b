"""rosinality/style-based-gan-pytorch checkpoints -> our networks, computing the same images and D scores.

Facts: docs/FORMATS.md §2 (model.py / train.py / generate.py of rosinality @ 07fa60be). What differs from the official
architecture is handled in one of two ways:
- folded into the weights at conversion (the function is unchanged): the sqrt(2) gain of to_rgb / style affine /
  the final D linear (ours: gain 1), the noise-weight scaling sqrt(2/C), the fused up-conv's extra /4, the AdaIN
  gamma bias initialised to 1 (ours adds the "+1" at run time), and the mapping lr multiplier that rosinality keeps
  in its optimizer (ours: mapping_lrmul=0.01 at run time, so stored values are x100 and fine-tuning behaves alike);
- expressed by named config variants (the function differs): instance-norm eps 1e-5, bias added before the blur,
  one noise map per block, whole-batch minibatch stddev, channel change in D's first conv, from_rgb activation.

A checkpoint always holds all 9 blocks (4 .. 1024 px), but blocks above the resolution it was trained to are still
at their initial values: conv biases and to_rgb biases start at exactly zero and any training step moves them. The
converted networks keep only the trained blocks, so a `train_step-6.model` becomes a 256-px network (override with
`resolution=`). lod <-> rosinality's (step, alpha): lod = log2(R) - 2 - step + (1 - alpha if 0 <= alpha < 1 else 0).
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional, Union

import torch

from . import Networks

ROS_CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)  # generator.progression.{i}, i = 0..8 (docs/FORMATS.md §2.2)
# G blocks 5..8 (output >= 128 px) and D blocks 0..3 (input >= 128 px) are fused (docs/FORMATS.md §2.4)
FUSED_FROM_BLOCK = 5
MEAN_STYLE_BATCHES = (10, 1024)  # rosinality generate.py: mean of style(z) over 10 batches of 1024
CHECKPOINT_KEYS = ("generator", "discriminator", "g_running")


def is_rosinality(payload: Any) -> bool:
    """True for a train.py checkpoint dict or a bare StyledGenerator state dict."""
    if not isinstance(payload, dict):
        return False
    if any(k in payload for k in CHECKPOINT_KEYS):
        return True
    return any(isinstance(k, str) and k.startswith("generator.progression.") for k in payload)


def _tensor(state: Dict[str, Any], key: str, where: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"{where}: missing key {key!r} (expected a rosinality style-based-gan-pytorch state dict)")
    value = state[key]
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{where}: {key} is a {type(value).__name__}, expected a tensor")
    return value.detach().float()


def trained_step(g_state: Dict[str, Any], where: str = "rosinality checkpoint") -> int:
    """Highest progression block whose conv/to_rgb biases moved from their zero init (0 = 4 px ... 8 = 1024 px)."""
    step = 0
    for i in range(1, len(ROS_CHANNELS)):
        keys = [f"generator.to_rgb.{i}.conv.bias", f"generator.progression.{i}.conv2.conv.bias"]
        if any(k in g_state and torch.count_nonzero(_tensor(g_state, k, where)) > 0 for k in keys):
            step = i
    return step


def _expect(t: torch.Tensor, shape, key: str, where: str) -> torch.Tensor:
    if list(t.shape) != list(shape):
        raise ValueError(f"{where}: {key} has shape {list(t.shape)}, expected {list(shape)}")
    return t


def generator_config(resolution: int):
    """Our GeneratorConfig expressing rosinality's StyledGenerator (code_dim 512, 8 mapping layers)."""
    from ..config import GeneratorConfig

    return GeneratorConfig(resolution=resolution, num_channels=3, latent_size=512, dlatent_size=512,
                           mapping_lrmul=0.01, instance_norm_eps=1e-5, bias_before_blur=True, noise_per_block=True,
                           truncation_psi=None, truncation_cutoff=None)


def discriminator_config(resolution: int, from_rgb_activate: bool):
    """Our DiscriminatorConfig expressing rosinality's Discriminator."""
    from ..config import DiscriminatorConfig

    return DiscriminatorConfig(resolution=resolution, num_channels=3, mbstd_group_size=4, mbstd_whole_batch=True,
                               channels_change_in_conv0=True, from_rgb_activate=from_rgb_activate)


def convert_generator(g_state: Dict[str, Any], resolution: int, where: str,
                      mean_style_seed: int = 0) -> "torch.nn.Module":
    """rosinality StyledGenerator state dict -> our Generator at `resolution` (blocks above it dropped)."""
    from ..generator import Generator

    steps = int(math.log2(resolution)) - 2
    G = Generator(generator_config(resolution))
    ours: Dict[str, torch.Tensor] = {}
    sqrt2 = math.sqrt(2.0)
    lrmul = G.config.mapping_lrmul
    for j in range(G.config.mapping_layers):
        w = _tensor(g_state, f"style.{2 * j + 1}.linear.weight_orig", where)
        b = _tensor(g_state, f"style.{2 * j + 1}.linear.bias", where)
        ours[f"mapping.layers.{j}.weight"] = _expect(w, [512, 512], f"style.{2 * j + 1}.linear.weight_orig", where) / lrmul
        ours[f"mapping.layers.{j}.bias"] = b / lrmul
    for i in range(steps + 1):
        p = f"generator.progression.{i}"
        c = ROS_CHANNELS[i]
        c_in = ROS_CHANNELS[max(i - 1, 0)]
        first, second = f"synthesis.layers.{2 * i}", f"synthesis.layers.{2 * i + 1}"
        if i == 0:
            ours[f"{first}.const"] = _expect(_tensor(g_state, f"{p}.conv1.input", where), [1, c, 4, 4],
                                             f"{p}.conv1.input", where)
            ours[f"{first}.bias"] = torch.zeros(c)  # ConstantInput has no bias
        elif i >= FUSED_FROM_BLOCK:  # FusedUpsample: [in, out, 3, 3], pad/sum and /4 at run time
            w = _expect(_tensor(g_state, f"{p}.conv1.0.weight", where), [c_in, c, 3, 3], f"{p}.conv1.0.weight", where)
            ours[f"{first}.conv.weight"] = w.transpose(0, 1) / 4
            ours[f"{first}.bias"] = _tensor(g_state, f"{p}.conv1.0.bias", where)
        else:
            key = f"{p}.conv1.1.conv.weight_orig"
            ours[f"{first}.conv.weight"] = _expect(_tensor(g_state, key, where), [c, c_in, 3, 3], key, where)
            ours[f"{first}.bias"] = _tensor(g_state, f"{p}.conv1.1.conv.bias", where)
        key = f"{p}.conv2.conv.weight_orig"
        ours[f"{second}.conv.weight"] = _expect(_tensor(g_state, key, where), [c, c, 3, 3], key, where)
        ours[f"{second}.bias"] = _tensor(g_state, f"{p}.conv2.conv.bias", where)
        for n, layer in ((1, first), (2, second)):
            noise = _expect(_tensor(g_state, f"{p}.noise{n}.weight_orig", where), [1, c, 1, 1],
                            f"{p}.noise{n}.weight_orig", where)
            # EqualLR fan_in = C for the noise weight (docs/FORMATS.md §2.4)
            ours[f"{layer}.noise_strength"] = noise.flatten() * math.sqrt(2.0 / c)
            style_w = _expect(_tensor(g_state, f"{p}.adain{n}.style.linear.weight_orig", where), [2 * c, 512],
                              f"{p}.adain{n}.style.linear.weight_orig", where)
            style_b = _tensor(g_state, f"{p}.adain{n}.style.linear.bias", where).clone()
            style_b[:c] -= 1  # rosinality stores gamma with its 1 offset; ours adds the "+1" at run time
            ours[f"{layer}.style.weight"] = style_w * sqrt2
            ours[f"{layer}.style.bias"] = style_b  # biases carry no gain
        key = f"generator.to_rgb.{i}.conv.weight_orig"
        ours[f"synthesis.torgb.{i}.weight"] = _expect(_tensor(g_state, key, where), [3, c, 1, 1], key, where) * sqrt2
        ours[f"synthesis.torgb.{i}.bias"] = _tensor(g_state, f"generator.to_rgb.{i}.conv.bias", where)

    # Const noise: rosinality stores none; fixed seeded maps, one per block shared by its two layers.
    gen = torch.Generator().manual_seed(mean_style_seed)
    for i in range(steps + 1):
        res = 4 << i
        block_noise = torch.randn(1, 1, res, res, generator=gen)
        ours[f"synthesis.noise{2 * i}"] = block_noise
        ours[f"synthesis.noise{2 * i + 1}"] = block_noise.clone()
    ours["w_avg"] = torch.zeros(512)
    G.load_state_dict(ours)
    G.w_avg.copy_(mean_style(G, mean_style_seed))
    return G


@torch.no_grad()
def mean_style(G, seed: int = 0) -> torch.Tensor:
    """rosinality generate.py's truncation centre: mean of style(z) over 10 batches of 1024 z (seeded here)."""
    gen = torch.Generator().manual_seed(seed)
    batches, size = MEAN_STYLE_BATCHES
    total = torch.zeros(G.config.dlatent_size)
    for _ in range(batches):
        z = torch.randn(size, G.config.latent_size, generator=gen)
        total += G.mapping(z)[:, 0].mean(dim=0)
    return total / batches


def convert_discriminator(d_state: Dict[str, Any], resolution: int, where: str) -> "torch.nn.Module":
    """rosinality Discriminator state dict -> our Discriminator at `resolution` (blocks above it dropped)."""
    from ..discriminator import Discriminator

    # from_rgb_activate=True wraps each from_rgb in Sequential(EqualConv2d, LeakyReLU): keys from_rgb.{k}.0.conv.*
    activate = any(re.match(r"from_rgb\.\d+\.0\.conv\.", k) for k in d_state if isinstance(k, str))
    D = Discriminator(discriminator_config(resolution, activate))
    steps = int(math.log2(resolution)) - 2
    n_blocks = len(ROS_CHANNELS)  # progression.{k}, k = 0..8; k = 8 is the 4x4 head
    ours: Dict[str, torch.Tensor] = {}
    rgb = "0.conv" if activate else "conv"
    for level in range(steps + 1):
        k = n_blocks - 1 - level  # from_rgb.{k} reads images at 4 * 2^level
        key = f"from_rgb.{k}.{rgb}.weight_orig"
        ours[f"fromrgb.{level}.weight"] = _expect(_tensor(d_state, key, where), [D.fromrgb[level].weight.shape[0], 3, 1, 1],
                                                  key, where)
        ours[f"fromrgb.{level}.bias"] = _tensor(d_state, f"from_rgb.{k}.{rgb}.bias", where)
    for level in range(1, steps + 1):
        k = n_blocks - 1 - level
        p, ours_p = f"progression.{k}", f"blocks.{level - 1}"
        block = D.blocks[level - 1]
        key = f"{p}.conv1.0.conv.weight_orig"
        ours[f"{ours_p}.conv0.weight"] = _expect(_tensor(d_state, key, where), block.conv0.weight.shape, key, where)
        ours[f"{ours_p}.conv0.bias"] = _tensor(d_state, f"{p}.conv1.0.conv.bias", where)
        down = f"{p}.conv2.1" if k < 4 else f"{p}.conv2.1.conv"  # fused FusedDownsample vs EqualConv2d
        key = f"{down}.weight" if k < 4 else f"{down}.weight_orig"
        ours[f"{ours_p}.conv1.weight"] = _expect(_tensor(d_state, key, where), block.conv1.weight.shape, key, where)
        ours[f"{ours_p}.conv1.bias"] = _tensor(d_state, f"{down}.bias", where)
    p = f"progression.{n_blocks - 1}"
    key = f"{p}.conv1.0.conv.weight_orig"
    ours["epilogue.conv.weight"] = _expect(_tensor(d_state, key, where), [512, 513, 3, 3], key, where)
    ours["epilogue.conv.bias"] = _tensor(d_state, f"{p}.conv1.0.conv.bias", where)
    key = f"{p}.conv2.0.conv.weight_orig"  # 4x4 valid conv == dense on the NCHW flatten
    ours["epilogue.dense0.weight"] = _expect(_tensor(d_state, key, where), [512, 512, 4, 4], key, where).reshape(512, -1)
    ours["epilogue.dense0.bias"] = _tensor(d_state, f"{p}.conv2.0.conv.bias", where)
    key = "linear.linear.weight_orig"
    ours["epilogue.dense1.weight"] = _expect(_tensor(d_state, key, where), [1, 512], key, where) * math.sqrt(2.0)
    ours["epilogue.dense1.bias"] = _tensor(d_state, "linear.linear.bias", where)
    D.load_state_dict(ours)
    return D


def networks_from_checkpoint(payload: Dict[str, Any], name: str, device: Union[str, torch.device] = "cpu",
                             resolution: Optional[int] = None) -> Networks:
    """A train.py checkpoint (generator, discriminator, g_running, ...) or a bare g_running state dict -> Networks.

    G_ema = g_running. The resolution is the highest trained block unless given.
    """
    if any(k in payload for k in CHECKPOINT_KEYS):
        g_state, d_state, ema_state = (payload.get(k) for k in ("generator", "discriminator", "g_running"))
    else:
        g_state, d_state, ema_state = None, None, payload
    reference = ema_state if ema_state is not None else g_state
    if not isinstance(reference, dict):
        raise ValueError(f"{name}: a rosinality checkpoint without a generator state dict")
    if resolution is None:
        resolution = 4 << trained_step(reference, name)
    if resolution not in [4 << i for i in range(len(ROS_CHANNELS))]:
        raise ValueError(f"{name}: resolution={resolution} is invalid for a rosinality network: expected 4 .. 1024")
    G = convert_generator(g_state, resolution, f"{name}: generator") if isinstance(g_state, dict) else None
    G_ema = convert_generator(ema_state, resolution, f"{name}: g_running") if isinstance(ema_state, dict) else None
    D = convert_discriminator(d_state, resolution, f"{name}: discriminator") if isinstance(d_state, dict) else None
    G, D, G_ema = (n.to(device).eval() if n is not None else None for n in (G, D, G_ema))
    return Networks.from_modules(G, D, G_ema, "rosinality", {"rosinality_resolution": resolution})


def lod_from_step(resolution: int, step: int, alpha: float = -1.0) -> float:
    """Our lod for rosinality's (step, alpha) on a network of `resolution` px."""
    lod = math.log2(resolution) - 2 - step
    return lod + (1.0 - alpha) if 0 <= alpha < 1 else lod


__all__ = ["is_rosinality", "networks_from_checkpoint", "convert_generator", "convert_discriminator",
           "trained_step", "lod_from_step", "mean_style"]
