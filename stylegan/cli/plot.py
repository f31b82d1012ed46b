"""`stylegan plot LOG.jsonl [LOG.jsonl ...] --out curves.png`: training curves as a PNG, drawn with Pillow (several
logs: one curve per run in the same panels)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from .options import prepare_outfile


@click.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=True), help="Output PNG file.")
@click.option("--keys", default=None,
              help="Comma-separated keys, one panel each [default: loss_G,loss_D,penalty,swd_avg,augment_p,ada_rt "
                   "and every metric (fid50k_full, glyph_acc, ...), those present].")
@click.option("--x", "x_key", default="kimg", show_default=True, help="Key of the x axis.")
@click.option("--width", type=click.IntRange(min=200), default=800, show_default=True, help="Image width in px.")
@click.option("--panel-height", type=click.IntRange(min=80), default=200, show_default=True,
              help="Height of each panel in px (image height = panels x this).")
def plot(logs: Tuple[str, ...], out: str, keys: Optional[str], x_key: str, width: int, panel_height: int) -> None:
    """Draw the curves of a training log (one JSON object per line) to a PNG, one panel per key; with several logs
    one curve per run (named by its folder)."""
    from ..plot import MissingKeyError, plot_log

    if keys is None:
        key_list, require_all = None, False
    else:
        key_list = [k.strip() for k in keys.split(",")]
        if any(not k for k in key_list):
            raise click.BadParameter(f"{keys!r}: expected comma-separated key names", param_hint="--keys")
        require_all = True
    if not str(out).lower().endswith(".png"):
        raise click.BadParameter(f"{out!r}: expected a .png file name", param_hint="--out")
    out_path = prepare_outfile(Path(out), param_hint="--out")
    try:
        path = plot_log(list(logs), out_path, key_list, width=width, panel_height=panel_height, x_key=x_key,
                        require_all=require_all)
    except MissingKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--x" if exc.axis == "x" else "--keys") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="LOGS") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{', '.join(logs)}: not UTF-8 text file(s)", param_hint="LOGS") from None
    click.echo(f"wrote {path}")
