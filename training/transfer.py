"""`--resume-from PATH|URL`: a NEW run that starts from the networks of any file `stylegan.load` reads, and Freeze-D.

Why: most users fine-tune a pretrained network on a few hundred to a few thousand images of their own instead of
training from scratch (the NVlabs StyleGAN2-ADA `--resume=PKL`). Unlike `--resume`, which continues one run
exactly, this starts a run: images shown at 0, fresh optimisers, the schedule from lod 0 at the file's resolution
(unless `--start-res` asks for re-growing). The architecture comes from the file: options that would change it are
refused naming both values (`check_given`). A file without D (a G-only rosinality checkpoint) gets a freshly
initialised D. `config.json` records the source and its sha256 (`resume_pkl`, `resume_pkl_sha256`).

Freeze-D (Mo et al. 2020, "Freeze the Discriminator"; NVlabs stylegan2-ada `--freezed`): the K highest-resolution
blocks of D and the FromRGB layers feeding them get no updates, so D keeps its low-level features.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch

from ..file_hash import file_sha256
from ..formats import Networks

# TrainConfig field -> how to read it from the file's generator config (what fixes the architecture).
ARCHITECTURE_FROM_G = {
    "resolution": lambda g: g.resolution,
    "fmap_base": lambda g: g.fmap_base,
    "fmap_max": lambda g: g.fmap_max,
    "latent_size": lambda g: g.latent_size,
    "dlatent_size": lambda g: g.dlatent_size,
    "mapping_layers": lambda g: g.mapping_layers,
    "mapping_fmaps": lambda g: g.mapping_fmaps,
    "fused_scale": lambda g: g.fused_scale,
    "cond": lambda g: g.label_size > 0,
}


@dataclass
class Source:
    """A network file read once: what the user gave, the local file, its sha256 and its networks."""

    spec: str
    path: Path
    sha256: str
    networks: Networks


def open_source(spec: str) -> Source:
    """Read `--resume-from` (a path, or an http(s) URL downloaded once into the cache); ValueError naming the
    problem (a missing file, a failed download, a file holding no generator, an unknown format)."""
    from ..download import DownloadError, download, is_url
    from ..formats.safe_pickle import UnsafePickleError
    from ..loading import load

    try:
        path = download(spec) if is_url(spec) else Path(spec).expanduser()
        networks = load(path)
    except (DownloadError, FileNotFoundError, UnsafePickleError, TypeError) as e:  # their messages name the file
        raise ValueError(str(e)) from None
    except OSError as e:  # permission denied, I/O errors
        raise ValueError(f"cannot read {spec}: {e}") from None
    if networks.G is None and networks.G_ema is None:
        raise ValueError(f"{spec} holds no generator (a {networks.source_format} file with only "
                         f"{'D' if networks.D is not None else 'no networks'}); --resume-from needs a file with G")
    return Source(spec, Path(path), file_sha256(Path(path)), networks)


def architecture_of(networks: Networks) -> Dict[str, Any]:
    """The TrainConfig fields the file fixes, plus the start resolution default (its own: no re-growing)."""
    g = networks.generator.config
    fields = {name: read(g) for name, read in ARCHITECTURE_FROM_G.items()}
    fields["lod_initial_resolution"] = g.resolution
    return fields


def check_given(given: Mapping[str, Any], networks: Networks, option_of) -> None:
    """ValueError naming the first option given on the command line that would change the file's architecture."""
    fixed = architecture_of(networks)
    for name, value in given.items():
        if name in ARCHITECTURE_FROM_G and value != fixed[name]:
            raise ValueError(f"{option_of(name)} {value!r} would change the architecture of the network in "
                             f"--resume-from (it has {name}={fixed[name]!r}); leave the option out")


def check_data(networks: Networks, num_channels: int, label_size: int, data: str) -> None:
    """The data must match what the network makes (channels; labels when conditional)."""
    g = networks.generator.config
    if g.num_channels != num_channels:
        raise ValueError(f"the network in --resume-from makes {g.num_channels}-channel images but {data} has "
                         f"{num_channels}-channel images; convert the images (e.g. to "
                         f"{'RGB' if g.num_channels == 3 else 'grayscale'}) or fine-tune another network")
    if g.label_size != label_size:
        raise ValueError(f"the network in --resume-from has {g.label_size} class labels but the run has "
                         f"{label_size} (from {data}); the dataset's label count must match")


def networks_from_configs(g_config, d_config, impl: str) -> Tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """Fresh (G, D, G_ema) of given configs (the file's own, variant fields included); G_ema starts as G."""
    from ..discriminator import Discriminator
    from ..generator import Generator

    G, D, G_ema = Generator(g_config, impl=impl), Discriminator(d_config, impl=impl), Generator(g_config, impl=impl)
    G_ema.load_state_dict(G.state_dict())
    G_ema.requires_grad_(False)
    return G, D, G_ema


def load_source_weights(source: Source, G: torch.nn.Module, D: torch.nn.Module, G_ema: torch.nn.Module,
                        log) -> None:
    """Copy the file's weights: G and G_ema (each from the other when the file has only one), D when present."""
    nets = source.networks
    g_src = nets.G if nets.G is not None else nets.G_ema
    G.load_state_dict(g_src.state_dict())
    G_ema.load_state_dict(nets.generator.state_dict())
    if nets.D is not None:
        D.load_state_dict(nets.D.state_dict())
    else:
        log(f"note: {source.spec} holds no discriminator; D starts freshly initialised")


def frozen_parameters(D: torch.nn.Module, freezed: int) -> List[torch.nn.Parameter]:
    """Freeze-D: the parameters of D's `freezed` highest-resolution blocks and of the FromRGB layers at their
    resolutions (blocks[level - 1] and fromrgb[level] run at 4 * 2^level px); ValueError above D's block count."""
    blocks = len(D.blocks)
    if not 0 <= freezed <= blocks:
        raise ValueError(f"--freeze-d {freezed}: this D has {blocks} blocks (from {D.config.resolution} px down to "
                         f"8 px); expected 0..{blocks}")
    top = D.config.max_lod
    levels = range(top, top - freezed, -1)
    params: List[torch.nn.Parameter] = []
    for level in levels:
        params += list(D.blocks[level - 1].parameters()) + list(D.fromrgb[level].parameters())
    return params


def source_summary(source: Source) -> str:
    """One line about the file a run starts from (the Trainer logs it)."""
    n = source.networks
    have = "+".join(k for k in ("G", "D", "G_ema") if getattr(n, k) is not None)
    return f"{source.spec} ({n.source_format}, {have}, {n.generator.config.resolution} px, sha256 {source.sha256[:12]})"
