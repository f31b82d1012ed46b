"""An independent functional re-statement of rosinality's StyleGAN forward (docs/FORMATS.md §2.4), for tests.

It computes directly from a rosinality state dict with plain torch ops, sharing nothing with our networks, so
"our converted network == this" checks the conversion and the config variants. Also builds random checkpoints with
rosinality's key names and shapes (docs/FORMATS.md §2.2, §2.3).
"""
import math

import torch
import torch.nn.functional as F

CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)
D_CHANNELS = ((16, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 512), (512, 512), (512, 512))
BLUR = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16


def _equal(w):
    """EqualLR run-time weight: w * sqrt(2 / fan_in), fan_in = size(1) * w[0][0].numel()."""
    return w * math.sqrt(2 / (w.shape[1] * w[0][0].numel()))


def _blur(x):
    return F.conv2d(x, BLUR.to(x).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1), padding=1, groups=x.shape[1])


def _fused_kernel(w, multiplier):
    w = F.pad(w * multiplier, [1, 1, 1, 1])
    return (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) / 4


def _adain(x, style, s, p):
    gamma, beta = F.linear(style, _equal(s[f"{p}.style.linear.weight_orig"]), s[f"{p}.style.linear.bias"]).chunk(2, 1)
    return gamma[:, :, None, None] * F.instance_norm(x, eps=1e-5) + beta[:, :, None, None]


def mapping(s, z):
    x = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for j in range(8):
        x = F.leaky_relu(F.linear(x, _equal(s[f"style.{2 * j + 1}.linear.weight_orig"]),
                                  s[f"style.{2 * j + 1}.linear.bias"]), 0.2)
    return x


def generator(s, z, noise, step, alpha=-1.0, mean_style=None, style_weight=1.0, z2=None, mixing_range=None):
    """StyledGenerator.forward(z, noise, step, alpha, mean_style, style_weight[, mixing_range with [z, z2]])."""
    styles = [mapping(s, z)] + ([mapping(s, z2)] if z2 is not None else [])
    if mean_style is not None:
        styles = [mean_style + style_weight * (st - mean_style) for st in styles]
    out = prev = None
    for i in range(step + 1):
        style = styles[1] if mixing_range and mixing_range[0] <= i <= mixing_range[1] else styles[0]
        p = f"generator.progression.{i}"
        if i == 0:
            out = s[f"{p}.conv1.input"].repeat(z.shape[0], 1, 1, 1)
        else:
            prev = out
            if i >= 5:
                w = s[f"{p}.conv1.0.weight"]
                out = F.conv_transpose2d(out, _fused_kernel(w, math.sqrt(2 / (w.shape[0] * 9))),
                                         s[f"{p}.conv1.0.bias"], stride=2, padding=1)
            else:
                out = F.interpolate(out, scale_factor=2, mode="nearest")
                out = F.conv2d(out, _equal(s[f"{p}.conv1.1.conv.weight_orig"]), s[f"{p}.conv1.1.conv.bias"],
                               padding=1)
            out = _blur(out)
        out = out + _equal(s[f"{p}.noise1.weight_orig"]) * noise[i]
        out = _adain(F.leaky_relu(out, 0.2), style, s, f"{p}.adain1")
        out = F.conv2d(out, _equal(s[f"{p}.conv2.conv.weight_orig"]), s[f"{p}.conv2.conv.bias"], padding=1)
        out = out + _equal(s[f"{p}.noise2.weight_orig"]) * noise[i]
        out = _adain(F.leaky_relu(out, 0.2), style, s, f"{p}.adain2")
    rgb = F.conv2d(out, _equal(s[f"generator.to_rgb.{step}.conv.weight_orig"]), s[f"generator.to_rgb.{step}.conv.bias"])
    if step > 0 and 0 <= alpha < 1:
        skip = F.conv2d(prev, _equal(s[f"generator.to_rgb.{step - 1}.conv.weight_orig"]),
                        s[f"generator.to_rgb.{step - 1}.conv.bias"])
        rgb = (1 - alpha) * F.interpolate(skip, scale_factor=2, mode="nearest") + alpha * rgb
    return rgb


def _from_rgb(s, k, x, activate):
    key = f"from_rgb.{k}.0.conv" if activate else f"from_rgb.{k}.conv"
    out = F.conv2d(x, _equal(s[f"{key}.weight_orig"]), s[f"{key}.bias"])
    return F.leaky_relu(out, 0.2) if activate else out


def _d_block(s, k, x):
    p = f"progression.{k}"
    x = F.leaky_relu(F.conv2d(x, _equal(s[f"{p}.conv1.0.conv.weight_orig"]), s[f"{p}.conv1.0.conv.bias"], padding=1), 0.2)
    if k == 8:
        return F.leaky_relu(F.conv2d(x, _equal(s[f"{p}.conv2.0.conv.weight_orig"]), s[f"{p}.conv2.0.conv.bias"]), 0.2)
    x = _blur(x)
    if k < 4:
        w = s[f"{p}.conv2.1.weight"]
        x = F.conv2d(x, _fused_kernel(w, math.sqrt(2 / (w.shape[1] * 9))), s[f"{p}.conv2.1.bias"], stride=2, padding=1)
    else:
        x = F.avg_pool2d(F.conv2d(x, _equal(s[f"{p}.conv2.1.conv.weight_orig"]), s[f"{p}.conv2.1.conv.bias"],
                                  padding=1), 2)
    return F.leaky_relu(x, 0.2)


def discriminator(s, img, step, alpha=-1.0, activate=True):
    """Discriminator.forward(img, step, alpha)."""
    out = None
    for i in range(step, -1, -1):
        k = 8 - i
        if i == step:
            out = _from_rgb(s, k, img, activate)
        if i == 0:
            std = torch.sqrt(out.var(0, unbiased=False) + 1e-8).mean()
            out = torch.cat([out, std.expand(out.shape[0], 1, 4, 4)], 1)
        out = _d_block(s, k, out)
        if i > 0 and i == step and 0 <= alpha < 1:
            skip = _from_rgb(s, k + 1, F.avg_pool2d(img, 2), activate)
            out = (1 - alpha) * skip + alpha * out
    return F.linear(out.flatten(1), _equal(s["linear.linear.weight_orig"]), s["linear.linear.bias"])


def random_generator_state(trained_step, seed=0):
    """A StyledGenerator(512) state dict (docs/FORMATS.md §2.2); blocks above trained_step keep zero biases."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale  # noqa: E731
    s = {}
    for j in range(8):
        s[f"style.{2 * j + 1}.linear.bias"] = rnd(512, scale=0.1)
        s[f"style.{2 * j + 1}.linear.weight_orig"] = rnd(512, 512)
    for i, c in enumerate(CHANNELS):
        p, c_in, live = f"generator.progression.{i}", CHANNELS[max(i - 1, 0)], i <= trained_step
        bias = (lambda n: rnd(n, scale=0.1)) if live else (lambda n: torch.zeros(n))
        if i == 0:
            s[f"{p}.conv1.input"] = rnd(1, c, 4, 4)
        elif i >= 5:
            s[f"{p}.conv1.0.weight"], s[f"{p}.conv1.0.bias"] = rnd(c_in, c, 3, 3), bias(c)
            s[f"{p}.conv1.1.weight"] = BLUR.view(1, 1, 3, 3).repeat(c, 1, 1, 1)
            s[f"{p}.conv1.1.weight_flip"] = BLUR.view(1, 1, 3, 3).repeat(c, 1, 1, 1)
        else:
            s[f"{p}.conv1.1.conv.bias"], s[f"{p}.conv1.1.conv.weight_orig"] = bias(c), rnd(c, c_in, 3, 3)
            s[f"{p}.conv1.2.weight"] = BLUR.view(1, 1, 3, 3).repeat(c, 1, 1, 1)
            s[f"{p}.conv1.2.weight_flip"] = BLUR.view(1, 1, 3, 3).repeat(c, 1, 1, 1)
        for n in (1, 2):
            s[f"{p}.noise{n}.weight_orig"] = rnd(1, c, 1, 1, scale=0.3 if live else 0.0)
            style_bias = torch.cat([1 + rnd(c, scale=0.1), rnd(c, scale=0.1)])
            s[f"{p}.adain{n}.style.linear.bias"], s[f"{p}.adain{n}.style.linear.weight_orig"] = style_bias, rnd(2 * c, 512)
        s[f"{p}.conv2.conv.bias"], s[f"{p}.conv2.conv.weight_orig"] = bias(c), rnd(c, c, 3, 3)
        s[f"generator.to_rgb.{i}.conv.bias"], s[f"generator.to_rgb.{i}.conv.weight_orig"] = bias(3), rnd(3, c, 1, 1)
    return s


def random_discriminator_state(seed=0, activate=True):
    """A Discriminator(from_rgb_activate) state dict (docs/FORMATS.md §2.3)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale  # noqa: E731
    s = {}
    for k, (c_in, c_out) in enumerate(D_CHANNELS):
        p = f"progression.{k}"
        s[f"{p}.conv1.0.conv.bias"], s[f"{p}.conv1.0.conv.weight_orig"] = rnd(c_out, scale=0.1), rnd(c_out, c_in, 3, 3)
        s[f"{p}.conv2.0.weight"] = BLUR.view(1, 1, 3, 3).repeat(c_out, 1, 1, 1)
        s[f"{p}.conv2.0.weight_flip"] = BLUR.view(1, 1, 3, 3).repeat(c_out, 1, 1, 1)
        if k < 4:
            s[f"{p}.conv2.1.weight"], s[f"{p}.conv2.1.bias"] = rnd(c_out, c_out, 3, 3), rnd(c_out, scale=0.1)
        else:
            s[f"{p}.conv2.1.conv.bias"], s[f"{p}.conv2.1.conv.weight_orig"] = rnd(c_out, scale=0.1), rnd(c_out, c_out, 3, 3)
    s["progression.8.conv1.0.conv.bias"], s["progression.8.conv1.0.conv.weight_orig"] = rnd(512, scale=0.1), rnd(512, 513, 3, 3)
    s["progression.8.conv2.0.conv.bias"], s["progression.8.conv2.0.conv.weight_orig"] = rnd(512, scale=0.1), rnd(512, 512, 4, 4)
    for k, c in enumerate((16, 32, 64, 128, 256, 512, 512, 512, 512)):
        key = f"from_rgb.{k}.0.conv" if activate else f"from_rgb.{k}.conv"
        s[f"{key}.bias"], s[f"{key}.weight_orig"] = rnd(c, scale=0.1), rnd(c, 3, 1, 1)
    s["linear.linear.bias"], s["linear.linear.weight_orig"] = rnd(1, scale=0.1), rnd(1, 512)
    return s
