"""`stylegan directions`: editing directions of a network (SeFa, GANSpace, or fitted to labels) -> dirs.npz."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click
import torch

from .generate import _check_class
from .options import class_option, device_option, generator_of, network_option, open_network, prepare_outfile


@click.command()
@network_option
@click.option("--method", type=click.Choice(["sefa", "ganspace", "labels"]), required=True,
              help="sefa: eigenvectors of the style weights (no data); ganspace: PCA of sampled w; labels: a linear "
                   "direction fitted to --samples.")
@click.option("--num", type=click.IntRange(min=1), default=20, show_default=True, help="Directions to keep.")
@click.option("--layers", default=None,
              help="Layers whose style weights SeFa factorises, and the default layers of `stylegan edit`: coarse, "
                   "middle, fine or A-B [default: all].")
@click.option("--samples", "samples_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="For --method labels: .npz with 'labels' [N] in {0, 1} and 'w' [N, D] or 'ws' [N, L, D].")
@click.option("--num-samples", type=click.IntRange(min=2), default=10000, show_default=True,
              help="Sampled latents for GANSpace's PCA and for each direction's spread (the strength unit).")
@class_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("dirs.npz"),
              show_default=True, help="Output directions file.")
@device_option
def directions(network: str, method: str, num: int, layers: Optional[str], samples_path: Optional[Path],
               num_samples: int, class_idx: Optional[int], out: Path, device: torch.device) -> None:
    """Compute editing directions in W and write them for `stylegan edit`."""
    from ..directions import DirectionsError, compute_directions, read_samples, save_directions
    from ..generate import layer_range
    from ..ws_file import generator_digest

    if (method == "labels") != (samples_path is not None):
        raise click.UsageError("--samples FILE goes with, and is required by, --method labels")
    G = generator_of(open_network(network, device))
    if class_idx is not None:
        _check_class(G, class_idx)
    try:
        layer_ids = list(layer_range(layers, int(G.num_layers))) if layers else list(range(int(G.num_layers)))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--layers") from None
    samples = None
    if samples_path is not None:
        try:
            samples = read_samples(samples_path)
        except DirectionsError as exc:
            raise click.BadParameter(str(exc), param_hint="--samples") from None
    out = prepare_outfile(out)
    try:
        result = compute_directions(G, method, layer_ids, num, num_samples, class_idx, samples, generator_digest(G))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--samples" if method == "labels" else "--method") from None
    save_directions(out, result)
    click.echo(f"wrote {out}: {result.count} {method} direction(s) for layers {layer_ids[0]}-{layer_ids[-1]}")
