"""`stylegan bench project`: time per projection step (`stylegan.project`) per resolution and latent space.

Why a difference of two runs: a projection also maps w_avg_samples latents and renders the result once; timing
`project` with `long` and with `short` steps and dividing the difference by (long - short) leaves only the cost of
a step (synthesis forward + loss + backward through the generator to w and the noise maps + Adam + the noise
renormalisation). The network has the official widths by default (the size `stylegan train` builds), random
weights: a step's cost does not depend on what the weights are. The encoder column times one forward of the
`--init encoder` network built for that generator (its start costs that once per target). One row per precision
(`stylegan project --precision`), in the same process, so "vs fp32" compares numbers of one run.
"""
from __future__ import annotations

import time
from typing import Dict, List, Sequence

import torch

from ..config import GeneratorConfig
from ..generator import Generator
from ..projection import ProjectionConfig, project
from ..precision import Precision, resolve_precision
from ..projection.encoder import Encoder, EncoderConfig
from .networks import FMAP_BASE, FMAP_MAX, LATENT_SIZE
from .timing import machine_info, measure

W_AVG_SAMPLES = 1000  # the start's statistics are outside the step; fewer samples only shorten the run
TABLE_HEADERS = ("resolution", "space", "precision", "layers", "ms per step", "vs fp32", "encoder forward ms")


def _timed_projection(G: Generator, target: torch.Tensor, space: str, steps: int, precision: Precision) -> float:
    cfg = ProjectionConfig(space=space, num_steps=steps, w_avg_samples=W_AVG_SAMPLES)
    start = time.perf_counter()
    project(G, target, cfg, progress=False, precision=precision)
    return time.perf_counter() - start


def measure_point(resolution: int, space: str, short: int, long: int, fmap_base: int = FMAP_BASE,
                  fmap_max: int = FMAP_MAX, latent_size: int = LATENT_SIZE,
                  precision: str = "fp32") -> Dict[str, object]:
    """ms per projection step of one target at `resolution` (batch 1, pixel loss, noise maps optimised)."""
    resolved = resolve_precision(precision, torch.device("cpu"), warn=False)
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=resolution, fmap_base=fmap_base, fmap_max=fmap_max,
                                  latent_size=latent_size, dlatent_size=latent_size, mapping_fmaps=latent_size)).eval()
    target = torch.randint(0, 256, (1, 3, resolution, resolution), dtype=torch.uint8)
    _timed_projection(G, target, space, 1, resolved)  # warm-up: kernels built or loaded, allocator primed
    t_short = _timed_projection(G, target, space, short, resolved)
    t_long = _timed_projection(G, target, space, long, resolved)
    encoder = Encoder(EncoderConfig.for_generator(G)).eval()
    image = target.float() / 127.5 - 1
    with torch.no_grad():
        encoder_ms = measure(lambda: encoder(image), repeat=3).median_ms
    return {"resolution": resolution, "space": space, "precision": resolved.name, "layers": int(G.num_layers),
            "ms_per_step": (t_long - t_short) / (long - short) * 1e3, "encoder_forward_ms": encoder_ms,
            "short_s": t_short, "long_s": t_long}


def run_projection_bench(resolutions: Sequence[int], spaces: Sequence[str], short: int, long: int,
                         threads: int, precisions: Sequence[str] = ("fp32",), **sizes: int) -> Dict[str, object]:
    """Every (resolution, space) point in this process with `threads` torch threads."""
    if long <= short:
        raise ValueError(f"long={long} must exceed short={short}: the step time is their difference")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows: List[Dict[str, object]] = [measure_point(r, s, short, long, precision=p, **sizes)
                                         for r in resolutions for s in spaces for p in precisions]
        return {"machine": machine_info(), "rows": rows, "short": short, "long": long}
    finally:
        torch.set_num_threads(saved)


def table_rows(result: Dict[str, object]) -> List[List[object]]:
    """One row per point; 'vs fp32' = the fp32 step time of the same resolution and space / this one's."""
    rows = result["rows"]  # type: ignore[index]
    fp32 = {(r["resolution"], r["space"]): r["ms_per_step"] for r in rows if r["precision"] == "fp32"}
    out = []
    for r in rows:
        base = fp32.get((r["resolution"], r["space"]))
        ratio = base / r["ms_per_step"] if base is not None and r["precision"] != "fp32" else float("nan")
        out.append([r["resolution"], r["space"], r["precision"], r["layers"], round(r["ms_per_step"], 1), ratio,
                    round(r["encoder_forward_ms"], 1)])
    return out


__all__ = ["run_projection_bench", "measure_point", "table_rows", "TABLE_HEADERS"]
