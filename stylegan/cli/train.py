"""`stylegan train`: progressive-growing training from the command line (options validated before any work)."""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import click

from ..training.config import LOSS_NAMES, TrainConfig

# CLI option -> TrainConfig field (options not listed keep the config defaults).
_OPTION_FIELDS = {
    "outdir": "outdir", "data": "data", "resolution": "resolution", "kimg": "total_kimg", "batch": "batch",
    "fmap_base": "fmap_base", "fmap_max": "fmap_max", "latent": "latent_size", "tick": "tick_kimg",
    "snap": "snapshot_ticks", "loss": "loss", "gp_lambda": "wgan_lambda", "r1_gamma": "r1_gamma", "mirror": "mirror_augment", "seed": "seed", "device": "device",
    "cond": "cond", "workers": "workers", "keep": "keep_checkpoints", "cache_dir": "cache_dir",
    "start_res": "lod_initial_resolution", "ema_kimg": "G_smoothing_kimg", "glyphs": "glyphs_count", "strict": "strict_data",
    "swd_num": "swd_num", "fused_scale": "fused_scale", "mapping_layers": "mapping_layers",
}
_FUSED_SCALE = {"auto": "auto", "true": True, "false": False}  # --fused-scale choice -> TrainConfig.fused_scale


def _pow2(x: int) -> bool:
    return x >= 1 and (x & (x - 1)) == 0


def _check_writable(outdir: str) -> None:
    p = Path(outdir)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-test-{os.getpid()}"  # per process: torchrun ranks check at the same time
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise click.BadParameter(f"cannot write to {outdir}: {e.strerror or e}", param_hint="--outdir") from None


def _apply_malloc_tuning() -> None:
    """Long CPU jobs: keep freed blocks mapped (glibc mallopt), see PERFORMANCE_NOTES; STYLEGAN_NO_MALLOPT=1 opts out.

    Fresh mmap'd outputs cost page faults on every large op; raising the mmap/trim thresholds makes a CPU training
    step markedly faster. Only the CLI does this (a library must not change process-wide allocator settings).
    """
    if os.environ.get("STYLEGAN_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        libc.mallopt(M_MMAP_THRESHOLD, 2 ** 30)   # glibc caps the mmap threshold at 32 MiB on 64-bit anyway
        libc.mallopt(M_TRIM_THRESHOLD, 2 ** 36)
        libc.mallopt(M_TOP_PAD, 0)
    except (OSError, AttributeError):
        pass


@click.command("train", context_settings={"show_default": True})
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Run folder (checkpoints, logs, grids).")
@click.option("--data", default="builtin:glyphs", help="Image folder, .zip of images, or builtin:glyphs.")
@click.option("--resolution", type=int, default=32, help="Final resolution (power of two, >= --start-res). Smaller images are upscaled (warning); "
                   "if all are smaller it is an error.")
@click.option("--kimg", type=float, default=100.0, help="Total training length in thousands of real images.")
@click.option("--phase-kimg", type=float, default=None,
              help="kimg per stabilise phase and per fade-in phase (official 600).")
@click.option("--batch", type=int, default=None, help="Minibatch at every resolution (default: official 1-GPU table).")
@click.option("--fmap-base", type=int, default=8192, help="Feature-map budget (official value).")
@click.option("--fmap-max", type=int, default=512, help="Most feature maps per layer (official value).")
@click.option("--latent", type=int, default=512, help="Size of z and w, and width of the mapping layers (official value).")
@click.option("--mapping-layers", type=int, default=8,
              help="Dense layers of the mapping network (official value; fewer make a smaller, faster network).")
@click.option("--start-res", type=int, default=8, help="Resolution training starts at (official value).")
@click.option("--lr", type=float, default=None,
              help="One learning rate for G and D at every resolution (default: official 0.001, higher at >= 128 px).")
@click.option("--ema-kimg", type=float, default=10.0,
              help="Half-life of G_ema in kimg (official G_smoothing_kimg); shorter suits short runs.")
@click.option("--tick", type=float, default=4.0, help="kimg between status lines.")
@click.option("--snap", type=int, default=5, help="Ticks between checkpoints and fake grids.")
@click.option("--keep", type=int, default=3, help="Periodic checkpoints kept.")
@click.option("--loss", type=click.Choice(LOSS_NAMES), default="wgan-gp", help="GAN loss.")
@click.option("--gp-lambda", type=float, default=10.0, help="wgan-gp: gradient-penalty weight (official 10).")
@click.option("--r1-gamma", type=float, default=10.0,
              help="logistic: R1 weight (official 10, tuned for 1024 px; small images want far less, e.g. 0.05).")
@click.option("--mirror/--no-mirror", default=False, help="Random x-flips of the reals.")
@click.option("--seed", type=int, default=0, help="Random seed.")
@click.option("--resume", default=None, help="Checkpoint FILE, a run DIR, or 'latest' (newest in --outdir).")
@click.option("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available).")
@click.option("--cond/--no-cond", default=False, help="Condition on the dataset's class labels.")
@click.option("--workers", type=int, default=2, help="DataLoader worker processes.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Dataset cache folder [default: $STYLEGAN_CACHE/datasets or ~/.cache/stylegan/datasets].")
@click.option("--glyphs", type=int, default=10000, help="Number of images of builtin:glyphs.")
@click.option("--strict/--no-strict", default=False, help="Fail on unreadable images instead of skipping them.")
@click.option("--swd-num", type=int, default=1024,
              help="Images per set for the SWD (x1e3, PGGAN protocol) logged at each snapshot from 16 px; 0: off.")
@click.option("--fused-scale", type=click.Choice(list(_FUSED_SCALE)), default="true",
              callback=lambda ctx, param, value: _FUSED_SCALE[value],
              help="2x up/down-convs as one stride-2 (transposed) conv: true = at every resolution (~2.25x fewer "
                   "FLOPs for those convs; D's function is unchanged, G's is the unfused one with flipped 3x3 "
                   "kernels), auto = official (from 128 px), false = never.")
@click.option("--impl", type=click.Choice(["auto", "cpu", "cuda", "ref"]), default="auto", help="Op implementation.")
@click.option("--threads", type=int, default=0,
              help="CPU threads for torch (0: torch's default). On a busy shared CPU 1 can be much faster.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, **opts: Any) -> None:
    """Train a StyleGAN with progressive growing (official schedule; resumable; Ctrl-C saves a checkpoint)."""
    resume: Optional[str] = opts.pop("resume")
    impl: str = opts.pop("impl")
    quiet: bool = opts.pop("quiet")
    phase_kimg: Optional[float] = opts.pop("phase_kimg")
    threads: int = opts.pop("threads")
    lr: Optional[float] = opts.pop("lr")

    # Up-front validation: clear messages, no traceback.
    res, start = opts["resolution"], opts["start_res"]
    if not _pow2(res) or res < 4:
        raise click.BadParameter(f"{res} is not a power of two >= 4", param_hint="--resolution")
    if not _pow2(start) or start < 4:
        raise click.BadParameter(f"{start} is not a power of two >= 4", param_hint="--start-res")
    if start > res:
        raise click.BadParameter(f"start resolution {start} is above --resolution {res}", param_hint="--start-res")
    if not (opts["kimg"] > 0 and math.isfinite(opts["kimg"])):
        raise click.BadParameter(f"{opts['kimg']} is not > 0", param_hint="--kimg")
    if phase_kimg is not None and not (phase_kimg >= 0 and math.isfinite(phase_kimg)):
        raise click.BadParameter(f"{phase_kimg} is not >= 0", param_hint="--phase-kimg")
    if opts["batch"] is not None and opts["batch"] < 1:
        raise click.BadParameter(f"{opts['batch']} is not >= 1", param_hint="--batch")
    if opts["batch"] is not None and opts["batch"] > 4 and opts["batch"] % 4:
        raise click.BadParameter(f"{opts['batch']}: above 4 the minibatch must be a multiple of 4 "
                                 f"(minibatch-stddev groups of 4)", param_hint="--batch")
    for name, hint in (("fmap_base", "--fmap-base"), ("fmap_max", "--fmap-max"), ("latent", "--latent"),
                       ("mapping_layers", "--mapping-layers"),
                       ("snap", "--snap"), ("keep", "--keep"), ("glyphs", "--glyphs")):
        if opts[name] < 1:
            raise click.BadParameter(f"{opts[name]} is not >= 1", param_hint=hint)
    if opts["tick"] <= 0:
        raise click.BadParameter(f"{opts['tick']} is not > 0", param_hint="--tick")
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise click.BadParameter(f"{lr} is not > 0", param_hint="--lr")
    if not (opts["ema_kimg"] >= 0 and math.isfinite(opts["ema_kimg"])):
        raise click.BadParameter(f"{opts['ema_kimg']} is not >= 0", param_hint="--ema-kimg")
    if threads < 0:
        raise click.BadParameter(f"{threads} is not >= 0", param_hint="--threads")
    if opts["workers"] < 0:
        raise click.BadParameter(f"{opts['workers']} is not >= 0", param_hint="--workers")
    if opts["swd_num"] < 0:
        raise click.BadParameter(f"{opts['swd_num']} is not >= 0", param_hint="--swd-num")
    data = opts["data"]
    if not data.startswith("builtin:") and not Path(data).expanduser().exists():
        raise click.BadParameter(f"{data} does not exist (expected a folder, a .zip or builtin:glyphs)",
                                 param_hint="--data")
    _check_writable(opts["outdir"])

    fields: Dict[str, Any] = {_OPTION_FIELDS[k]: v for k, v in opts.items()}
    fields["mapping_fmaps"] = fields["latent_size"]
    fields["dlatent_size"] = fields["latent_size"]
    if lr is not None:
        fields.update(G_lrate_base=lr, D_lrate_base=lr, G_lrate_dict={}, D_lrate_dict={})
    if phase_kimg is not None:
        fields["lod_training_kimg"] = fields["lod_transition_kimg"] = phase_kimg
    if resume is not None:
        # Options not given on the command line come from the checkpoint's config, so
        # `stylegan train --outdir RUN --resume latest` continues the run as it was configured.
        from ..training.checkpoint import find_checkpoint, load_checkpoint
        try:
            saved = TrainConfig.from_json(load_checkpoint(find_checkpoint(resume, opts["outdir"]))["training"]
                                          ["train_config"]).to_dict()
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--resume") from None
        explicit = {_OPTION_FIELDS[k] for k in _OPTION_FIELDS
                    if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
        if ctx.get_parameter_source("phase_kimg") == click.core.ParameterSource.COMMANDLINE:
            explicit |= {"lod_training_kimg", "lod_transition_kimg"}
        if ctx.get_parameter_source("lr") == click.core.ParameterSource.COMMANDLINE:
            explicit |= {"G_lrate_base", "D_lrate_base", "G_lrate_dict", "D_lrate_dict"}
        if "latent_size" in explicit:
            explicit |= {"mapping_fmaps", "dlatent_size"}
        fields = {**saved, **{k: v for k, v in fields.items() if k in explicit}, "outdir": opts["outdir"]}
    try:
        cfg = TrainConfig.from_dict(fields)
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    from ..training import distributed
    from ..training.loop import Trainer
    _apply_malloc_tuning()
    if threads:
        import torch
        torch.set_num_threads(threads)
    try:  # under torchrun: join the process group (one process: nothing happens)
        dist_ctx, device = distributed.init_from_env(cfg.device)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    echo = click.echo if dist_ctx.is_main else (lambda *_a, **_k: None)
    try:
        try:
            trainer = Trainer(cfg, resume=resume, impl=impl, progress=not quiet, log=click.echo, dist=dist_ctx,
                              device=device)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        ranks = f" on {dist_ctx.world_size} processes ({device})" if dist_ctx.enabled else ""
        echo(f"Training {cfg.lod_initial_resolution} -> {cfg.resolution} px on {cfg.data} "
             f"({len(trainer.dataset)} images, {trainer.dataset.num_channels} channels) for {cfg.total_kimg:g} kimg"
             f"{ranks}; output in {cfg.outdir}")
        try:
            result = trainer.run()
        except FloatingPointError as e:
            raise click.ClickException(str(e)) from None
    finally:
        distributed.shutdown()
    if result.status == "interrupted":
        echo(f"Interrupted at kimg {result.images_shown / 1000:.1f}; checkpoint {result.checkpoint}; "
             f"continue with: stylegan train --outdir {cfg.outdir} --resume latest")
    else:
        echo(f"Done: kimg {result.images_shown / 1000:.1f}, lod {result.lod:g}; checkpoint {result.checkpoint}")
