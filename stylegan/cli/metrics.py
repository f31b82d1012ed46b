"""`stylegan metrics`: quality metrics of a network against a dataset (today: PGGAN's multi-scale SWD).

Why a command: to score a finished network or any checkpoint against its training data with the same protocol the
training loop logs at snapshots, and to record the result as JSON beside the run.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import click
import torch

from .options import (device_option, generator_of, network_option, open_network, precision_option, prepare_outfile,
                      resolve_precision_option)

AVAILABLE_METRICS = ("swd",)


def _parse_metrics(text: str) -> List[str]:
    names = [t.strip().lower() for t in str(text).split(",")]
    if not names or any(not n for n in names):
        raise click.BadParameter(f"{text!r}: expected a comma-separated list such as 'swd'", param_hint="--metrics")
    unknown = [n for n in names if n not in AVAILABLE_METRICS]
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(AVAILABLE_METRICS)}",
                                 param_hint="--metrics")
    return list(dict.fromkeys(names))


def _open_dataset(data: str, resolution: int, cache_dir: Optional[str], glyphs: int) -> Any:
    from ..training.dataset import BUILTIN_GLYPHS, ImageDataset

    if data != BUILTIN_GLYPHS and not data.startswith("builtin:") and not Path(data).expanduser().exists():
        raise click.BadParameter(f"{data} does not exist (expected a folder, a .zip or {BUILTIN_GLYPHS})",
                                 param_hint="--data")
    try:
        return ImageDataset(data, resolution, cache_dir=cache_dir, glyphs_count=glyphs, verbose=True)
    except (ValueError, OSError, RuntimeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from None


def format_swd_table(result: Dict[str, float]) -> List[str]:
    """Lines of the SWD table: one per pyramid level (full resolution first), then the average."""
    lines = [f"{'level':>8}  {'SWD x1e3':>10}"]
    for key, value in result.items():
        if key.startswith("swd_level_"):
            lines.append(f"{key[len('swd_level_'):] + ' px':>8}  {value:10.4f}")
    lines.append(f"{'avg':>8}  {result['swd_avg']:10.4f}")
    return lines


def _write_json(path: Path, payload: Dict[str, Any]) -> None:
    """Atomic write: a reader never sees half a file."""
    from ..atomic_write import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


@click.command()
@network_option
@click.option("--data", required=True, metavar="PATH|builtin:glyphs",
              help="Real images: a folder, a .zip of images or builtin:glyphs (prepared like training data).")
@click.option("--metrics", "metric_names", default="swd", show_default=True,
              help=f"Comma-separated metrics; available: {', '.join(AVAILABLE_METRICS)}.")
@click.option("--num", type=int, default=None,
              help="Images per set (reals and fakes) [default: min(16384, dataset size); the PGGAN paper uses "
                   "16384]. Fewer images give a noisier, higher SWD.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the real subset, latents, noise, neighbourhoods and projections.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi of the fakes.")
@click.option("--lod", type=float, default=None,
              help="Level of detail to evaluate at [default: the checkpoint's training lod, else 0 = full "
                   "resolution].")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Fakes per forward pass.")
@device_option
@click.option("--json", "json_out", type=click.Path(dir_okay=True), default=None,
              help="Write the results (and the settings) to this JSON file.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Dataset cache folder [default: $STYLEGAN_CACHE/datasets or ~/.cache/stylegan/datasets].")
@click.option("--glyphs", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Number of images of builtin:glyphs (use the training run's value).")
@click.option("--min-res", "min_resolution", type=click.IntRange(min=7), default=16, show_default=True,
              help="Smallest pyramid level in px (protocol: 16; lower it only to score tiny images).")
@precision_option
def metrics(network: str, data: str, metric_names: str, num: Optional[int], seed: int, psi: float,
            lod: Optional[float], batch: int, device: torch.device, json_out: Optional[str], cache_dir: Optional[str],
            glyphs: int, min_resolution: int, precision: str) -> None:
    """Score a network against real images: multi-scale sliced Wasserstein distance (PGGAN; lower is better)."""
    from ..metrics import PAPER_NUM_IMAGES, swd_for_generator

    names = _parse_metrics(metric_names)
    resolved = resolve_precision_option(precision, device)
    if not math.isfinite(psi):
        raise click.BadParameter(f"{psi} is not a finite number", param_hint="--trunc")
    if num is not None and num < 1:
        raise click.BadParameter(f"{num} is invalid: expected an int >= 1", param_hint="--num")
    out_path = prepare_outfile(Path(json_out), param_hint="--json") if json_out else None

    nets = open_network(network, device)
    G = generator_of(nets)
    config = getattr(G, "config", None)
    if config is None or not hasattr(config, "resolution_at"):
        raise click.BadParameter("the generator has no config (resolution unknown)", param_hint="--network")
    if lod is None:
        lod = nets.lod
    try:
        resolution = config.resolution_at(lod)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lod") from None
    if resolution < min_resolution:
        raise click.BadParameter(f"lod {lod} gives {resolution} px images, below the smallest SWD level "
                                 f"{min_resolution} px (lower --min-res or --lod)", param_hint="--lod")

    dataset = _open_dataset(data, config.resolution, cache_dir, glyphs)
    if dataset.num_channels != config.num_channels:
        raise click.BadParameter(f"the dataset has {dataset.num_channels} channel(s) but the network makes "
                                 f"{config.num_channels}", param_hint="--data")
    if num is None:
        num = min(PAPER_NUM_IMAGES, len(dataset))
    elif num > len(dataset):
        raise click.BadParameter(f"{num} exceeds the dataset's {len(dataset)} images (SWD compares equal-size "
                                 f"sets)", param_hint="--num")

    results: Dict[str, Any] = {}
    click.echo(f"SWD: {num} reals from {data} vs {num} fakes of {network} at {resolution} px "
               f"(lod {lod:g}, psi {psi:g}, seed {seed}) on {device}")
    if "swd" in names:
        start = time.perf_counter()
        try:
            swd = swd_for_generator(G, dataset, num, psi=psi, lod=lod, batch=batch, seed=seed, device=device,
                                    min_resolution=min_resolution, precision=resolved,
                                    progress=sys.stderr.isatty())
        except ValueError as exc:
            raise click.UsageError(f"SWD failed: {exc}") from None
        swd.pop("swd_time_s", None)
        for line in format_swd_table(swd):
            click.echo(line)
        elapsed = time.perf_counter() - start
        click.echo(f"time {elapsed:.1f} s")
        results.update(swd)
        results["swd_time_s"] = elapsed
    if out_path is not None:
        payload = {"network": str(network), "data": data, "num": num, "seed": seed, "psi": psi, "lod": lod,
                   "resolution": resolution, "device": str(device), "metrics": results}
        try:
            _write_json(out_path, payload)
        except OSError as exc:
            raise click.BadParameter(f"cannot write {out_path}: {exc}", param_hint="--json") from None
        click.echo(f"wrote {out_path}")
