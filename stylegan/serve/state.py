"""What `stylegan serve` loads at start: the networks (addressed by index: the browser never names a file), their
direction sets, the run folder, the device's worker, the response cache and the projection jobs."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from ..directions import Directions, compute_directions
from ..precision import FP32, Precision
from .cache import ResponseCache
from .worker import Worker

DERIVED_METHODS = ("sefa", "ganspace")  # direction sets every network gets, computed on first use


@dataclass
class DirectionSet:
    """One named set of directions of a network: a --directions file (path kept for the CLI command) or one of
    DERIVED_METHODS, computed on first use with `stylegan directions`' defaults."""

    name: str
    method: str
    count: int
    path: Optional[Path] = None
    directions: Optional[Directions] = None


@dataclass
class ServedNetwork:
    """One --network: its generator, its default lod (a training checkpoint's, else 0) and its direction sets."""

    index: int
    spec: str            # as given on the command line (path or URL); only ever shown as the name
    G: torch.nn.Module
    default_lod: float
    digest: str
    direction_sets: Dict[str, DirectionSet] = field(default_factory=dict)
    file_sha256: Optional[str] = None   # of the network file, computed once for projected.npz files
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return os.path.basename(self.spec.rstrip("/")) or self.spec

    def directions(self, name: str, compute: Callable[[str], Directions]) -> Directions:
        """The Directions of set `name`, computing a derived one once (on the worker thread)."""
        chosen = self.direction_sets[name]
        with self._lock:
            if chosen.directions is None:
                chosen.directions = compute(chosen.method)
            return chosen.directions


@dataclass
class ServeState:
    networks: List[ServedNetwork]
    device: torch.device
    precision: Precision = FP32
    run_dir: Optional[Path] = None
    vgg16: Optional[Path] = None  # NVIDIA's vgg16.pt for loss=lpips (serve --vgg16, resolved at start)
    worker: Worker = field(default_factory=Worker)
    cache: ResponseCache = field(default_factory=ResponseCache)
    jobs: object = None   # jobs.JobStore, set by the app
    run_view: object = None  # run_view.RunView, set by the app when run_dir is given


def attach_direction_sets(networks: List[ServedNetwork], files: List[Path]) -> None:
    """Gives every network the DERIVED_METHODS sets (SeFa only where the network has style layers) and each
    directions file to the network(s) it was made for; ValueError for a file that fits none of them."""
    from ..cli.directions import directions as directions_command
    from ..directions import check_directions_for, load_directions
    from .params import cli_default

    num = cli_default(directions_command, "num")
    for served in networks:
        for method in DERIVED_METHODS:
            if method == "sefa" and served.G.synthesis.layers[0].style is None:
                continue
            served.direction_sets[method] = DirectionSet(method, method, min(num, int(served.G.config.dlatent_size)))
    for path in files:
        loaded = load_directions(path)
        fits = []
        for served in networks:
            try:
                check_directions_for(loaded, served.G, served.digest, str(path), served.spec)
            except ValueError as exc:
                problem = str(exc)
                continue
            fits.append(served)
        if not fits:
            raise ValueError(problem)
        for served in fits:
            name, n = path.stem, 2
            while name in served.direction_sets:
                name, n = f"{path.stem}-{n}", n + 1
            served.direction_sets[name] = DirectionSet(name, loaded.method, loaded.count, path, loaded)


def derived_directions(G: torch.nn.Module, method: str, num: int, num_samples: int, digest: str) -> Directions:
    """`stylegan directions --method METHOD` with its defaults (all layers): what a --directions file of that
    command holds."""
    return compute_directions(G, method, list(range(int(G.num_layers))), num, num_samples, None, None, digest)


__all__ = ["ServeState", "ServedNetwork", "DirectionSet", "DERIVED_METHODS", "attach_direction_sets",
           "derived_directions"]
