"""`stylegan convert SRC DST`: any readable network file -> our format."""
from __future__ import annotations

import os
import pickle

import click

from .network_file import load_network_file


def _is_training_checkpoint(path: str) -> bool:
    """True when `path` is a torch file with a 'training' entry (what `--resume` needs); False for anything else."""
    from ..loading import read_torch_file

    try:
        payload = read_torch_file(path)
    except (ValueError, OSError, pickle.UnpicklingError):  # not a readable torch file, so not a checkpoint
        return False
    return isinstance(payload, dict) and "training" in payload


@click.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False, writable=True))
@click.option("--overwrite", is_flag=True, help="Replace DST even when it is a training checkpoint.")
def convert(src: str, dst: str, overwrite: bool) -> None:
    """Convert SRC (NVlabs TF pickle, rosinality checkpoint or stylegan file) to a stylegan file DST.

    DST holds the networks only, so SRC and DST must be different files (a symlink or another spelling of SRC is
    refused), and an existing DST that is a training checkpoint is replaced only with --overwrite: the run could
    not be resumed afterwards. Any other existing DST is replaced.
    """
    from ..loading import save

    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise click.BadParameter(f"{dst} is the same file as SRC {src}; expected another file name (converting "
                                 f"in place would drop everything but the networks)", param_hint="DST")
    if not overwrite and os.path.isfile(dst) and _is_training_checkpoint(dst):
        raise click.BadParameter(f"{dst} is a training checkpoint; replacing it with a network-only file would end "
                                 f"its run's --resume. Pick another name, or pass --overwrite", param_hint="DST")
    nets = load_network_file(src, param_hint="SRC")
    extra = {"converted_from": nets.source_format, **({k: v for k, v in nets.extra.items() if k != "training"})}
    try:
        save(dst, G=nets.G, D=nets.D, G_ema=nets.G_ema, extra=extra)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {dst}: {exc.strerror or exc}", param_hint="DST") from None
    present = ", ".join(k for k in ("G", "D", "G_ema") if getattr(nets, k) is not None)
    click.echo(f"{src} ({nets.source_format}) -> {dst} (stylegan format; {present})")
