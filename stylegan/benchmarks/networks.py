"""`stylegan bench networks` / `bench train`: G forward and the real training step, impl 'auto' vs 'ref', per precision.

Why this shape: each (resolution, impl, precision) point runs in a fresh subprocess (`python -m stylegan.benchmarks.networks`),
so its peak RSS is its own, the allocator state of one point cannot help or hurt the next, and the allocator
setting (default / tuned glibc malloc, see timing.py) can be chosen per run. Only ratios from one run compare.

The training step timed is THE step of `stylegan train`: `training.loop.Trainer.step` on a Trainer built from a
TrainConfig (so `build_networks`, the loss functions, fused_scale and every other default are the ones training
uses): a D step (reals from a data loader, faded at the lod; fakes from G without grad; WGAN-GP loss with its
double backward; Adam), the G_ema update, and a G step (mapping, style-mixing regularisation, w_avg update,
synthesis, D forward, Adam). The data are a small folder of random RGB images written to a temporary directory
(3 channels, as the published baselines). Images/s = batch / step time. A precision (stylegan/precision.py:
fp32, bf16, auto) is the run's TrainConfig.precision; G forward runs under the same autocast region.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..precision import PRECISIONS
from ..training.config import FUSED_SCALE_CHOICES, TrainConfig
from .timing import describe_machine, env_for_malloc, format_table, machine_info, measure, run_with_env, write_point

DEFAULT_RESOLUTIONS = (32, 64, 128, 256)
IMPLS = ("auto", "ref")


_DEFAULTS = TrainConfig()  # the network size `stylegan train` uses by default (the official one)
FMAP_BASE, FMAP_MAX, LATENT_SIZE = _DEFAULTS.fmap_base, _DEFAULTS.fmap_max, _DEFAULTS.latent_size
_PHASE_KIMG = 1.0  # stabilise/fade length of the benchmark's schedule: only used to place images_shown at the lod


def _write_images(folder: str, resolution: int, count: int) -> None:
    """`count` random RGB PNGs of resolution^2 pixels (the benchmark's data set; content is irrelevant)."""
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        arr = rng.integers(0, 256, size=(resolution, resolution, 3), dtype=np.uint8)
        Image.fromarray(arr, "RGB").save(os.path.join(folder, f"{i:04d}.png"))


def _start_resolution(resolution: int, lod: float) -> int:
    """The benchmark run's start resolution: one level below the one being measured (at least 4 px)."""
    return max(4, resolution >> max(1, math.ceil(lod)))


def build_trainer(workdir: str, resolution: int, impl: str, batch: int, fmap_base: int, fmap_max: int,
                  latent_size: int, lod: float, fused_scale: Optional[Union[bool, str]] = None,
                  precision: str = "fp32"):
    """(Trainer, Phase, loader) for one benchmark point: the real training objects, a Phase at `lod`."""
    from ..training.config import TrainConfig
    from ..training.dataset import make_loader
    from ..training.loop import Trainer
    from ..training.schedule import images_at_lod

    images = os.path.join(workdir, "images")
    _write_images(images, resolution, max(2 * batch, 8))
    fields = dict(outdir=os.path.join(workdir, "run"), data=images, resolution=resolution,
                  cache_dir=os.path.join(workdir, "cache"), batch=batch, fmap_base=fmap_base, fmap_max=fmap_max,
                  latent_size=latent_size, dlatent_size=latent_size, mapping_fmaps=latent_size, workers=0,
                  lod_initial_resolution=_start_resolution(resolution, lod), lod_training_kimg=_PHASE_KIMG,
                  lod_transition_kimg=_PHASE_KIMG, total_kimg=1000.0, precision=precision)
    if fused_scale is not None:
        fields["fused_scale"] = fused_scale
    cfg = TrainConfig(**fields)
    trainer = Trainer(cfg, impl=impl, progress=False, log=lambda line: None)
    phase = trainer.phase(images_at_lod(cfg, lod))
    if abs(phase.lod - lod) > 1e-9 or phase.batch != batch:
        raise RuntimeError(f"benchmark schedule is at lod {phase.lod} batch {phase.batch}, wanted {lod} {batch}")
    loader = make_loader(trainer.dataset, phase.batch, start=0, seed=cfg.seed, workers=0)
    return trainer, phase, loader


def measure_point(resolution: int, impl: str, batch: int = 8, repeat: int = 3, fmap_base: int = FMAP_BASE,
                  fmap_max: int = FMAP_MAX, latent_size: int = LATENT_SIZE, train: bool = True, lod: float = 0.0,
                  fused_scale: Optional[Union[bool, str]] = None, precision: str = "fp32") -> Dict[str, float]:
    """Measures one (resolution, impl, precision) point in THIS process: G forward and training-step images/s,
    peak RSS.

    lod > 0 measures mid-fade (e.g. 0.5: the newest level at alpha 0.5, images at resolution_at(lod)).
    fused_scale None = TrainConfig's default (what `stylegan train` uses).
    """
    with tempfile.TemporaryDirectory(prefix="stylegan-bench-train-") as workdir:
        from ..training.loop import deterministic_algorithms

        trainer, phase, loader = build_trainer(workdir, resolution, impl, batch, fmap_base, fmap_max, latent_size,
                                               lod, fused_scale, precision)
        G = trainer.G
        z = torch.randn(batch, latent_size)

        def g_forward() -> None:
            with torch.no_grad():
                trainer.precision.run(G, z, lod=phase.lod)

        fwd = measure(g_forward, repeat=repeat, warmup=1)
        out = {"resolution": resolution, "impl": impl, "precision": trainer.precision.name, "batch": batch,
               "lod": phase.lod,
               "fused_scale": trainer.cfg.fused_scale, "g_forward_img_s": batch / fwd.median_s,
               "g_forward_ms": fwd.median_ms, "g_forward_cpu_s": fwd.cpu_median_s}
        if train:
            with deterministic_algorithms(trainer.cfg.deterministic):  # as Trainer.run does
                step = measure(lambda: trainer.step(phase, loader), repeat=repeat, warmup=1)
            out.update(train_img_s=batch / step.median_s, train_step_s=step.median_s, train_step_cpu_s=step.cpu_median_s)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return out


def run_networks_bench(resolutions: Sequence[int] = DEFAULT_RESOLUTIONS, batch: int = 8, repeat: int = 3,
                       impls: Sequence[str] = IMPLS, malloc: str = "default", fmap_base: int = FMAP_BASE,
                       fmap_max: int = FMAP_MAX, latent_size: int = LATENT_SIZE, train: bool = True,
                       isolate: bool = True,
                       echo: bool = True, lod: float = 0.0, fused_scale: Optional[Union[bool, str]] = None,
                       precisions: Sequence[str] = ("fp32",), rosinality: Optional[str] = None) -> Dict[str, object]:
    """Returns {'machine', 'rows', 'table'} for G forward and WGAN-GP step images/s, auto vs ref, per precision
    (and prints it); the ratio columns compare with impl 'ref' and with fp32 of the same resolution and impl.
    rosinality: a checkout of the peer project; adds its fp32 row per resolution (peer_rosinality.py) and the
    'vs rosinality' columns (train img/s, and CPU time per image).

    Defaults are the official architecture (TrainConfig's network-size defaults) at each resolution, batch
    8, on CPU; lower fmap_max for a quick run. isolate=True measures every point in its own subprocess under the
    chosen malloc setting ('default' | 'tuned'); isolate=False measures in this process (peak RSS is then the
    process maximum so far). fused_scale None = TrainConfig's default.
    """
    rows: List[Dict[str, float]] = []
    info: Optional[Dict[str, object]] = None
    for res in resolutions:
        for impl in impls:
            for precision in precisions:
                if isolate:
                    args = ["--resolution", str(res), "--impl", impl, "--batch", str(batch), "--repeat",
                            str(repeat), "--fmap-base", str(fmap_base), "--fmap-max", str(fmap_max),
                            "--latent-size", str(latent_size), "--lod", str(lod), "--precision", precision
                            ] + ([] if train else ["--no-train"])
                    if fused_scale is not None:
                        args += ["--fused-scale", str(fused_scale).lower()]
                    result = run_with_env(__name__, args, env_for_malloc(malloc))
                    info = info or result.pop("machine")
                    result.pop("machine", None)
                else:
                    result = measure_point(res, impl, batch, repeat, fmap_base, fmap_max, latent_size, train, lod,
                                           fused_scale, precision)
                rows.append(result)
                if echo:
                    print(f"  measured {res} px impl={impl} precision={result['precision']}", file=sys.stderr,
                          flush=True)
        if rosinality is not None and train:
            from . import peer_rosinality
            if isolate:
                result = peer_rosinality.run_point(rosinality, res, batch, repeat, env_for_malloc(malloc))
                result.pop("machine", None)
            else:
                result = peer_rosinality.measure_point(rosinality, res, batch, repeat)
            rows.append(result)
            if echo:
                print(f"  measured {res} px rosinality fp32", file=sys.stderr, flush=True)
    info = info or machine_info()
    headers = ["res", "impl", "precision", "G fwd img/s", "train img/s", "train step s", "step CPU s",
               "auto/ref train", "vs fp32 G fwd", "vs fp32 train", "vs fp32 G fwd CPU", "vs fp32 train CPU",
               "peak RSS MiB"]
    if rosinality is not None and train:
        headers[-1:-1] = ["vs rosinality train", "vs rosinality train CPU"]
    table_rows = []
    nan = float("nan")
    by_key = {(r["resolution"], r["impl"], r["precision"]): r for r in rows}
    for r in rows:
        ref = by_key.get((r["resolution"], "ref", r["precision"]))
        ratio = (r.get("train_img_s", nan) / ref["train_img_s"] if ref and train and r["impl"] in IMPLS
                 and r["impl"] != "ref" else nan)
        fp32 = by_key.get((r["resolution"], r["impl"], "fp32"))
        mixed = fp32 is not None and r["precision"] != "fp32"
        table_rows.append([r["resolution"], r["impl"], r["precision"], r["g_forward_img_s"],
                           r.get("train_img_s", nan), r.get("train_step_s", nan), r.get("train_step_cpu_s", nan),
                           ratio,
                           r["g_forward_img_s"] / fp32["g_forward_img_s"] if mixed else nan,
                           r.get("train_img_s", nan) / fp32["train_img_s"] if mixed and train else nan,
                           fp32["g_forward_cpu_s"] / r["g_forward_cpu_s"] if mixed else nan,
                           fp32.get("train_step_cpu_s", nan) / r.get("train_step_cpu_s", nan) if mixed and train
                           else nan,
                           r["peak_rss_mib"]])
        if rosinality is not None and train:
            peer = by_key.get((r["resolution"], "rosinality", "fp32"))
            ours = peer is not None and r is not peer
            table_rows[-1][-1:-1] = [r["train_img_s"] / peer["train_img_s"] if ours else nan,
                                     peer["train_step_cpu_s"] / r["train_step_cpu_s"] if ours else nan]
    used_fused = rows[0].get("fused_scale", fused_scale) if rows else fused_scale
    table = (f"{describe_machine(info)}\nbatch {batch}, fmap_base {fmap_base}, fmap_max {fmap_max}, "
             f"latent {latent_size}, lod {lod:g}, fused_scale {used_fused}, malloc {malloc}, median of {repeat}; "
             f"train = stylegan.training.loop.Trainer.step (WGAN-GP D step, G_ema, G step); "
             f"'CPU' columns: this process's CPU time (less sensitive to other jobs on the machine)\n"
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
    p.add_argument("--fmap-base", type=int, default=FMAP_BASE)
    p.add_argument("--fmap-max", type=int, default=FMAP_MAX)
    p.add_argument("--latent-size", type=int, default=LATENT_SIZE)
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--lod", type=float, default=0.0)
    p.add_argument("--fused-scale", choices=sorted(FUSED_SCALE_CHOICES), default=None)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--json-out", required=True)
    a = p.parse_args(argv)
    fused = None if a.fused_scale is None else FUSED_SCALE_CHOICES[a.fused_scale]
    write_point(a.json_out, lambda: measure_point(a.resolution, a.impl, a.batch, a.repeat, a.fmap_base, a.fmap_max,
                                                  a.latent_size, not a.no_train, a.lod, fused, a.precision))


if __name__ == "__main__":
    _main()
