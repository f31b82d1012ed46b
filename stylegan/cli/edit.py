"""`stylegan edit`: a strip (or grid) of images moved along one direction, on chosen layers only."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import click
import numpy as np
import torch

from ..atomic_write import atomic_write_bytes
from ..images import animation_bytes, tile, write_png
from .generate import _check_class, _check_psi
from .options import (SeedList, class_option, device_option, generator_of, load_for_network, network_option,
                      open_network, prepare_outfile, truncation_options)

GIF_FRAME_MS = 250


def parse_strengths(text: str) -> List[float]:
    """'-3,-1.5,0,1.5,3' -> floats; ValueError naming the item for anything not a finite number."""
    values = []
    for item in str(text).split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"{item.strip()!r} in {text!r} is not a number: expected e.g. -3,-1.5,0,1.5,3") from None
        if not np.isfinite(value):
            raise ValueError(f"{item.strip()!r} in {text!r} is not finite")
        values.append(value)
    return values


@click.command()
@network_option
@click.option("--ws", "ws_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Latents to edit (e.g. projected.npz; its noise maps are used).")
@click.option("--seeds", type=SeedList(), default=None, help="Or: seeds whose latents are edited.")
@truncation_options
@class_option
@click.option("--directions", "directions_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Directions file of `stylegan directions`.")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True, help="Which direction (0 = top).")
@click.option("--strengths", default="-3,-1.5,0,1.5,3", show_default=True,
              help="Steps along the direction in units of the sampled w's spread along it.")
@click.option("--layers", default=None, help="Layers edited: coarse, middle, fine or A-B [default: the layers the "
                                             "directions were computed for].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("strip.png"),
              show_default=True, help="Output PNG: a row per source, a column per strength.")
@click.option("--gif", is_flag=True, help="Also write an animated GIF (one frame per strength) next to --out.")
@device_option
def edit(network: str, ws_path: Optional[Path], seeds: Optional[List[int]], psi: float, cutoff: int,
         class_idx: Optional[int], directions_path: Path, index: int, strengths: str, layers: Optional[str],
         out: Path, gif: bool, device: torch.device) -> None:
    """Edit latents along one direction and write the strip of results."""
    from ..directions import check_directions_for, load_directions
    from ..edit import direction_vector, edit_images, edit_strip
    from ..generate import layer_range, ws_from_seeds
    from ..ws_file import check_ws_file_for, generator_digest, load_ws_file

    if (ws_path is None) == (seeds is None):
        raise click.UsageError("pass either --ws or --seeds (not both)")
    try:
        steps = parse_strengths(strengths)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--strengths") from None
    _check_psi(psi)
    G = generator_of(open_network(network, device))
    digest = generator_digest(G)
    dirs = load_for_network(load_directions, check_directions_for, directions_path, G, digest, network,
                            "--directions")
    if index >= dirs.count:
        raise click.BadParameter(f"{index} is past the {dirs.count} direction(s) in {directions_path}: expected 0-"
                                 f"{dirs.count - 1}", param_hint="--index")
    try:
        layer_ids = list(layer_range(layers, int(G.num_layers))) if layers else dirs.layers
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--layers") from None
    noise = None
    if ws_path is not None:
        if class_idx is not None:
            raise click.UsageError("--class goes with --seeds (a --ws file holds its latents as they are)")
        ws_file = load_for_network(load_ws_file, check_ws_file_for, ws_path, G, digest, network, "--ws")
        ws, noise = ws_file.ws, ws_file.noise
    else:
        _check_class(G, class_idx)
        ws = ws_from_seeds(G, seeds, psi, cutoff, class_idx)
    out = prepare_outfile(out)
    direction = direction_vector(dirs, index)
    images = edit_images(G, ws.to(device), direction.to(device), steps, layer_ids, noise)
    write_png(edit_strip(images), out)
    message = f"wrote {out} ({images.shape[1]} source(s) x {len(steps)} strengths, {dirs.method} direction {index}, " \
              f"layers {layer_ids[0]}-{layer_ids[-1]})"
    if gif:
        frames = np.stack([tile([[img] for img in images[s]]) for s in range(len(steps))])
        atomic_write_bytes(out.with_suffix(".gif"), animation_bytes(frames, "GIF", GIF_FRAME_MS))
        message += f" and {out.with_suffix('.gif')}"
    click.echo(message)
