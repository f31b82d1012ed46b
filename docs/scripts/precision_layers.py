"""Where bf16 departs from fp32 in a trained checkpoint, layer by layer and loss term by loss term
(docs/PERFORMANCE.md §8.9). Usage:

    python docs/scripts/precision_layers.py CHECKPOINT [--data builtin:glyphs] [--batch 64] [--r1-gamma 0.05]

The same inputs go through the checkpoint's networks twice, under fp32 and under bf16 autocast (the Precision
objects `stylegan train` uses; G in const-noise mode, so nothing random differs):
- activations: the relative RMS difference (||bf16 - fp32|| / ||fp32||) of every synthesis layer, G's image, D's
  from-RGB output, every D block and D's scores (on reals of the dataset at the checkpoint's resolution);
- gradients: for each loss term of the logistic + R1 recipe (D's real+fake logistic loss, the R1 penalty, G's
  non-saturating loss), the relative error and the cosine between the bf16 and fp32 parameter gradients, per
  network part and in total.
A float32 reference is the yardstick: the last rows repeat the gradient comparison with only D's weights rounded
to bf16 in an fp32 run, which shows how much of the error the rounding of the weights alone explains.
"""
from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

from stylegan.loading import load
from stylegan.precision import resolve_precision
from stylegan.training.dataset import ImageDataset, to_float


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def capture(modules: Dict[str, torch.nn.Module]) -> Tuple[Dict[str, torch.Tensor], List]:
    """Forward hooks that keep each module's output (float32 copy) under its name."""
    seen: Dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().float()))
               for name, m in modules.items()]
    return seen, handles


def grads(loss_fn: Callable[[], torch.Tensor], params: Dict[str, torch.nn.Parameter]) -> Dict[str, torch.Tensor]:
    loss = loss_fn()
    got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(p)) for (k, p), g in zip(params.items(), got)}


def part_of(name: str) -> str:
    """Parameter name -> the network part it belongs to (first two name components)."""
    bits = name.split(".")
    return ".".join(bits[:2]) if len(bits) > 2 else bits[0]


def compare_grads(title: str, a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> None:
    print(f"\n{title}: relative error / cosine of the parameter gradient (bf16 vs fp32)")
    parts: Dict[str, List[str]] = {}
    for k in b:
        parts.setdefault(part_of(k), []).append(k)
    for part, keys in parts.items():
        ga, gb = torch.cat([a[k].flatten() for k in keys]), torch.cat([b[k].flatten() for k in keys])
        if gb.norm() == 0:
            continue
        print(f"  {part:28s} {rel(ga, gb):8.4f}  {cosine(ga, gb):8.5f}")
    ga, gb = torch.cat([a[k].flatten() for k in b]), torch.cat([b[k].flatten() for k in b])
    print(f"  {'all':28s} {rel(ga, gb):8.4f}  {cosine(ga, gb):8.5f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", default="builtin:glyphs")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--r1-gamma", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    nets = load(a.checkpoint)
    G, D = nets.G.train(False), nets.D.train(False)
    for net in (G, D):
        net.requires_grad_(True)
    lod = nets.lod
    size = G.config.resolution_at(lod)
    ds = ImageDataset(a.data, size)
    idx = torch.randperm(len(ds))[:a.batch]
    items = [ds[int(i)] for i in idx]
    reals = to_float(torch.stack([x for x, _ in items]))
    labels = torch.tensor([y for _, y in items])
    c = F.one_hot(labels, G.config.label_size).float() if G.config.label_size else None
    z = torch.randn(a.batch, G.config.latent_size)
    cpu = torch.device("cpu")
    precisions = {"fp32": resolve_precision("fp32", cpu), "bf16": resolve_precision("bf16", cpu, warn=False)}
    print(f"{a.checkpoint}: {size} px, lod {lod:g}, batch {a.batch}, {precisions['bf16'].describe()}")

    # activations
    g_mods = {f"synthesis.layers.{i}": m for i, m in enumerate(G.synthesis.layers)}
    d_mods = {f"D.blocks.{i}": m for i, m in enumerate(D.blocks)}
    d_mods.update({f"D.fromrgb.{i}": m for i, m in enumerate(D.fromrgb)})
    acts = {}
    for name, prec in precisions.items():
        seen, handles = capture({**g_mods, **d_mods})
        with torch.no_grad():
            img = prec.run(G, z, c, lod=lod, noise_mode="const")
            seen["G image"] = img.float()
            seen["D scores (fakes)"] = prec.run(D, img.float(), c, lod).float()
            seen["D scores (reals)"] = prec.run(D, reals, c, lod).float()
        for h in handles:
            h.remove()
        acts[name] = dict(seen)
    print("\nactivations: relative RMS difference bf16 vs fp32 (same inputs; D on fp32 images)")
    for name in acts["fp32"]:
        if name in acts["bf16"]:
            print(f"  {name:28s} {rel(acts['bf16'][name], acts['fp32'][name]):8.4f}")

    # gradients per loss term
    with torch.no_grad():
        fakes = precisions["fp32"].run(G, z, c, lod=lod, noise_mode="const").float()
    d_params = dict(D.named_parameters())
    g_params = dict(G.named_parameters())

    def d_logistic(prec):
        return lambda: (F.softplus(prec.run(D, fakes, c, lod)).mean() + F.softplus(-prec.run(D, reals, c, lod)).mean())

    def r1(prec):
        def loss():
            x = reals.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(prec.run(D, x, c, lod).sum(), x, create_graph=True)
            return g.flatten(1).square().sum(1).mean() * (a.r1_gamma * 0.5)
        return loss

    def g_ns(prec):
        return lambda: F.softplus(-prec.run(D, prec.run(G, z, c, lod=lod, noise_mode="const"), c, lod)).mean()

    for title, make, params in (("D logistic loss (reals + fakes)", d_logistic, d_params),
                                ("R1 penalty", r1, d_params), ("G non-saturating loss", g_ns, g_params)):
        got = {k: grads(make(prec), params) for k, prec in precisions.items()}
        compare_grads(title, got["bf16"], got["fp32"])

    # yardstick: fp32 arithmetic with D's weights rounded to bf16
    exact = grads(r1(precisions["fp32"]), d_params)
    saved = {k: v.detach().clone() for k, v in d_params.items()}
    with torch.no_grad():
        for v in d_params.values():
            v.copy_(v.bfloat16().float())
    rounded = grads(r1(precisions["fp32"]), d_params)
    with torch.no_grad():
        for k, v in d_params.items():
            v.copy_(saved[k])
    compare_grads("R1 penalty, fp32 arithmetic, only D's weights rounded to bf16", rounded, exact)


if __name__ == "__main__":
    main()
