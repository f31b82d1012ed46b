"""`stylegan dataset`: prepare an image collection for training (the logic: training/dataset_tool.py)."""
from __future__ import annotations

import sys
from typing import Optional

import click

from ..training.dataset_tool import CHANNEL_CHOICES, DatasetToolError, ToolOptions, build_dataset
from ..training.image_reader import RESIZE_FILTERS, TRANSFORMS, Fit


@click.command()
@click.option("--source", required=True, help="Folder (searched recursively), .zip, or a quoted glob pattern such "
                                              "as 'photos/**/*.jpg'.")
@click.option("--dest", required=True, help="Output folder, or a path ending in .zip.")
@click.option("--resolution", type=int, required=True, help="Output size R (R x R; a power of two >= 4).")
@click.option("--transform", type=click.Choice(TRANSFORMS), default="center-crop", show_default=True,
              help="center-crop: largest centred square (NVlabs); center-crop-wide: a centred band of height "
                   "--wide-height on an R x R canvas with bars (NVlabs' wide crop); letterbox: the whole image, "
                   "padded to a square with --pad-color; stretch: resize ignoring the aspect; none: images must "
                   "already be R x R (others are skipped).")
@click.option("--resize-filter", type=click.Choice(list(RESIZE_FILTERS)), default="lanczos", show_default=True,
              help="box: what the official FID numbers used at reduced resolution (stylegan2-ada); lanczos: sharp, "
                   "also for upscaling; bicubic.")
@click.option("--pad-color", default="black", show_default=True,
              help="letterbox / center-crop-wide bars: a colour (white, '#808080', '#ffffff00' with alpha) or "
                   "'edge' (the image's edge pixels repeated).")
@click.option("--wide-height", type=int, default=None,
              help="center-crop-wide: the picture band's height in px.", show_default="3/4 of --resolution")
@click.option("--labels", default="auto", show_default=True,
              help="auto (the source's dataset.json if it has one, else none), none, subfolders (class = first "
                   "folder), or a FILE.json ({\"labels\": [[\"rel/path.png\", k], ...]}) or FILE.csv "
                   "(path,label rows; labels are indices or class names).")
@click.option("--channels", type=click.Choice([str(c) for c in CHANNEL_CHOICES]), default="auto",
              show_default=True, help="1 (grayscale), 3 (RGB), 4 (RGBA) or auto (the majority of the images; "
                                      "the others are converted, alpha over white).")
@click.option("--max-images", type=int, default=None, help="Write at most N images (the first N in name order, "
                                                           "or a random N with --seed).")
@click.option("--seed", type=int, default=None, help="With --max-images: pick a random subset with this seed.")
@click.option("--min-size", type=int, default=0, show_default=True,
              help="Skip images whose cropped side is below this many px (0: upscale small images instead).")
@click.option("--overwrite", is_flag=True, help="Replace a --dest that exists and is not empty.")
def dataset(source: str, dest: str, resolution: int, transform: str, resize_filter: str, pad_color: str,
            wide_height: Optional[int], labels: str, channels: str, max_images: Optional[int], seed: Optional[int],
            min_size: int, overwrite: bool) -> None:
    """Prepare any image collection for `stylegan train --data`: R x R PNGs and a dataset.json (labels, classes),
    in a folder or a .zip. The same source and options give byte-identical output."""
    opts = ToolOptions(source=source, dest=dest, resolution=resolution,
                       fit=Fit(transform, resize_filter, pad_color, wide_height), labels=labels,
                       channels=channels if channels == "auto" else int(channels), max_images=max_images, seed=seed,
                       min_size=min_size, overwrite=overwrite)

    def progress(n: int):
        return click.progressbar(length=n, label="Writing", file=sys.stderr)

    try:
        summary = build_dataset(opts, progress=progress)
    except DatasetToolError as e:
        raise click.BadParameter(e.message, param_hint=e.option) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {dest}: {e.strerror or e}") from None
    for line in summary.lines():
        click.echo(line)
