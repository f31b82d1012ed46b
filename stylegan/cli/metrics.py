"""`stylegan metrics`: the field's numbers (FID, KID, precision/recall, IS, PPL) by the official protocols, the
weight-free ones (SWD, modes, glyph_acc), of a network against a dataset or of two image folders.

Why a command: to score a finished network or any checkpoint with the protocol papers report, or two folders of
images as pytorch-fid does, and to record the result as JSON beside the run. The numbers come from
`stylegan.metrics.compute_metric`, the same code the training loop calls at snapshots.
"""
from __future__ import annotations

import functools
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click
import torch

from ..training.glyphs import GLYPH_STYLES
from .options import (device_option, generator_of, network_option, open_network, precision_option, prepare_outfile,
                      resolve_precision_option)


def format_swd_table(result: Dict[str, float]) -> List[str]:
    """Lines of the SWD table: one per pyramid level (full resolution first), then the average."""
    lines = [f"{'level':>8}  {'SWD x1e3':>10}"]
    for key, value in result.items():
        if key.startswith("swd_level_"):
            lines.append(f"{key[len('swd_level_'):] + ' px':>8}  {value:10.4f}")
    lines.append(f"{'avg':>8}  {result['swd_avg']:10.4f}")
    return lines


def format_results_table(results: List[Any]) -> List[str]:
    """One row per reported number: metric, value, generated / real images, seconds, images processed per second
    (generated plus the reals whose features were computed, not read from the cache)."""
    lines = [f"{'metric':<28} {'value':>12} {'gen':>8} {'real':>8} {'seconds':>8} {'img/s':>8}"]
    for r in results:
        rate = (r.num_gen + (0 if r.reals_from_cache else r.num_real)) / max(r.seconds, 1e-9)
        for key, value in r.results.items():
            if key.startswith("swd_level_"):
                continue
            lines.append(f"{key:<28} {value:12.5g} {r.num_gen:8d} {r.num_real:8d} {r.seconds:8.1f} {rate:8.1f}")
    return lines


def _write_json(path: Path, payload: Dict[str, Any]) -> None:
    """Atomic write: a reader never sees half a file."""
    from ..atomic_write import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


def _open_dataset(data: str, resolution: int, cache_dir: Optional[str], glyphs: int, hint: str = "--data",
                  glyphs_style: str = "solid") -> Any:
    from ..training.dataset import BUILTIN_GLYPHS, ImageDataset

    if not data.startswith("builtin:") and not Path(data).expanduser().exists():
        raise click.BadParameter(f"{data} does not exist (expected a folder, a .zip or {BUILTIN_GLYPHS})",
                                 param_hint=hint)
    try:
        return ImageDataset(data, resolution, cache_dir=cache_dir, glyphs_count=glyphs, verbose=True,
                            glyphs_style=glyphs_style)
    except (ValueError, OSError, RuntimeError) as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _image_sizes(spec: str, hint: str) -> Counter:
    """Counter of (width, height) over a folder's or zip's images (headers only, the dataset reader's probe)."""
    from ..training.image_reader import ImageSource, probe

    try:
        source = ImageSource(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
    sizes: Counter = Counter()
    try:
        for name in source.names:
            try:
                w, h, _ = probe(source.read(name))
            except Exception:  # noqa: BLE001 - unreadable files are the dataset reader's business (it counts them)
                continue
            sizes[(w, h)] += 1
    finally:
        source.close()
    if not sizes:
        raise click.BadParameter(f"{spec} holds no readable images", param_hint=hint)
    return sizes


def _folder_resolution(spec: str, hint: str) -> int:
    """The one square power-of-two size of a folder's images; BadParameter naming the sizes otherwise."""
    sizes = _image_sizes(spec, hint)
    if len(sizes) == 1:
        (w, h), = sizes
        if w == h and w & (w - 1) == 0:
            return w
    listed = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(4))
    raise click.BadParameter(f"{spec}: images of size {listed}; comparing folders needs one square power-of-two "
                             f"size, or --resize R to centre-crop and resize both folders to R px", param_hint=hint)


def _feature_net_options(fn):
    fn = click.option("--vgg16", default=None, metavar="PATH|URL",
                      help="NVIDIA's vgg16.pt (precision/recall, PPL) [default: the official URL, downloaded once "
                           "into the cache].")(fn)
    fn = click.option("--inception", default=None, metavar="PATH|URL",
                      help="NVIDIA's inception-2015-12-05.pt (FID, KID, IS) [default: the official URL, downloaded "
                           "once into the cache].")(fn)
    return fn


@click.command()
@functools.partial(network_option, required=False)
@click.option("--data", default=None, metavar="PATH|builtin:NAME",
              help="Real images: a folder, a .zip of images or a built-in dataset (prepared like training data). "
                   "Needed by every metric that compares with reals; its labels feed a conditional network.")
@click.option("--fakes", default=None, metavar="PATH",
              help="Compare the folder/zip --data with this folder/zip of images instead of a network (all images "
                   "of each; metrics fid, kid, pr, is).")
@click.option("--metrics", "metric_names", default="swd", show_default=True,
              help="Comma-separated metric names: fid50k_full, kid50k_full, pr50k3_full, is50k, ppl_zfull, "
                   "ppl_wfull, ppl_zend, ppl_wend, fid50k, kid50k, pr50k3, swd, modes, glyph_acc.")
@click.option("--num", "--num-gen", "num", type=int, default=None,
              help="Generated images per metric instead of the protocol's count, for a quick estimate; the result is "
                   "reported under a name that says so (fid5k_full), never the official name. Under torchrun "
                   "spell it --num-gen (torchrun takes --num for its own --numa-binding).")
@_feature_net_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the latents, labels, noise and the metrics' own random choices.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi of the fakes.")
@click.option("--lod", type=float, default=None,
              help="Level of detail to evaluate at [default: the checkpoint's training lod, else 0 = full "
                   "resolution]; the reals are box-downsampled to match.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images per generator and feature-network call.")
@device_option
@click.option("--json", "json_out", type=click.Path(dir_okay=True), default=None,
              help="Write the results (one object per metric) and the settings to this JSON file.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Dataset cache folder [default: $STYLEGAN_CACHE_DIR/datasets or ~/.cache/stylegan/datasets].")
@click.option("--glyphs", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Number of images of a built-in dataset (use the training run's value).")
@click.option("--glyphs-style", type=click.Choice(GLYPH_STYLES), default="solid", show_default=True,
              help="Stroke style of builtin:glyphs (use the training run's value, e.g. outline for a network "
                   "fine-tuned on --glyphs-style outline).")
@click.option("--min-res", "min_resolution", type=click.IntRange(min=7), default=16, show_default=True,
              help="SWD: smallest pyramid level in px (protocol: 16; lower it only to score tiny images).")
@click.option("--allow-fewer", is_flag=True,
              help="Run a legacy protocol (fid50k, kid50k, pr50k3) with all reals when the data has fewer than it "
                   "asks for; the number is then not comparable with published ones.")
@click.option("--ppl-crop", is_flag=True, help="PPL: the paper's FFHQ face crop.")
@click.option("--resize", type=int, default=None,
              help="Folders of different sizes: centre-crop and resize both to this power-of-two size.")
@click.option("--no-stats-cache", is_flag=True, help="Recompute the reals' feature statistics (not read or "
                                                     "written in $STYLEGAN_CACHE_DIR/metrics).")
@precision_option
def metrics(network: Optional[str], data: Optional[str], fakes: Optional[str], metric_names: str, num: Optional[int],
            inception: Optional[str], vgg16: Optional[str], seed: int, psi: float, lod: Optional[float], batch: int,
            device: torch.device, json_out: Optional[str], cache_dir: Optional[str], glyphs: int, glyphs_style: str,
            min_resolution: int, allow_fewer: bool, ppl_crop: bool, resize: Optional[int],
            no_stats_cache: bool, precision: str) -> None:
    """Score a network against real images (or two folders of images) by the official protocols."""
    from ..training import distributed

    try:  # under torchrun: join the process group; the images are split across the ranks, rank 0 reports
        dist_ctx, rank_device = distributed.init_from_env("cuda" if device.type == "cuda" else "cpu")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if dist_ctx.enabled:
        device = torch.device(rank_device)
    resolved = resolve_precision_option(precision, device)
    try:
        _metrics(network, data, fakes, metric_names, num, inception, vgg16, seed, psi, lod, batch, device, json_out,
                 cache_dir, (glyphs, glyphs_style), min_resolution, allow_fewer, ppl_crop, resize, no_stats_cache,
                 dist_ctx, resolved)
        dist_ctx.barrier()
    finally:
        distributed.shutdown()


def _metrics(network: Optional[str], data: Optional[str], fakes: Optional[str], metric_names: str,
             num: Optional[int], inception: Optional[str], vgg16: Optional[str], seed: int, psi: float,
             lod: Optional[float], batch: int, device: torch.device, json_out: Optional[str],
             cache_dir: Optional[str], glyphs: Tuple[int, str], min_resolution: int, allow_fewer: bool,
             ppl_crop: bool,
             resize: Optional[int], no_stats_cache: bool, dist_ctx: Any, precision: Any) -> None:
    from ..metrics import MetricOptions, parse_metric_names, protocol_for

    echo = click.echo if dist_ctx.is_main else (lambda *_a, **_k: None)
    folders = fakes is not None
    try:
        names = parse_metric_names(metric_names, folders=folders)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from None
    if not math.isfinite(psi):
        raise click.BadParameter(f"{psi} is not a finite number", param_hint="--trunc")
    if resize is not None and (resize < 4 or resize & (resize - 1)):
        raise click.BadParameter(f"{resize} is not a power of two >= 4", param_hint="--resize")
    out_path = prepare_outfile(Path(json_out), param_hint="--json") if json_out and dist_ctx.is_main else None
    opts = MetricOptions(inception=inception, vgg16=vgg16, seed=seed, psi=psi, batch=batch, device=device,
                         precision=precision,
                         allow_fewer=allow_fewer, ppl_crop=ppl_crop, use_cache=not no_stats_cache,
                         progress=sys.stderr.isatty() and dist_ctx.is_main)
    if folders:
        if network is not None:
            raise click.UsageError("give either --network or --fakes, not both")
        if data is None:
            raise click.UsageError("--fakes compares two image sets: give the other one with --data")
        results, settings = _folder_metrics(names, data, fakes, resize, cache_dir, opts, echo, dist_ctx)
    else:
        if network is None:
            raise click.UsageError("give --network (a network file or URL), or --data and --fakes to compare two "
                                   "folders")
        try:
            protocols = [protocol_for(n, num) for n in names]
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--num") from None
        results, settings = _network_metrics(protocols, network, data, lod, cache_dir, glyphs, min_resolution, device,
                                             opts, echo, dist_ctx)
    for r in results:
        if "swd_avg" in r.results:
            for line in format_swd_table(r.results):
                echo(line)
    for line in format_results_table(results):
        echo(line)
    if out_path is not None:
        flat = {k: v for r in results for k, v in r.results.items()}
        payload = {**settings, "num": num, "seed": seed, "psi": psi, "device": str(device), "metrics": flat,
                   "results": [r.to_json() for r in results]}
        try:
            _write_json(out_path, payload)
        except OSError as exc:
            raise click.BadParameter(f"cannot write {out_path}: {exc}", param_hint="--json") from None
        click.echo(f"wrote {out_path}")


def _run(protocol: Any, opts: Any, **inputs: Any) -> Any:
    from ..feature_nets import FeatureNetError
    from ..metrics import compute_metric

    try:
        return compute_metric(protocol, opts=opts, **inputs)
    except FeatureNetError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{protocol.detector}") from None
    except ValueError as exc:
        raise click.UsageError(f"{protocol.name}: {exc}") from None


def _open_on_ranks(dist_ctx: Any, open_it: Any) -> Any:
    """Rank 0 prepares the dataset cache first, then the other ranks open the finished cache."""
    value = open_it() if dist_ctx.is_main else None
    dist_ctx.barrier()
    return value if dist_ctx.is_main else open_it()


def _network_metrics(protocols: List[Any], network: str, data: Optional[str], lod: Optional[float],
                     cache_dir: Optional[str], glyphs: Tuple[int, str], min_resolution: int, device: torch.device,
                     opts: Any, echo: Any, dist_ctx: Any) -> Tuple[List[Any], Dict[str, Any]]:
    """`glyphs`: (count, style) of builtin:glyphs."""
    import dataclasses

    from ..metrics import RealImages

    needs_reals = [p.name for p in protocols if p.needs_reals]
    if needs_reals and data is None:
        raise click.UsageError(f"{', '.join(needs_reals)} compare(s) with real images: give --data")
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
    if any(p.kind == "swd" for p in protocols) and resolution < min_resolution:
        raise click.BadParameter(f"lod {lod} gives {resolution} px images, below the smallest SWD level "
                                 f"{min_resolution} px (lower --min-res or --lod)", param_hint="--lod")
    reals = None
    if data is not None:
        dataset = _open_on_ranks(dist_ctx, lambda: _open_dataset(data, config.resolution, cache_dir, glyphs[0],
                                                                   glyphs_style=glyphs[1]))
        if dataset.num_channels != config.num_channels:
            raise click.BadParameter(f"the dataset has {dataset.num_channels} channel(s) but the network makes "
                                     f"{config.num_channels}", param_hint="--data")
        reals = RealImages.of(dataset, resolution, name=data)
        for p in protocols:
            if p.kind == "swd" and not p.official and p.num_gen > len(reals):
                raise click.BadParameter(f"{p.num_gen} exceeds the dataset's {len(reals)} images (SWD compares "
                                         f"equal-size sets)", param_hint="--num")
    G.eval()
    opts = dataclasses.replace(opts, lod=lod, min_resolution=min_resolution)
    echo(f"{network} at {resolution} px (lod {lod:g}, psi {opts.psi:g}, seed {opts.seed}) on {device}"
               + (f" against {data}" if data else ""))
    results = [_run(p, opts, G=G, reals=reals) for p in protocols]
    return results, {"network": str(network), "data": data, "lod": lod, "resolution": resolution}


def _folder_metrics(names: List[str], data: str, fakes: str, resize: Optional[int], cache_dir: Optional[str],
                    opts: Any, echo: Any, dist_ctx: Any) -> Tuple[List[Any], Dict[str, Any]]:
    from ..metrics import RealImages, folder_protocol

    if resize is None:
        res_a, res_b = _folder_resolution(data, "--data"), _folder_resolution(fakes, "--fakes")
        if res_a != res_b:
            raise click.BadParameter(f"{data} holds {res_a} px images and {fakes} {res_b} px ones; pass --resize R "
                                     f"to centre-crop and resize both to R px", param_hint="--fakes")
    else:
        res_a = res_b = resize
    reals = RealImages.of(_open_on_ranks(dist_ctx, lambda: _open_dataset(data, res_a, cache_dir, 1)), name=data)
    other = RealImages.of(_open_on_ranks(dist_ctx, lambda: _open_dataset(fakes, res_b, cache_dir, 1, hint="--fakes")),
                          name=fakes)
    echo(f"{fakes} ({len(other)} images) vs {data} ({len(reals)} images) at {res_a} px")
    results = [_run(folder_protocol(n), opts, reals=reals, fakes=other) for n in names]
    return results, {"data": data, "fakes": fakes, "resolution": res_a}
