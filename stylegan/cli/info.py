"""`stylegan info PATH`: what a network file holds, without sampling from it."""
from __future__ import annotations

import dataclasses

import click
import torch

from .network_file import load_network_file


def _count(net: torch.nn.Module) -> str:
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    parts = [f"{trainable:,} trainable parameters"]
    for name in ("mapping", "synthesis"):
        sub = getattr(net, name, None)
        if isinstance(sub, torch.nn.Module):
            parts.append(f"{name} {sum(p.numel() for p in sub.parameters()):,}")
    return "; ".join(parts)


def _buffers(net: torch.nn.Module) -> str:
    names = [n for n, _ in net.named_buffers()]
    has_w_avg = any(n.split(".")[-1] == "w_avg" for n in names)
    noise = [n for n in names if "noise" in n.split(".")[-1]]
    return f"w_avg {'present' if has_w_avg else 'absent'}; {len(noise)} const noise buffers"


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
def info(path: str) -> None:
    """Show the format, configs, parameter counts, resolution and labels of a network file."""
    from ..loading import NETWORK_KEYS, nonfinite_tensors

    nets = load_network_file(path, param_hint="PATH", warn_nonfinite=False)
    click.echo(f"file           {path}")
    click.echo(f"format         {nets.source_format}")
    gen_config = nets.config.get("G")
    if gen_config is not None:
        click.echo(f"resolution     {gen_config.resolution} px, {gen_config.num_channels} channel(s), "
                   f"{getattr(nets.generator, 'num_layers', '?')} style layers")
        click.echo(f"labels         {gen_config.label_size or 'none (unconditional)'}")
    for key in ("G", "D", "G_ema"):
        net = getattr(nets, key)
        if net is None:
            click.echo(f"{key:<14} absent")
            continue
        line = _count(net)
        if key != "D":
            line += f"; {_buffers(net)}"
        click.echo(f"{key:<14} {line}")
    for key, config in nets.config.items():
        if config is None:
            continue
        click.echo(f"{key} config:")
        for field in dataclasses.fields(config):
            click.echo(f"  {field.name:<24} {getattr(config, field.name)!r}")
    bad = [f"{key}.{name}" for key in NETWORK_KEYS if getattr(nets, key) is not None
           for name in nonfinite_tensors(getattr(nets, key))]
    click.echo(f"weights        {'all finite' if not bad else f'NaN/Inf in {len(bad)} tensor(s): ' + ', '.join(bad)}")
    if "training" in nets.extra:
        training = nets.extra["training"]
        click.echo(f"training       images_shown={training.get('images_shown')} lod={training.get('lod')}")
