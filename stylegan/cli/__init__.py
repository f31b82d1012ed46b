"""The `stylegan` command: a click group; each subcommand lives in its own module of this package."""
from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stylegan")
def main() -> None:
    """StyleGAN (Karras et al. 2019): train, generate, mix styles, convert and inspect networks."""


def _register() -> None:
    from .bench import bench
    from .convert import convert
    from .dataset import dataset
    from .directions import directions
    from .doctor import doctor
    from .edit import edit
    from .encoder import encoder
    from .generate import generate, interpolate, style_mixing
    from .info import info
    from .metrics import metrics
    from .plot import plot
    from .project import project
    from .serve import serve
    from .train import train

    for command in (bench, convert, dataset, directions, doctor, edit, encoder, generate, info, interpolate, metrics,
                    plot, project, serve, style_mixing, train):
        main.add_command(command)


_register()
