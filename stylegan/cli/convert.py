"""`stylegan convert SRC DST`: any readable network file -> our format."""
from __future__ import annotations

import click

from .network_file import load_network_file


@click.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False, writable=True))
def convert(src: str, dst: str) -> None:
    """Convert SRC (NVlabs TF pickle, rosinality checkpoint or stylegan file) to a stylegan file DST."""
    from ..loading import save

    nets = load_network_file(src, param_hint="SRC")
    extra = {"converted_from": nets.source_format, **({k: v for k, v in nets.extra.items() if k != "training"})}
    try:
        save(dst, G=nets.G, D=nets.D, G_ema=nets.G_ema, extra=extra)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {dst}: {exc.strerror or exc}", param_hint="DST") from None
    present = ", ".join(k for k in ("G", "D", "G_ema") if getattr(nets, k) is not None)
    click.echo(f"{src} ({nets.source_format}) -> {dst} (stylegan format; {present})")
