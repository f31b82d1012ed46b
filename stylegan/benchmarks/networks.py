"""`stylegan bench networks`: G forward and a full G+D WGAN-GP training step, impl 'auto' vs 'ref', per resolution.

Why this shape: each (resolution, impl) point runs in a fresh subprocess (`python -m stylegan.benchmarks.networks`),
so its peak RSS is its own, the allocator state of one point cannot help or hurt the next, and the allocator
setting (default / tuned glibc malloc, see timing.py) can be chosen per run. Only ratios from one run compare.

The training step is the official WGAN-GP iteration (training/loss.py G_wgan, D_wgan_gp): a D step on fresh fakes
(G forward without grad, D on reals, fakes and interpolates, gradient penalty with double backward, Adam) and a
G step (G forward, D forward, backward into G only, Adam). Images/s = batch / step time.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from typing import Dict, List, Optional, Sequence

import torch

from .timing import describe_machine, env_for_malloc, format_table, machine_info, measure, run_with_env

DEFAULT_RESOLUTIONS = (32, 64, 128, 256)
IMPLS = ("auto", "ref")


def _build(resolution: int, impl: str, fmap_base: int, fmap_max: int, latent_size: int):
    from ..config import DiscriminatorConfig, GeneratorConfig
    from ..discriminator import Discriminator
    from ..generator import Generator

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=resolution, fmap_base=fmap_base, fmap_max=fmap_max,
                                  latent_size=latent_size, dlatent_size=latent_size, mapping_fmaps=latent_size),
                  impl=impl)
    D = Discriminator(DiscriminatorConfig(resolution=resolution, fmap_base=fmap_base, fmap_max=fmap_max), impl=impl)
    return G, D


def measure_point(resolution: int, impl: str, batch: int = 8, repeat: int = 3, fmap_base: int = 8192,
                  fmap_max: int = 512, latent_size: int = 512, train: bool = True, lod: float = 0.0
                  ) -> Dict[str, float]:
    """Measures one (resolution, impl) point in THIS process: G forward and training-step images/s, peak RSS.

    lod > 0 measures mid-fade (e.g. 0.5: the newest level at alpha 0.5, images at resolution_at(lod)).
    """
    from ..training.losses import d_wgan_gp, g_wgan

    G, D = _build(resolution, impl, fmap_base, fmap_max, latent_size)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    res_now = G.config.resolution_at(lod)
    reals = torch.rand(batch, 3, res_now, res_now) * 2 - 1
    z = torch.randn(batch, latent_size)

    def D_at_lod(img: torch.Tensor) -> torch.Tensor:
        return D(img, lod=lod)

    def g_forward() -> None:
        with torch.no_grad():
            G(z, lod=lod)

    def train_step() -> None:
        # D step (official D_wgan_gp): fakes without grad, penalty through a double backward.
        with torch.no_grad():
            fakes = G(torch.randn(batch, latent_size), lod=lod)
        d_loss, _ = d_wgan_gp(D_at_lod, reals, fakes)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # G step (official G_wgan): gradients for G only.
        D.requires_grad_(False)
        g_loss, _ = g_wgan(D_at_lod, G(torch.randn(batch, latent_size), lod=lod))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)

    fwd = measure(g_forward, repeat=repeat, warmup=1)
    out = {"resolution": resolution, "impl": impl, "batch": batch, "lod": lod, "g_forward_img_s": batch / fwd.median_s,
           "g_forward_ms": fwd.median_ms}
    if train:
        step = measure(train_step, repeat=repeat, warmup=1)
        out.update(train_img_s=batch / step.median_s, train_step_s=step.median_s)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return out


def run_networks_bench(resolutions: Sequence[int] = DEFAULT_RESOLUTIONS, batch: int = 8, repeat: int = 3,
                       impls: Sequence[str] = IMPLS, malloc: str = "default", fmap_base: int = 8192,
                       fmap_max: int = 512, latent_size: int = 512, train: bool = True, isolate: bool = True,
                       echo: bool = True, lod: float = 0.0) -> Dict[str, object]:
    """Returns {'machine', 'rows', 'table'} for G forward and WGAN-GP step images/s, auto vs ref (and prints it).

    Defaults are the official architecture (fmap_base 8192, fmap_max 512, 512-d latents) at each resolution, batch
    8, on CPU; lower fmap_max for a quick run. isolate=True measures every point in its own subprocess under the
    chosen malloc setting ('default' | 'tuned'); isolate=False measures in this process (peak RSS is then the
    process maximum so far).
    """
    rows: List[Dict[str, float]] = []
    info: Optional[Dict[str, object]] = None
    for res in resolutions:
        for impl in impls:
            if isolate:
                args = ["--resolution", str(res), "--impl", impl, "--batch", str(batch), "--repeat", str(repeat),
                        "--fmap-base", str(fmap_base), "--fmap-max", str(fmap_max), "--latent-size",
                        str(latent_size), "--lod", str(lod)] + ([] if train else ["--no-train"])
                result = run_with_env(__name__, args, env_for_malloc(malloc))
                info = info or result.pop("machine")
                result.pop("machine", None)
            else:
                result = measure_point(res, impl, batch, repeat, fmap_base, fmap_max, latent_size, train, lod)
            rows.append(result)
            if echo:
                print(f"  measured {res} px impl={impl}", file=sys.stderr, flush=True)
    info = info or machine_info()
    headers = ["res", "impl", "G fwd img/s", "train img/s", "train step s", "auto/ref train", "peak RSS MiB"]
    table_rows = []
    by_key = {(r["resolution"], r["impl"]): r for r in rows}
    for r in rows:
        ref = by_key.get((r["resolution"], "ref"))
        ratio = (r.get("train_img_s", float("nan")) / ref["train_img_s"]
                 if ref and train and r["impl"] != "ref" else float("nan"))
        table_rows.append([r["resolution"], r["impl"], r["g_forward_img_s"], r.get("train_img_s", float("nan")),
                           r.get("train_step_s", float("nan")), ratio, r["peak_rss_mib"]])
    table = (f"{describe_machine(info)}\nbatch {batch}, fmap_base {fmap_base}, fmap_max {fmap_max}, "
             f"latent {latent_size}, lod {lod:g}, malloc {malloc}, median of {repeat}\n"
             + format_table(headers, table_rows))
    if echo:
        print(table)
    return {"machine": info, "rows": rows, "table": table}


def _main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description="One point of the networks benchmark (run by run_networks_bench).")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--impl", choices=IMPLS + ("cpu",), required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--fmap-base", type=int, default=8192)
    p.add_argument("--fmap-max", type=int, default=512)
    p.add_argument("--latent-size", type=int, default=512)
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--lod", type=float, default=0.0)
    p.add_argument("--json-out", required=True)
    a = p.parse_args(argv)
    result = measure_point(a.resolution, a.impl, a.batch, a.repeat, a.fmap_base, a.fmap_max, a.latent_size,
                           not a.no_train, a.lod)
    result["machine"] = machine_info()
    with open(a.json_out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    _main()
