"""`stylegan train`: progressive-growing training from the command line.

The options are generated from `TrainConfig`'s fields (name, type, default and help live in the field's
`CliOption` metadata) and validated once, by `TrainConfig` itself; a bad value becomes a click error naming the
option. Options given on the command line are merged over the defaults, or over the checkpoint's saved config with
`--resume`, by one function (`training.config.apply_options`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import click

from ..ops.build import OpBuildError
from ..training.checkpoint import CheckpointWriteError
from ..training.config import CliOption, ConfigError, TrainConfig, apply_options, cli_options, option_of
from ..training.run_folder import LOCK_NAME
from .options import prepare_outdir

_GIVEN = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def _apply_malloc_tuning() -> List[str]:
    """Long CPU jobs: keep freed blocks mapped (glibc mallopt; why and how much: docs/PERFORMANCE.md §2).

    Returns the settings glibc refused (mallopt returns 0), so the caller can say the tuning did not take.
    STYLEGAN_NO_MALLOPT=1 opts out. Only the CLI does this (a library must not change process-wide allocator
    settings).
    """
    if os.environ.get("STYLEGAN_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return []
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError as e:
        return [f"libc.so.6 not loadable ({e})"]
    settings = {"M_MMAP_THRESHOLD": (-3, 2 ** 30),   # the values and their effect: docs/PERFORMANCE.md §2.2
                "M_TRIM_THRESHOLD": (-1, 2 ** 36),
                "M_TOP_PAD": (-2, 0)}
    return [f"{name}={value}" for name, (param, value) in settings.items() if libc.mallopt(param, value) != 1]


def _click_option(name: str, spec: CliOption, default: Any) -> Callable:
    """The click option of one TrainConfig field."""
    kwargs: Dict[str, Any] = {"help": spec.help, "required": spec.required}
    if spec.show_default is not None:
        kwargs["show_default"] = spec.show_default
    if spec.required:
        return click.option(spec.flag, name, type=str, **kwargs)
    if spec.choices is not None:
        text = next(k for k, v in spec.choices.items() if v == default and type(v) is type(default))
        return click.option(spec.flag, name, type=click.Choice(list(spec.choices)), default=text, **kwargs)
    if isinstance(default, bool):
        return click.option(f"{spec.flag}/--no-{spec.flag[2:]}", name, default=default, **kwargs)
    return click.option(spec.flag, name, type=spec.type or type(default), default=default, **kwargs)


def _config_options(fn: Callable) -> Callable:
    """Decorates the command with one option per TrainConfig field that has a CliOption."""
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(TrainConfig)}
    for name, spec in reversed(cli_options()):
        fn = _click_option(name, spec, defaults[name])(fn)
    return fn


def _given_options(ctx: click.Context, values: Dict[str, Any]) -> Dict[str, Any]:
    """field name -> value of the config options given on the command line (choices turned into field values)."""
    specs = dict(cli_options())
    given = {}
    for name, value in values.items():
        if ctx.get_parameter_source(name) in _GIVEN:
            choices = specs[name].choices
            given[name] = choices[value] if choices is not None else value
    return given


def _build_config(base: Dict[str, Any], given: Dict[str, Any]) -> TrainConfig:
    """TrainConfig from `base` with the given options; a bad value is a click error naming its option."""
    try:
        return TrainConfig.from_dict(apply_options(base, given))
    except ConfigError as e:
        flag = option_of(e.field)
        expected = e.render_expected(lambda f: option_of(f) or f"TrainConfig.{f}")
        if flag is None:
            raise click.UsageError(f"TrainConfig.{e.field} = {e.value!r}: expected {expected}") from None
        raise click.BadParameter(f"{e.value!r}: expected {expected}", param_hint=flag) from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _print_dry_run(cfg: TrainConfig) -> None:
    """The resolved config and, per level, where it starts and its resolution, minibatch and learning rates."""
    from ..training.schedule import level_starts, phase_at

    click.echo(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    click.echo(f"\nSchedule ({cfg.lod_initial_resolution} -> {cfg.resolution} px, {cfg.total_kimg:g} kimg):")
    click.echo(f"{'starts at kimg':>15}  {'resolution':>10}  {'batch':>5}  {'lr_G':>8}  {'lr_D':>8}")
    for n in level_starts(cfg):
        if n >= cfg.total_images:
            click.echo(f"{n / 1000:>15.3f}  (after the end of the run)")
            continue
        p = phase_at(n, cfg)
        click.echo(f"{n / 1000:>15.3f}  {p.resolution:>10d}  {p.batch:>5d}  {p.lr_G:>8g}  {p.lr_D:>8g}")


@click.command("train", context_settings={"show_default": True})
@_config_options
@click.option("--resume", default=None, help="Checkpoint FILE, a run DIR, or 'latest' (newest in --outdir); options "
                                             "not given come from the checkpoint's config.")
@click.option("--impl", type=click.Choice(["auto", "cpu", "cuda", "ref"]), default="auto", help="Op implementation.")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU threads for torch (0: torch's default). On a busy shared CPU 1 can be much faster.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--allow-nonfinite", is_flag=True,
              help="With --resume: continue from a checkpoint whose weights hold NaN/Inf (refused otherwise).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and the schedule's levels; train nothing.")
@click.pass_context
def train(ctx: click.Context, resume: Optional[str], impl: str, threads: int, quiet: bool, allow_nonfinite: bool,
          dry_run: bool, **config_values: Any) -> None:
    """Train a StyleGAN with progressive growing (official schedule; resumable; Ctrl-C saves a checkpoint)."""
    given = _given_options(ctx, config_values)
    checkpoint = source = None
    if resume is not None and given.get("resume_pkl") is not None:
        raise click.UsageError("--resume continues a run and --resume-from starts a new one from a network file: "
                               "give one of them")
    if resume is not None:
        from ..training.checkpoint import open_checkpoint
        try:
            checkpoint = open_checkpoint(resume, given["outdir"])
            base = checkpoint.train_config.to_dict()
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--resume") from None
    else:
        base = TrainConfig(outdir=given["outdir"]).to_dict()
        if given.get("resume_pkl") is not None:
            source = _open_source(given, base)
    cfg = _build_config(base, given)
    if dry_run:
        _print_dry_run(cfg)
        return
    outdir = Path(cfg.outdir)
    created = not outdir.exists()
    prepare_outdir(outdir)
    try:
        result = _train(cfg, checkpoint, impl, threads, quiet, allow_nonfinite, source)
    except click.ClickException:
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            _remove_if_empty(outdir)
        raise
    if result.status == "interrupted":
        ctx.exit(128 + (result.signal or signal.SIGTERM))  # 130 after Ctrl-C, 143 after SIGTERM


def _open_source(given: Dict[str, Any], base: Dict[str, Any]) -> Any:
    """--resume-from: read the file once; its architecture replaces the defaults in `base` (options that would
    change it are refused, naming both values)."""
    from ..training.transfer import architecture_of, check_given, open_source

    try:
        source = open_source(given["resume_pkl"])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--resume-from") from None
    try:
        check_given(given, source.networks, lambda name: option_of(name) or name)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    base.update(architecture_of(source.networks))
    return source


def _remove_if_empty(outdir: Path) -> None:
    leftovers = [p for p in outdir.iterdir() if p.name != LOCK_NAME]
    if not leftovers:
        (outdir / LOCK_NAME).unlink(missing_ok=True)
        outdir.rmdir()


def _train(cfg: TrainConfig, checkpoint: Any, impl: str, threads: int, quiet: bool, allow_nonfinite: bool,
           source: Any = None) -> Any:
    """Build the Trainer and run it; every user-facing failure becomes a one-line click error."""
    from ..training import distributed
    from ..training.loop import Trainer
    refused = _apply_malloc_tuning()
    if threads:
        import torch
        torch.set_num_threads(threads)
    try:  # under torchrun: join the process group (one process: nothing happens)
        dist_ctx, device = distributed.init_from_env(cfg.device)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    echo = click.echo if dist_ctx.is_main else (lambda *_a, **_k: None)
    if refused:
        echo(f"note: the glibc allocator tuning did not take ({', '.join(refused)}); training runs with the "
             f"default allocator, which is slower on the CPU (docs/PERFORMANCE.md §2.3)")
    try:
        try:
            trainer = Trainer(cfg, resume=checkpoint, impl=impl, progress=not quiet, log=click.echo,
                              dist=dist_ctx, device=device, allow_nonfinite=allow_nonfinite, source=source)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        except OpBuildError as e:
            raise click.ClickException(str(e)) from None
        if trainer.state.images_shown >= cfg.total_images:
            trainer.close()
            raise click.BadParameter(
                f"the checkpoint is at kimg {trainer.state.images_shown / 1000:g}, already at or past --kimg "
                f"{cfg.total_kimg:g}: give a larger --kimg to train on", param_hint="--kimg")
        ranks = f" on {dist_ctx.world_size} processes ({device})" if dist_ctx.enabled else ""
        echo(f"Training {cfg.lod_initial_resolution} -> {cfg.resolution} px on {cfg.data} "
             f"({len(trainer.dataset)} images, {trainer.dataset.num_channels} channels) for {cfg.total_kimg:g} kimg"
             f"{ranks}; output in {cfg.outdir}")
        try:
            result = trainer.run()
        except (FloatingPointError, CheckpointWriteError) as e:
            raise click.ClickException(str(e)) from None
        dist_ctx.barrier()  # every rank is done communicating before any of them tears its process group down
    finally:
        distributed.shutdown()
    if result.status == "interrupted":
        echo(f"Interrupted at kimg {result.images_shown / 1000:.1f}; checkpoint {result.checkpoint}; "
             f"continue with: stylegan train --outdir {cfg.outdir} --resume latest")
    else:
        echo(f"Done: kimg {result.images_shown / 1000:.1f}, lod {result.lod:g}; checkpoint {result.checkpoint}")
    return result
