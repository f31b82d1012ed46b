"""`stylegan encoder train`: the encoder image -> W+ that `stylegan project --init encoder` starts from, trained on
the network's own (style-mixed) samples and written with the network's fingerprint."""
from __future__ import annotations

from pathlib import Path

import click
import torch

from ..projection.encoder_training import EncoderTrainConfig
from .options import device_option, generator_of, network_option, open_network, prepare_outfile

DEFAULTS = EncoderTrainConfig()


@click.group()
def encoder() -> None:
    """The projection encoder (image -> W+): a learned starting point for `stylegan project --init encoder`."""


@encoder.command("train")
@network_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("encoder.pt"),
              show_default=True, help="Output encoder file (written atomically).")
@click.option("--kimg", "total_kimg", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.total_kimg,
              show_default=True, help="Thousands of generated images to train on.")
@click.option("--batch", type=click.IntRange(min=1), default=DEFAULTS.batch, show_default=True,
              help="Generated images per step.")
@click.option("--lr", "lrate", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.lrate,
              show_default=True, help="Peak learning rate of Adam (cosine decay to 0 over the run).")
@click.option("--mixing", "mixing_prob", type=click.FloatRange(0, 1), default=DEFAULTS.mixing_prob,
              show_default=True, help="Probability that a sample is style-mixed (W+ rather than W).")
@click.option("--image-weight", type=click.FloatRange(min=0), default=DEFAULTS.image_weight, show_default=True,
              help="Weight of an image-space MSE term (back-propagates through the generator: slower).")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULTS.seed, show_default=True, help="Random seed.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU threads for torch (0: torch's default; 1 is fastest on a busy machine).")
@device_option
def train(network: str, out: Path, total_kimg: float, batch: int, lrate: float, mixing_prob: float,
          image_weight: float, seed: int, threads: int, device: torch.device) -> None:
    """Train an encoder image -> W+ on --network's own samples (image -> the ws that made it)."""
    from ..projection.encoder import save_encoder
    from ..projection.encoder_training import train_encoder
    from ..ws_file import generator_digest
    from .project import network_file_sha256

    cfg = EncoderTrainConfig(total_kimg=total_kimg, batch=batch, lrate=lrate, mixing_prob=mixing_prob,
                             image_weight=image_weight, seed=seed)
    if threads:
        torch.set_num_threads(threads)
    G = generator_of(open_network(network, device))
    out = prepare_outfile(out)
    try:
        result = train_encoder(G, cfg, generator_digest(G), network_file_sha256(network),
                               log_fn=lambda r: click.echo(
                                   f"kimg {r['kimg']:.1f}: ws loss {r['ws_loss']:.4f}"
                                   + (f", image loss {r['image_loss']:.4f}" if image_weight else "")
                                   + f" ({r['sec']:.0f} s)", err=True))
    except ValueError as exc:  # the mapping network's statistics
        raise click.BadParameter(str(exc), param_hint="--network") from None
    save_encoder(out, result)
    click.echo(f"wrote {out}: encoder for {network} (weights sha256 {result.G_sha256[:12]}), final ws loss "
               f"{result.log[-1]['ws_loss']:.4f} (normalised W+ MSE)")
