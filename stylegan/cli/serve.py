"""`stylegan serve`: a local web explorer of networks (and a training run) in the browser; needs the `serve`
extra (pip install "stylegan[serve]")."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import click
import torch

from .options import device_option, generator_of, open_network, precision_option, resolve_precision_option

if TYPE_CHECKING:
    from ..serve.state import ServeState

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 7860


def _serve_modules():
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: the upload of /api/project)
        import uvicorn
    except ImportError as exc:
        raise click.ClickException(f"stylegan serve needs the serve extra ({exc.name} is not installed): "
                                   f"pip install \"stylegan[serve]\"") from None
    return uvicorn


@click.command()
@click.option("--network", "networks", multiple=True, required=True, metavar="PATH|URL",
              help="Network file or URL to explore (repeat for several: the page addresses them as net=0, 1, ...).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="A training run folder (stylegan train --outdir): its curves and snapshot grids, live.")
@click.option("--directions", "directions_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Directions files of `stylegan directions` (repeat for several) for the edit sliders, next to "
                   "SeFa and GANSpace computed on first use; each applies to the network it was made for.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback exposes the server to the network: a warning.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--vgg16", default=None, metavar="PATH|URL",
              help="NVIDIA's vgg16.pt TorchScript file for the projection's LPIPS loss (loss=lpips; auto uses it). "
                   "Checked at start; without it the page projects with the pixel loss unless the file is cached.")
@device_option
@precision_option
def serve(networks: Tuple[str, ...], run_dir: Optional[Path], directions_files: Tuple[Path, ...], host: str,
          port: int, vgg16: Optional[str], device: torch.device, precision: str) -> None:
    """Serve a page to explore the networks in a browser: seeds, truncation, style mixing, interpolation,
    projection and edits, and a training run's curves; every image equals the CLI's file for the same options."""
    uvicorn = _serve_modules()
    from ..serve.app import create_app

    state = build_state(list(networks), run_dir, list(directions_files), device,
                        resolve_precision_option(precision, device), vgg16)
    if host not in LOOPBACK_HOSTS:
        click.echo(f"warning: listening on {host}, not loopback: anyone who can reach this machine can use the "
                   f"server (and its CPU/GPU); prefer the default 127.0.0.1 with an SSH tunnel", err=True)
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    original_startup = server.startup

    async def startup(sockets=None) -> None:
        await original_startup(sockets)
        bound = port
        for s in getattr(server, "servers", []):
            for sock in getattr(s, "sockets", []):
                bound = sock.getsockname()[1]
        click.echo(f"serving {len(state.networks)} network(s) on http://{shown}:{bound}/ (Ctrl+C stops)")

    server.startup = startup
    server.run()  # the app's lifespan stops the jobs and the worker


def build_state(networks: List[str], run_dir: Optional[Path], directions_files: List[Path], device: torch.device,
                precision, vgg16: Optional[str] = None) -> "ServeState":
    """Loads every network (click errors name the option), the direction files and the VGG16 file (downloaded
    and checked now, so a bad one fails at start, not in a job); the ServeState to serve."""
    from ..feature_nets import FeatureNetError, load_feature_net
    from ..serve.state import ServeState, ServedNetwork, attach_direction_sets
    from ..ws_file import generator_digest

    served = []
    for index, spec in enumerate(networks):
        nets = open_network(spec, device)
        G = generator_of(nets)
        served.append(ServedNetwork(index, spec, G, float(nets.lod), generator_digest(G)))
    try:
        attach_direction_sets(served, directions_files)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--directions") from None
    vgg16_path = None
    if vgg16 is not None:
        try:
            vgg16_path = load_feature_net(vgg16, "vgg16", device).path
        except FeatureNetError as exc:
            raise click.BadParameter(str(exc), param_hint="--vgg16") from None
    return ServeState(served, device, precision, run_dir, vgg16_path)
