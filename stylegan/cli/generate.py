"""`stylegan generate`, `stylegan style-mixing`, `stylegan interpolate`: PNGs and GIFs from a network and seeds.

Thin wrappers over `stylegan.generate`: parse and validate the options, open the network (path or URL), call the
API, write files. Every user error is a click error naming the option.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import click
import numpy as np
import torch

from .. import generate as api
from ..atomic_write import atomic_write_bytes
from ..images import animation_bytes, image_grid, png_bytes, tile
from .options import (GridShape, SeedList, batch_option, class_option, device_option, generator_of, network_option,
                      load_for_network, noise_mode_option, open_network, precision_option, prepare_outdir,
                      prepare_outfile, resolve_precision_option, truncation_options)

ANIMATION_FORMATS = {".gif": "GIF", ".png": "PNG"}  # --out extension -> Pillow writer (PNG: an animated PNG)


def _write(path: Path, encode: Callable[[], bytes]) -> None:
    """Writes encode()'s bytes (stylegan.images' PNG / animation encoders) atomically; errors -> click errors."""
    try:
        data = encode()
    except ValueError as exc:  # a channel count PNG/GIF cannot hold
        raise click.ClickException(f"cannot save {path}: {exc}") from None
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from None


def _save_png(image: np.ndarray, path: Path) -> None:
    _write(path, lambda: png_bytes(image))


def animation_duration_ms(fps: float) -> int:
    """Milliseconds per frame of an animation at `fps` (Pillow's GIF/APNG writers take whole milliseconds)."""
    return max(1, round(1000.0 / fps))


def _check_psi(psi: float) -> None:
    if not math.isfinite(psi):
        raise click.BadParameter(f"{psi!r} is not a finite number", param_hint="--trunc")


def _check_class(G: torch.nn.Module, class_idx: Optional[int]) -> None:
    label_size = int(G.config.label_size)
    if label_size == 0 and class_idx is not None:
        raise click.BadParameter("the network is unconditional (label_size=0): leave out --class",
                                 param_hint="--class")
    if label_size > 0 and (class_idx is None or class_idx >= label_size):
        raise click.BadParameter(f"the network is label-conditional with {label_size} classes: pass --class N "
                                 f"with 0 <= N <= {label_size - 1}", param_hint="--class")


def _open_generator(network: str, device: torch.device, psi: float, class_idx: Optional[int]) -> torch.nn.Module:
    return _open(network, device, psi, class_idx)[0]


def _open(network: str, device: torch.device, psi: float, class_idx: Optional[int]):
    """(generator, the lod to render at by default: a training checkpoint's, else 0)."""
    _check_psi(psi)
    nets = open_network(network, device)
    G = generator_of(nets)
    _check_class(G, class_idx)
    return G, nets.lod


@click.command()
@network_option
@click.option("--seeds", type=SeedList(), default=None, help="Seeds, e.g. 0-7,42 (ranges inclusive).")
@click.option("--ws", "ws_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Instead of --seeds: render the latents of a .npz file (e.g. stylegan project's projected.npz) "
                   "exactly, at full resolution.")
@click.option("--noise-from", "noise_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --ws: take the noise maps from this .npz (e.g. the same projected.npz) instead of "
                   "--noise-mode.")
@truncation_options
@noise_mode_option
@click.option("--class", "classes", type=SeedList("class", "classes"), default=None,
              help="Class index, or several (e.g. 0-9,12), for label-conditional networks (required for them, refused "
                   "for others): one image per class and seed.")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True,
              help="Folder for seedNNNN.png (classCC-seedNNNN.png with several classes), or grid.png.")
@click.option("--grid", "grid", type=GridShape(), default=None,
              help="Write one grid.png of COLSxROWS images instead of one PNG per image (with several classes: "
                   "each class's seeds in turn).")
@click.option("--lod", type=float, default=None,
              help="Progressive level to render (0 = full resolution) [default: a training checkpoint's current "
                   "lod, else 0], so a mid-training checkpoint shows what it has learnt.")
@device_option
@batch_option
@precision_option
def generate(network: str, seeds: Optional[List[int]], ws_path: Optional[Path], noise_path: Optional[Path],
             psi: float, cutoff: int, noise_mode: str, classes: Optional[List[int]], outdir: Path,
             grid: Optional[Tuple[int, int]], lod: Optional[float], device: torch.device,
             batch_size: Optional[int], precision: str) -> None:
    """Generate one image per seed (and class), or one grid.png with --grid; or render a --ws latent file."""
    if (seeds is None) == (ws_path is None):
        raise click.UsageError("pass either --seeds or --ws (not both)")
    resolved = resolve_precision_option(precision, device)
    if ws_path is not None:
        if classes or lod or psi != 1.0:
            raise click.UsageError("--ws renders the file's latents as they are: leave out --class, --lod and "
                                   "--trunc")
        if resolved.mixed:
            raise click.UsageError("--ws renders the latents exactly (the projection's own bytes), in fp32: leave "
                                   "out --precision")
        return _generate_from_ws(network, ws_path, noise_path, noise_mode, outdir, grid, device)
    if noise_path is not None:
        raise click.UsageError("--noise-from goes with --ws")
    class_list: List[Optional[int]] = list(classes) if classes else [None]
    count = len(seeds) * len(class_list)
    if grid is not None and count > grid[0] * grid[1]:
        what = f"{len(seeds)} seeds" if len(class_list) == 1 else f"{len(class_list)} classes x {len(seeds)} seeds"
        raise click.BadParameter(f"{what} do not fit a {grid[0]}x{grid[1]} grid ({grid[0] * grid[1]} cells)",
                                 param_hint="--grid")
    G, training_lod = _open(network, device, psi, class_list[0])
    for class_idx in class_list[1:]:
        _check_class(G, class_idx)
    if lod is None:
        lod = training_lod
        if lod:
            click.echo(f"rendering at the checkpoint's training lod {lod:g} ({G.config.resolution_at(lod)} px); "
                       f"pass --lod 0 for the full resolution")
    try:
        G.config.check_lod(lod)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lod") from None
    try:
        api.check_result_size(G, count, "images", lod)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    if grid is not None:
        try:
            warning = api.check_grid_size(G, *grid, lod)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--grid") from None
        if warning:
            click.echo(f"warning: {warning}", err=True)
    outdir = prepare_outdir(outdir)  # after opening the network: a bad --network leaves no empty folder behind
    images = np.concatenate([api.generate_images(G, seeds, psi=psi, cutoff=cutoff, noise_mode=noise_mode,
                                                 class_idx=class_idx, batch_size=batch_size, lod=lod,
                                                 precision=resolved)
                             for class_idx in class_list])
    if grid is not None:
        path = outdir / "grid.png"
        _save_png(image_grid(images, *grid), path)
        click.echo(f"wrote {path} ({count} images, {grid[0]}x{grid[1]})")
        return
    names = [f"seed{seed:04d}.png" if len(class_list) == 1 else f"class{class_idx:02d}-seed{seed:04d}.png"
             for class_idx in class_list for seed in seeds]
    for name, image in zip(names, images):
        _save_png(image, outdir / name)
    click.echo(f"wrote {count} image(s) to {outdir}")


def _generate_from_ws(network: str, ws_path: Path, noise_path: Optional[Path], noise_mode: str, outdir: Path,
                      grid: Optional[Tuple[int, int]], device: torch.device) -> None:
    """generate --ws: the latents (and --noise-from maps) of .npz files, checked against the network, rendered
    with the projector's rendering, so a projection's proj.png comes out byte for byte."""
    from ..projection import render
    from ..ws_file import WsFileError, check_noise_for, check_ws_file_for, generator_digest, load_ws_file

    G = generator_of(open_network(network, device))
    digest = generator_digest(G)
    ws_file = load_for_network(load_ws_file, check_ws_file_for, ws_path, G, digest, network, "--ws")
    noise = None
    if noise_path is not None:
        noise_file = load_for_network(load_ws_file, check_ws_file_for, noise_path, G, digest, network,
                                      "--noise-from")
        try:
            if noise_file.noise is None:
                raise WsFileError(f"{noise_path} holds no noise maps")
            check_noise_for(noise_file.noise, G, ws_file.ws.shape[0], str(noise_path))
        except WsFileError as exc:
            raise click.BadParameter(str(exc), param_hint="--noise-from") from None
        noise = noise_file.noise
    elif ws_file.noise is not None:
        click.echo(f"note: {ws_path} holds noise maps; pass --noise-from {ws_path} to render with them", err=True)
    count = ws_file.ws.shape[0]
    if grid is not None and count > grid[0] * grid[1]:
        raise click.BadParameter(f"{count} latents do not fit a {grid[0]}x{grid[1]} grid", param_hint="--grid")
    outdir = prepare_outdir(outdir)
    if noise is None and noise_mode != "const":
        images = api.synthesize(G, ws_file.ws, noise_mode=noise_mode, batch_size=1, progress=False)
    else:
        images = render(G, ws_file.ws, noise)
    if grid is not None:
        _save_png(image_grid(images, *grid), outdir / "grid.png")
        click.echo(f"wrote {outdir / 'grid.png'} ({count} images)")
        return
    names = [f"{ws_path.stem}.png"] if count == 1 else [f"{ws_path.stem}-{i:04d}.png" for i in range(count)]
    for name, image in zip(names, images):
        _save_png(image, outdir / name)
    click.echo(f"wrote {count} image(s) to {outdir}")


@click.command("style-mixing")
@network_option
@click.option("--rows", "row_seeds", type=SeedList(), default="85,100,75,458,1500", show_default=True,
              help="Seeds of the rows: the images whose remaining styles are kept.")
@click.option("--cols", "col_seeds", type=SeedList(), default="55,821,1789,293", show_default=True,
              help="Seeds of the columns: the images the --styles layers are taken from.")
@click.option("--styles", default="coarse", show_default=True,
              help="Layers copied from the column image: coarse (4-8 px), middle (16-32 px), fine (64 px and up) "
                   "or an inclusive layer range A-B.")
@truncation_options
@noise_mode_option
@class_option
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True,
              help="Folder for grid.png and each cell ROW-COL.png.")
@device_option
@batch_option
@precision_option
def style_mixing(network: str, row_seeds: List[int], col_seeds: List[int], styles: str, psi: float, cutoff: int,
                 noise_mode: str, class_idx: Optional[int], outdir: Path, device: torch.device,
                 batch_size: Optional[int], precision: str) -> None:
    """Style-mixing grid (the paper's Figure 3): grid.png and each mixed cell as ROW-COL.png."""
    resolved = resolve_precision_option(precision, device)
    G = _open_generator(network, device, psi, class_idx)
    try:
        layers = api.layer_range(styles, int(G.num_layers))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--styles") from None
    try:
        api.check_grid_size(G, len(col_seeds) + 1, len(row_seeds) + 1)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rows/--cols") from None
    outdir = prepare_outdir(outdir)
    grid, cells = api.style_mixing_grid(G, row_seeds, col_seeds, layers, psi=psi, cutoff=cutoff,
                                        noise_mode=noise_mode, class_idx=class_idx, batch_size=batch_size,
                                        precision=resolved)
    _save_png(grid, outdir / "grid.png")
    for (row_seed, col_seed), image in cells.items():
        _save_png(image, outdir / f"{row_seed}-{col_seed}.png")
    click.echo(f"wrote {outdir / 'grid.png'} and {len(cells)} cell image(s) (layers {layers.start}-"
               f"{layers.stop - 1} from the columns)")


@click.command()
@network_option
@click.option("--seeds", type=SeedList(), required=True, help="At least 2 key seeds; the walk loops back to the first.")
@click.option("--frames", type=click.IntRange(min=1), default=60, show_default=True, help="Frames in total.")
@click.option("--space", type=click.Choice(api.INTERPOLATION_SPACES), default="w", show_default=True,
              help="Interpolate in w (linear) or z (spherical).")
@truncation_options
@noise_mode_option
@class_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("interpolation.gif"),
              show_default=True, help="Output animation, looping forever: .gif, or .png for an animated PNG.")
@click.option("--fps", type=click.FloatRange(min=1, max=100), default=25.0, show_default=True,
              help="Frames per second of the animation.")
@click.option("--strip", is_flag=True, help="Write every frame side by side in one PNG (--out x.png) instead of "
                                            "an animation.")
@device_option
@batch_option
@precision_option
def interpolate(network: str, seeds: List[int], frames: int, space: str, psi: float, cutoff: int, noise_mode: str,
                class_idx: Optional[int], out: Path, fps: float, strip: bool, device: torch.device,
                batch_size: Optional[int], precision: str) -> None:
    """Looping latent walk through the seeds, saved as an animated GIF or PNG (from --out's extension)."""
    resolved = resolve_precision_option(precision, device)
    if len(seeds) < 2:
        raise click.BadParameter(f"got {len(seeds)} seed; interpolation needs at least 2", param_hint="--seeds")
    image_format = ANIMATION_FORMATS.get(out.suffix.lower())
    if strip and image_format != "PNG":
        raise click.BadParameter(f"{str(out)!r}: --strip writes one PNG, expected a file name ending in .png",
                                 param_hint="--out")
    if image_format is None:
        raise click.BadParameter(f"{str(out)!r}: expected a file name ending in "
                                 f"{' or '.join(ANIMATION_FORMATS)}", param_hint="--out")
    G = _open_generator(network, device, psi, class_idx)
    try:
        api.check_result_size(G, frames, "frames")
        if strip:
            api.check_grid_size(G, frames, 1)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--frames") from None
    out = prepare_outfile(out)
    video = api.interpolate(G, seeds, frames, space=space, psi=psi, cutoff=cutoff, noise_mode=noise_mode,
                            class_idx=class_idx, batch_size=batch_size, precision=resolved)
    if strip:
        _write(out, lambda: png_bytes(tile([list(video)])))
        click.echo(f"wrote {out} ({frames} frames side by side, {space} space, seeds {','.join(map(str, seeds))})")
        return
    _write(out, lambda: animation_bytes(video, image_format, animation_duration_ms(fps)))
    click.echo(f"wrote {out} ({frames} frames, {space} space, seeds {','.join(map(str, seeds))})")
