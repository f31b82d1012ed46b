"""An independent functional statement of the official StyleGAN math (docs/FORMATS.md §1) on TF-layout variables.

Used to check configs the small TF fixture does not exercise (fused up/down-convs at >= 128 px, labels, 1-channel
images, the 1024 defaults): random variables with the official names and shapes (docs/FORMATS.md §1.4) are written
as an official pickle, loaded through `stylegan.load`, and our networks must compute what this code computes from
the raw variables. It shares nothing with stylegan's layers.
"""
import math
import pickle
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

BLUR = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16


def nf(stage, fmap_base, fmap_max):
    return min(int(fmap_base / 2.0 ** stage), fmap_max)


def _t(v):
    return torch.from_numpy(np.asarray(v, dtype=np.float32))


def _wscale(w, gain, lrmul=1.0):
    # fan_in = all dims but the last (docs/FORMATS.md §1.6)
    return _t(w) * (gain / math.sqrt(np.prod(w.shape[:-1])) * lrmul)


def _conv(x, w_tf, gain=math.sqrt(2)):
    return F.conv2d(x, _wscale(w_tf, gain).permute(3, 2, 0, 1), padding=w_tf.shape[0] // 2)


def _fused_4x4(w):  # [3, 3, a, b] -> [4, 4, a, b]: zero-pad spatially and sum the four windows (docs/FORMATS.md §1.8)
    w = F.pad(w.permute(2, 3, 0, 1), [1, 1, 1, 1])
    return (w[..., 1:, 1:] + w[..., :-1, 1:] + w[..., 1:, :-1] + w[..., :-1, :-1]).permute(2, 3, 0, 1)


def _blur(x):
    return F.conv2d(x, BLUR.view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1), padding=1, groups=x.shape[1])


def _lrelu(x):
    return torch.maximum(x, 0.2 * x)


def generator_variables(cfg, seed):
    """(G_style vars, G_mapping vars, G_synthesis vars) as ordered (name, array) lists (docs/FORMATS.md §1.4)."""
    rng = np.random.RandomState(seed)
    rnd = lambda *shape, s=1.0: (rng.randn(*shape) * s).astype(np.float32)  # noqa: E731
    R = int(math.log2(cfg["resolution"]))
    f = lambda stage: nf(stage, cfg["fmap_base"], cfg["fmap_max"])  # noqa: E731
    L, D = cfg["latent_size"], cfg["dlatent_size"]
    mapping = [("LabelConcat/weight", rnd(cfg["label_size"], L))] if cfg["label_size"] else []
    fan = L * (2 if cfg["label_size"] else 1)
    for i in range(8):
        mapping += [(f"Dense{i}/weight", rnd(fan if i == 0 else D, D, s=100.0)), (f"Dense{i}/bias", rnd(D, s=10.0))]
    synthesis = [("lod", np.float32(0.0))]
    synthesis += [(f"noise{i}", rnd(1, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2))) for i in range(2 * R - 2)]

    def layer(scope, c, conv_shape=None):
        out = [(f"{scope}/weight", rnd(*conv_shape))] if conv_shape else []
        return out + [(f"{scope}/Noise/weight", rnd(c, s=0.5)), (f"{scope}/bias", rnd(c, s=0.3)),
                      (f"{scope}/StyleMod/weight", rnd(D, 2 * c)), (f"{scope}/StyleMod/bias", rnd(2 * c, s=0.3))]

    synthesis += [("4x4/Const/const", rnd(1, f(1), 4, 4))] + layer("4x4/Const", f(1))
    synthesis += layer("4x4/Conv", f(1), (3, 3, f(1), f(1)))
    synthesis += [(f"ToRGB_lod{R - 2}/weight", rnd(1, 1, f(1), cfg["num_channels"])),
                  (f"ToRGB_lod{R - 2}/bias", rnd(cfg["num_channels"], s=0.1))]
    for r in range(3, R + 1):
        s = f"{2 ** r}x{2 ** r}"
        synthesis += layer(f"{s}/Conv0_up", f(r - 1), (3, 3, f(r - 2), f(r - 1)))
        synthesis += layer(f"{s}/Conv1", f(r - 1), (3, 3, f(r - 1), f(r - 1)))
        synthesis += [(f"ToRGB_lod{R - r}/weight", rnd(1, 1, f(r - 1), cfg["num_channels"])),
                      (f"ToRGB_lod{R - r}/bias", rnd(cfg["num_channels"], s=0.1))]
    style = [("lod", np.float32(0.0)), ("dlatent_avg", rnd(D, s=0.5))]
    return style, mapping, synthesis


def discriminator_variables(cfg, seed):
    rng = np.random.RandomState(seed)
    rnd = lambda *shape, s=1.0: (rng.randn(*shape) * s).astype(np.float32)  # noqa: E731
    R = int(math.log2(cfg["resolution"]))
    f = lambda stage: nf(stage, cfg["fmap_base"], cfg["fmap_max"])  # noqa: E731
    C = cfg["num_channels"]
    out = [("lod", np.float32(0.0))]
    for r in range(R, 2, -1):
        out += [(f"FromRGB_lod{R - r}/weight", rnd(1, 1, C, f(r - 1))), (f"FromRGB_lod{R - r}/bias", rnd(f(r - 1), s=0.1)),
                (f"{2 ** r}x{2 ** r}/Conv0/weight", rnd(3, 3, f(r - 1), f(r - 1))),
                (f"{2 ** r}x{2 ** r}/Conv0/bias", rnd(f(r - 1), s=0.1)),
                (f"{2 ** r}x{2 ** r}/Conv1_down/weight", rnd(3, 3, f(r - 1), f(r - 2))),
                (f"{2 ** r}x{2 ** r}/Conv1_down/bias", rnd(f(r - 2), s=0.1))]
    out += [(f"FromRGB_lod{R - 2}/weight", rnd(1, 1, C, f(1))), (f"FromRGB_lod{R - 2}/bias", rnd(f(1), s=0.1)),
            ("4x4/Conv/weight", rnd(3, 3, f(1) + 1, f(1))), ("4x4/Conv/bias", rnd(f(1), s=0.1)),
            ("4x4/Dense0/weight", rnd(f(1) * 16, f(0))), ("4x4/Dense0/bias", rnd(f(0), s=0.1)),
            ("4x4/Dense1/weight", rnd(f(0), max(cfg["label_size"], 1))),
            ("4x4/Dense1/bias", rnd(max(cfg["label_size"], 1), s=0.1))]
    return out


def generator(cfg, mapping_vars, synthesis_vars, z, labels=None):
    """Gs.components: mapping then synthesis with const noise, no truncation, lod 0."""
    m, s = dict(mapping_vars), dict(synthesis_vars)
    x = _t(z)
    if cfg["label_size"]:
        x = torch.cat([x, _t(labels) @ _t(m["LabelConcat/weight"])], dim=1)
    x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(8):
        x = _lrelu(x @ _wscale(m[f"Dense{i}/weight"], math.sqrt(2), 0.01) + _t(m[f"Dense{i}/bias"]) * 0.01)
    w = x
    R = int(math.log2(cfg["resolution"]))

    def epilogue(x, scope, idx):
        x = x + _t(s[f"noise{idx}"]) * _t(s[f"{scope}/Noise/weight"]).view(1, -1, 1, 1)
        x = _lrelu(x + _t(s[f"{scope}/bias"]).view(1, -1, 1, 1))
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + 1e-8)
        st = w @ _wscale(s[f"{scope}/StyleMod/weight"], 1.0) + _t(s[f"{scope}/StyleMod/bias"])
        c = x.shape[1]
        return x * (st[:, :c, None, None] + 1) + st[:, c:, None, None]

    x = epilogue(_t(s["4x4/Const/const"]).repeat(z.shape[0], 1, 1, 1), "4x4/Const", 0)
    x = epilogue(_conv(x, s["4x4/Conv/weight"]), "4x4/Conv", 1)
    for r in range(3, R + 1):
        scope = f"{2 ** r}x{2 ** r}"
        wt = s[f"{scope}/Conv0_up/weight"]
        if 2 ** r >= 128:  # fused: [3,3,in,out] -> [3,3,out,in], pad + sum, transposed conv (no 0.25)
            k = _fused_4x4(_wscale(wt, math.sqrt(2)).permute(0, 1, 3, 2))
            x = F.conv_transpose2d(x, k.permute(3, 2, 0, 1), stride=2, padding=1)
        else:
            x = _conv(x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3), wt)
        x = epilogue(_blur(x), f"{scope}/Conv0_up", 2 * r - 4)
        x = epilogue(_conv(x, s[f"{scope}/Conv1/weight"]), f"{scope}/Conv1", 2 * r - 3)
    return _conv(x, s["ToRGB_lod0/weight"], gain=1.0) + _t(s["ToRGB_lod0/bias"]).view(1, -1, 1, 1)


def discriminator(cfg, variables, img, labels=None, group_size=4):
    """D_basic at lod 0."""
    v = dict(variables)
    R = int(math.log2(cfg["resolution"]))
    x = _lrelu(_conv(img, v["FromRGB_lod0/weight"]) + _t(v["FromRGB_lod0/bias"]).view(1, -1, 1, 1))
    for r in range(R, 2, -1):
        scope = f"{2 ** r}x{2 ** r}"
        x = _lrelu(_conv(x, v[f"{scope}/Conv0/weight"]) + _t(v[f"{scope}/Conv0/bias"]).view(1, -1, 1, 1))
        x = _blur(x)
        wt = v[f"{scope}/Conv1_down/weight"]
        if 2 ** r >= 128:  # fused: pad + sum x 0.25, stride-2 conv
            k = _fused_4x4(_wscale(wt, math.sqrt(2))) * 0.25
            x = F.conv2d(x, k.permute(3, 2, 0, 1), stride=2, padding=1)
        else:
            x = F.avg_pool2d(_conv(x, wt), 2)
        x = _lrelu(x + _t(v[f"{scope}/Conv1_down/bias"]).view(1, -1, 1, 1))
    n, c, h, w_ = x.shape
    g = min(group_size, n)
    y = x.reshape(g, n // g, 1, c, h, w_)
    y = ((y - y.mean(0)).square().mean(0) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [M, 1]
    x = torch.cat([x, y.repeat(g, 1)[:, :, None, None].expand(n, 1, h, w_)], dim=1)
    x = _lrelu(_conv(x, v["4x4/Conv/weight"]) + _t(v["4x4/Conv/bias"]).view(1, -1, 1, 1))
    x = _lrelu(x.flatten(1) @ _wscale(v["4x4/Dense0/weight"], math.sqrt(2)) + _t(v["4x4/Dense0/bias"]))
    x = x @ _wscale(v["4x4/Dense1/weight"], 1.0) + _t(v["4x4/Dense1/bias"])
    return (x * _t(labels)).sum(dim=1, keepdim=True) if cfg["label_size"] else x


def official_pickle(cfg, seed):
    """Bytes of an official-structure pickle (G, D, Gs), written as dnnlib's Network.__getstate__ would."""

    class Network:
        def __init__(self, state):
            self.state = state

        def __getstate__(self):
            return self.state

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    saved = {k: sys.modules.get(k) for k in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")}
    for name in saved:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["dnnlib.tflib.network"].Network = Network
    try:
        def net(name, func, kwargs, variables, components=None):
            return Network(dict(version=3, name=name, static_kwargs=kwargs, components=components or {},
                                build_module_src="", build_func_name=func,
                                variables=variables))

        style, mapping, synthesis = generator_variables(cfg, seed)
        g_kwargs = {k: cfg[k] for k in ("num_channels", "resolution", "label_size", "fmap_base", "fmap_max",
                                         "latent_size", "dlatent_size")}
        g_kwargs["mapping_fmaps"] = cfg["dlatent_size"]  # the hidden width generator_variables() uses
        comps = {"synthesis": net("G_synthesis", "G_synthesis", dict(g_kwargs), synthesis),
                 "mapping": net("G_mapping", "G_mapping", dict(g_kwargs, dlatent_broadcast=2 * int(
                     math.log2(cfg["resolution"])) - 2), mapping)}
        Gs = net("Gs", "G_style", g_kwargs, style, comps)
        d_kwargs = {k: cfg[k] for k in ("num_channels", "resolution", "label_size", "fmap_base", "fmap_max")}
        D = net("D", "D_basic", d_kwargs, discriminator_variables(cfg, seed + 1))
        data = pickle.dumps((Gs, D, Gs), protocol=4)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return data, (style, mapping, synthesis)
