"""`stylegan project`: real images -> latents (W or W+, optionally noise maps) with NVlabs projector.py's schedule.

Starts at w_avg (projector.py) or, with --init encoder, at the ws an encoder of `stylegan encoder train` predicts.
Writes, per target (in --outdir itself for one target, in --outdir/<name>/ for several): target.png, proj.png,
projected.npz (ws + noise + the network's fingerprint: `stylegan generate --ws` renders it exactly),
progress.gif (target | projection during the optimisation) and log.jsonl (one record per step).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click
import numpy as np
import torch

from ..atomic_write import atomic_write_bytes
from ..images import animation_bytes, tile, write_png
from .generate import _check_class
from .options import (class_option, device_option, generator_of, load_for_network, network_option, open_network,
                      precision_option, prepare_outdir, resolve_precision_option)

GIF_FRAME_MS = 80


def network_file_sha256(network: str) -> str:
    """sha256 of the --network file (its cached download for a URL); '' when it cannot be read."""
    from ..download import cached_name, download_cache_dir, is_url
    from ..file_hash import file_sha256

    path = download_cache_dir() / cached_name(network) if is_url(network) else Path(network)
    try:
        return file_sha256(path)
    except OSError:
        return ""


def _target_folders(outdir: Path, targets: List[Path]) -> List[Path]:
    """One target: outdir; several: outdir/<stem>, made unique with the target's index where stems repeat."""
    if len(targets) == 1:
        return [outdir]
    stems = [t.stem for t in targets]
    return [outdir / (s if stems.count(s) == 1 else f"{i:02d}-{s}") for i, s in enumerate(stems)]


def _log_lines(log: List[dict], index: int) -> bytes:
    lines = []
    for record in log:
        lines.append(json.dumps({k: (v[index] if isinstance(v, list) else v) for k, v in record.items()}))
    return ("\n".join(lines) + "\n").encode()


def projection_meta(target: str, loss_name: str, seed: int, class_idx: Optional[int], cfg, result, i: int,
                    init: str = "w_avg", encoder_path: Optional[Path] = None, precision: str = "fp32") -> dict:
    """The `meta` of target i's projected.npz (what `stylegan serve`'s projection download holds too)."""
    return {"target": target, "space": cfg.space, "loss": loss_name, "init": init,
            "encoder": None if encoder_path is None else str(encoder_path), "steps": cfg.num_steps,
            "noise_steps": cfg.noise_steps, "seed": seed, "class": class_idx, "precision": precision,
            "psnr": result.psnr[i], "ssim": result.ssim[i], "config": cfg.to_dict()}


@click.command()
@network_option
@click.option("--target", "targets", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Image file to project (repeat for several: they run as one batch). Centre-cropped to a square "
                   "and Lanczos-resized to the network's resolution.")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for target.png, proj.png, projected.npz, progress.gif, log.jsonl (one sub-folder per "
                   "target when there are several).")
@click.option("--space", type=click.Choice(["w", "wplus"]), default="w", show_default=True,
              help="w: one latent for every layer (NVlabs projector.py); wplus: one per layer (Image2StyleGAN).")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Optimisation steps on the latents and noise maps together.")
@click.option("--noise-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Then this many steps on the noise maps alone, latents fixed (Image2StyleGAN++).")
@click.option("--loss", "loss_kind", type=click.Choice(["auto", "lpips", "pixel"]), default="auto",
              show_default=True, help="lpips: NVIDIA's VGG16 LPIPS (official); pixel: MSE + MS-SSIM, no weights "
                                      "needed; auto: lpips when --vgg16 is given or cached, else pixel.")
@click.option("--vgg16", default=None, metavar="PATH|URL", help="NVIDIA's vgg16.pt TorchScript file for LPIPS.")
@click.option("--mse-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of an MSE term added to LPIPS (Image2StyleGAN).")
@click.option("--init", "init", type=click.Choice(["w_avg", "encoder"]), default="w_avg", show_default=True,
              help="Start: w_avg (NVlabs projector.py) or the ws an --encoder predicts for each target.")
@click.option("--encoder", "encoder_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Encoder file of `stylegan encoder train` for this network (with --init encoder).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Initial (peak) learning rate.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the noise maps' start and of the latent noise.")
@click.option("--frames", "num_frames", type=click.IntRange(min=1), default=50, show_default=True,
              help="Frames of progress.gif over the whole run.")
@class_option
@device_option
@precision_option
def project(network: str, targets: List[Path], outdir: Path, space: str, steps: int, noise_steps: int,
            loss_kind: str, vgg16: Optional[str], mse_weight: float, init: str, encoder_path: Optional[Path],
            lr: float, seed: int, num_frames: int, class_idx: Optional[int], device: torch.device,
            precision: str) -> None:
    """Find the latents that reproduce each --target image, and write the projection's files.

    --precision sets the synthesis network's arithmetic during the steps; proj.png, its PSNR and SSIM are always
    rendered in fp32, as `stylegan generate --ws` renders projected.npz."""
    from ..feature_nets import FeatureNetError
    from ..projection import ProjectionConfig, load_target, make_loss
    from ..projection import project as run_projection
    from ..projection.encoder import check_encoder_for, load_encoder
    from ..projection.targets import TargetImageError
    from ..ws_file import generator_digest, save_ws_file

    if (init == "encoder") != (encoder_path is not None):
        raise click.UsageError("--encoder FILE goes with, and is required by, --init encoder")
    resolved = resolve_precision_option(precision, device)
    nets = open_network(network, device)
    G = generator_of(nets)
    _check_class(G, class_idx)
    digest, file_digest = generator_digest(G), network_file_sha256(network)
    encoder = None
    if encoder_path is not None:
        encoder = load_for_network(lambda p: load_encoder(p, device), lambda e, *a: check_encoder_for(
            e, *a, network_sha256=file_digest), encoder_path, G, digest, network, "--encoder").encoder
    res, channels = int(G.config.resolution), int(G.config.num_channels)
    try:
        pixels = torch.stack([load_target(t, res, channels) for t in targets])
    except TargetImageError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from None
    try:
        loss, note = make_loss(loss_kind, pixels, vgg16, device, mse_weight)
    except FeatureNetError as exc:
        raise click.BadParameter(str(exc), param_hint="--vgg16") from None
    if note:
        click.echo(f"note: {note}", err=True)
    cfg = ProjectionConfig(space=space, num_steps=steps, noise_steps=noise_steps, initial_learning_rate=lr,
                           mse_weight=mse_weight)
    folders = [prepare_outdir(f) for f in _target_folders(prepare_outdir(outdir), list(targets))]
    total = steps + (noise_steps if G.config.use_noise else 0)
    try:
        result = run_projection(G, pixels.to(device), cfg, loss=loss, class_idx=class_idx, seed=seed,
                                frame_every=max(1, total // num_frames), encoder=encoder, precision=resolved)
    except FeatureNetError as exc:
        raise click.BadParameter(str(exc), param_hint="--vgg16") from None
    except ValueError as exc:  # the mapping network's statistics
        raise click.BadParameter(str(exc), param_hint="--network") from None
    for i, (folder, target) in enumerate(zip(folders, targets)):
        write_png(result.targets[i], folder / "target.png")
        write_png(result.images[i], folder / "proj.png")
        meta = projection_meta(str(target), loss.name, seed, class_idx, cfg, result, i, init, encoder_path,
                               resolved.name)
        save_ws_file(folder / "projected.npz", result.ws[i:i + 1], G,
                     None if result.noise is None else [m[i:i + 1] for m in result.noise], file_digest, meta,
                     G_sha256=digest)
        frames = [tile([[result.targets[i], frame[i]]]) for _, frame in result.frames]
        atomic_write_bytes(folder / "progress.gif", animation_bytes(np.stack(frames), "GIF", GIF_FRAME_MS))
        atomic_write_bytes(folder / "log.jsonl", _log_lines(result.log, i))
        click.echo(f"{target}: PSNR {result.psnr[i]:.2f} dB, SSIM {result.ssim[i]:.4f} ({space}, {loss.name} loss) "
                   f"-> {folder}")
