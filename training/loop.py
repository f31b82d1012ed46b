"""The progressive-growing training loop behind `stylegan train`.

Per minibatch (official NVlabs stylegan training_loop.py; minibatch_repeats defaults to 1 here (official 4) so lod
and learning rates are re-evaluated every minibatch; D_repeats = 1 as official; both are config fields):
  schedule -> (level change: checkpoint, reset Adam moments) -> reals at the current resolution, mirrored, faded at
  the same lod -> D step (loss incl. its penalty), G_ema update (half-life G_smoothing_kimg; official order: Gs is
  updated with the D step), images_shown += batch -> G step with style-mixing regularisation and the w_avg update.
Every `tick_kimg`: a status line, one JSONL record (log.jsonl), TensorBoard scalars if tensorboard is installed.
Every `snapshot_ticks` ticks, at each level change, at the end and on SIGINT/SIGTERM: an atomic checkpoint;
with snapshots also a `fakes{kimg:06d}.png` grid of G_ema on fixed latents (psi 1 and 0.7).

Exact resume: the schedule is a pure function of images_shown, the data order a pure function of the sample
position, and the checkpoint holds every other piece of state (weights, Adam moments, RNG states, tick counters), so
an interrupted + resumed run follows the same trajectory as an uninterrupted one (bit-identical on CPU).

Several processes (torchrun): see training/distributed.py. Every random tensor is drawn for the global batch and
each rank keeps its rows; G's and D's losses each run as one DistributedDataParallel forward + backward
(`GeneratorLoss`, `DiscriminatorLoss`); only rank 0 writes files.
"""
from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from ..atomic_write import atomic_write_bytes
from ..synthesis import layer_resolution
from .checkpoint import (atomic_torch_save, checkpoint_name, get_rng_states, load_checkpoint, prune_checkpoints,
                         set_rng_states)
from .config import TrainConfig
from .dataset import ImageDataset, check_enough_images, downsample_to, make_loader, random_mirror, to_float
from .distributed import DistContext, build_ops_first
from .losses import get_loss
from .schedule import Phase, ema_beta, fade_reals, is_level_change, mixing_cutoff, phase_at, resolution_at

SNAPSHOT_PSIS = (1.0, 0.7)
GRID_COLS = 8
GRID_ROWS_PER_PSI = 2


@dataclass
class TrainResult:
    """What a call to `train` did (the CLI prints it; tests compare runs with it)."""

    images_shown: int
    lod: float
    status: str                                  # 'done' | 'interrupted' | 'stopped'
    checkpoint: Optional[Path]
    trajectory: List[Tuple[int, float, int]] = field(default_factory=list)  # (images_shown, lod, batch) per step
    last_log: Dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------

def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev


def build_networks(cfg: TrainConfig, num_channels: int, label_size: int, impl: str = "auto"):
    """(G, D, G_ema) for a config and the dataset's channels/labels; G_ema starts as a copy of G."""
    from ..config import DiscriminatorConfig, GeneratorConfig
    from ..discriminator import Discriminator
    from ..generator import Generator

    gcfg = GeneratorConfig(resolution=cfg.resolution, num_channels=num_channels, label_size=label_size,
                           latent_size=cfg.latent_size, dlatent_size=cfg.dlatent_size,
                           mapping_layers=cfg.mapping_layers, mapping_fmaps=cfg.mapping_fmaps,
                           fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max,
                           dlatent_avg_beta=cfg.dlatent_avg_beta, style_mixing_prob=cfg.style_mixing_prob,
                           fused_scale=cfg.fused_scale)
    dcfg = DiscriminatorConfig(resolution=cfg.resolution, num_channels=num_channels, label_size=label_size,
                               fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max, fused_scale=cfg.fused_scale)
    G = Generator(gcfg, impl=impl)
    D = Discriminator(dcfg, impl=impl)
    G_ema = Generator(gcfg, impl=impl)
    G_ema.load_state_dict(G.state_dict())
    G_ema.requires_grad_(False)
    return G, D, G_ema


def _memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_grid(images: torch.Tensor, path: Path, cols: int, size: Optional[int] = None) -> None:
    """Save float [-1, 1] images [N, C, H, W] as one PNG grid (nearest-upscaled to `size`); atomic rename."""
    x = images.detach().float().cpu()
    if size is not None and x.shape[-1] != size:
        f = size // x.shape[-1]
        x = x.repeat_interleave(f, 2).repeat_interleave(f, 3)
    x = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # official convert_images_to_uint8
    n, c, h, w = x.shape
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * h, cols * w, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def synthesize(G: torch.nn.Module, z: torch.Tensor, c: Optional[torch.Tensor], z2: Optional[torch.Tensor], cut: int,
               noise: Optional[List[Optional[torch.Tensor]]], lod: float,
               w_avg_update: Optional[Callable[[torch.Tensor], None]] = None) -> torch.Tensor:
    """G's training forward: mapping -> (w_avg update) -> style mixing at `cut` with z2's ws -> synthesis."""
    ws = G.mapping(z, c)
    if w_avg_update is not None:
        w_avg_update(ws)
    if z2 is not None:
        ws = G.mix(ws, G.mapping(z2, c), cut)
    return G.synthesis(ws, lod=lod, noise=noise)


class GeneratorLoss(torch.nn.Module):
    """G's forward and loss as ONE module call, so DistributedDataParallel sees one forward and one backward.

    D is held outside the module tree (a tuple), so the DDP wrapper of this module tracks only G's parameters.
    """

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, loss_fn: Callable[..., Any],
                 w_avg_update: Callable[[torch.Tensor], None]) -> None:
        super().__init__()
        self.G = G
        self._D = (D,)
        self.loss_fn = loss_fn
        self.w_avg_update = w_avg_update

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor], z2: Optional[torch.Tensor], cut: int,
                noise: Optional[List[Optional[torch.Tensor]]], lod: float) -> Tuple[torch.Tensor, Dict[str, float]]:
        fakes = synthesize(self.G, z, c, z2, cut, noise, lod, self.w_avg_update)
        D = self._D[0]
        return self.loss_fn(lambda img: D(img, c, lod), fakes)


class DiscriminatorLoss(torch.nn.Module):
    """D's loss on reals and fakes, penalty included, as ONE module call (one DDP forward and backward; the
    penalty's double backward runs inside it)."""

    def __init__(self, D: torch.nn.Module, loss_fn: Callable[..., Any]) -> None:
        super().__init__()
        self.D = D
        self.loss_fn = loss_fn

    def forward(self, reals: torch.Tensor, fakes: torch.Tensor, c: Optional[torch.Tensor], lod: float,
                u: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, float]]:
        extra = {} if u is None else {"u": u}
        return self.loss_fn(lambda img: self.D(img, c, lod), reals, fakes, **extra)


class _StopFlag:
    """Set by SIGINT/SIGTERM: the loop finishes the current step, writes a checkpoint and returns."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old: Dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()


# ---------------------------------------------------------------------------------------------------------------

class Trainer:
    """Holds the state of one run; `run()` trains until total_kimg, a signal, or `stop_at_images`."""

    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None, impl: str = "auto", progress: bool = True,
                 log: Callable[[str], None] = print, dist: Optional[DistContext] = None,
                 device: Optional[str] = None) -> None:
        """`dist`/`device`: this process's rank and device under torchrun (training/distributed.py
        `init_from_env`); by default one process on `cfg.device`. Only rank 0 logs and writes files."""
        self.cfg = cfg
        self.dist = dist if dist is not None else DistContext()
        self.is_main = self.dist.is_main
        self.log = log if self.is_main else (lambda _msg: None)
        self.progress = progress and self.is_main
        self.device = _resolve_device(device if device is not None else cfg.device)
        self.outdir = Path(cfg.outdir)
        if self.is_main:
            self.outdir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)
        import random as _random
        _random.seed(cfg.seed)

        if self.dist.local_rank == 0:  # one process per machine prepares the dataset cache, the others wait
            self.dataset = ImageDataset(cfg.data, cfg.resolution, cache_dir=cfg.cache_dir, strict=cfg.strict_data,
                                        glyphs_count=cfg.glyphs_count, verbose=self.progress)
        self.dist.barrier()
        if self.dist.local_rank != 0:
            self.dataset = ImageDataset(cfg.data, cfg.resolution, cache_dir=cfg.cache_dir, strict=cfg.strict_data,
                                        glyphs_count=cfg.glyphs_count, verbose=False)
        max_batch = max(self._phase(n).batch for n in self._level_starts())
        check_enough_images(len(self.dataset), max_batch, cfg.data)
        self._check_batches()
        if cfg.cond and self.dataset.num_classes < 1:
            raise ValueError(f"--cond needs class labels, but dataset {cfg.data!r} has none "
                             f"(add a dataset.json with labels)")
        self.label_size = self.dataset.num_classes if cfg.cond else 0

        build_ops_first(self.dist, impl, self.device)  # several ranks: rank 0 compiles, the others load the cache
        self.G, self.D, self.G_ema = build_networks(cfg, self.dataset.num_channels, self.label_size, impl)
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.G_lrate_base, betas=(cfg.G_beta1, cfg.G_beta2),
                                      eps=cfg.adam_epsilon)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.D_lrate_base, betas=(cfg.D_beta1, cfg.D_beta2),
                                      eps=cfg.adam_epsilon)
        g_loss_fn, d_loss_fn = get_loss(cfg.loss, cfg.wgan_lambda, cfg.r1_gamma)
        # One module per optimisation step, DDP-wrapped with several ranks (the plain module with one).
        self.G_loss = self.dist.wrap(GeneratorLoss(self.G, self.D, g_loss_fn, self._update_w_avg), self.device)
        self.D_loss = self.dist.wrap(DiscriminatorLoss(self.D, d_loss_fn), self.device)

        # Progress state (all of it goes into checkpoints).
        self.images_shown = 0
        self.consumed = 0            # global position in the data stream (all ranks together)
        self.prev_lod: Optional[float] = None
        self.sched_nimg = 0          # images_shown at which the current schedule was evaluated
        self.repeats_left = 0        # minibatches left before the schedule is evaluated again
        self.cur_tick = 0
        self.tick_start_nimg = 0
        self.resumed_from: Optional[Path] = None
        self._swd_reals: Dict[int, Any] = {}  # resolution -> DescriptorSet of the reals (snapshot SWD)

        # Fixed snapshot inputs, drawn from their own generator so they never disturb the training RNG stream.
        g = torch.Generator().manual_seed(cfg.seed + 12345)
        n = GRID_COLS * GRID_ROWS_PER_PSI
        self.grid_z = torch.randn(n, cfg.latent_size, generator=g)
        self.grid_c = self._one_hot(torch.arange(n) % max(self.label_size, 1)) if self.label_size else None

        if resume is not None:
            self._load(resume)
        self._write_config()

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _level_starts(self) -> List[int]:
        cfg = self.cfg
        levels = cfg.resolution_log2 - int(math.log2(cfg.lod_initial_resolution))
        dur = int((cfg.lod_training_kimg + cfg.lod_transition_kimg) * 1000)
        return [0] + [int(cfg.lod_training_kimg * 1000) + 1 + i * dur for i in range(levels)]

    def _phase(self, images_shown: int) -> Phase:
        """The schedule at `images_shown`; the global minibatch is rounded down to a multiple of the rank count."""
        return phase_at(images_shown, self.cfg, world_size=self.dist.world_size)

    def _check_batches(self) -> None:
        """D's minibatch-stddev needs batch % min(4, batch) == 0 per rank (official group size 4): say so up front."""
        W = self.dist.world_size
        for n in self._level_starts():
            p = self._phase(n)
            local = p.batch // W
            g = min(4, local)
            if local % g:
                per_rank = f" ({local} per rank on {W} ranks)" if W > 1 else ""
                raise ValueError(f"minibatch {p.batch} at {p.resolution}px{per_rank} is not divisible by the "
                                 f"minibatch-stddev group size {g}; use a multiple of {4 * W} (or 1-3 per rank)")

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(labels.long(), self.label_size).float()

    def _write_config(self) -> None:
        if self.is_main:
            atomic_write_bytes(self.outdir / "config.json", self.cfg.to_json().encode("utf-8"))

    def _random_labels(self, n: int) -> Optional[torch.Tensor]:
        """This rank's rows of labels for n fakes, drawn from the dataset's label distribution (official
        get_random_labels_tf)."""
        if not self.label_size:
            return None
        idx = self.dist.rows(torch.randint(len(self.dataset), (n,)))
        return self._one_hot(torch.from_numpy(self.dataset.labels)[idx]).to(self.device)

    def _latents(self, n: int, phase: Phase) -> Tuple[torch.Tensor, Optional[torch.Tensor], int,
                                                      Optional[List[Optional[torch.Tensor]]]]:
        """(z, z2, crossover, noise maps): this rank's rows of the random inputs of n fakes.

        Drawn in the order of the official graph (z, style-mixing crossover, second z, per-layer noise) and always
        for the global batch, so the RNG stream does not depend on the number of ranks. z2 is None without mixing;
        noise maps are drawn for the layers that run at this lod (None above).
        """
        cfg, dev, rows = self.cfg, self.device, self.dist.rows
        z = torch.randn(n, cfg.latent_size, device=dev)
        cut = phase.num_active_layers
        z2 = None
        if cfg.style_mixing_prob > 0:
            cut = mixing_cutoff(phase.num_active_layers, cfg.style_mixing_prob)
            if cut < phase.num_active_layers:
                z2 = rows(torch.randn_like(z))
        noise: Optional[List[Optional[torch.Tensor]]] = None
        if self.G.config.use_noise:
            noise = [rows(torch.randn(n, 1, layer_resolution(i), layer_resolution(i), device=dev))
                     if i < phase.num_active_layers else None for i in range(self.G.synthesis.num_layers)]
        return rows(z), z2, cut, noise

    def _update_w_avg(self, ws: torch.Tensor) -> None:
        """w_avg update with the batch mean over all ranks (official dlatent_avg_beta)."""
        self.G.update_w_avg(ws, self.cfg.dlatent_avg_beta, reduce=self.dist.all_reduce_mean_)

    @torch.no_grad()
    def _update_ema(self, beta: float) -> None:
        """G_ema = lerp(G, G_ema, beta) for parameters; buffers (w_avg, noise maps) copied (official Gs update)."""
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def checkpoint_payload(self, lod: float) -> Dict[str, Any]:
        from ..formats import native

        payload = native.to_payload(self.G, self.D, self.G_ema)
        payload["training"] = {
            "images_shown": self.images_shown,
            "consumed": self.consumed,
            "lod": float(lod),
            "prev_lod": None if self.prev_lod is None else float(self.prev_lod),
            "cur_tick": self.cur_tick,
            "sched_nimg": self.sched_nimg,
            "repeats_left": self.repeats_left,
            "tick_start_nimg": self.tick_start_nimg,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "w_avg": self.G.w_avg.detach().cpu().clone(),
            "rng": get_rng_states(self.device),
            "world_size": self.dist.world_size,
            "train_config": self.cfg.to_json(),
            "dataset_fingerprint": self.dataset.fingerprint,
            "label_size": self.label_size,
            "num_channels": self.dataset.num_channels,
        }
        return payload

    def save_checkpoint(self, lod: float) -> Path:
        """Every rank calls this (it first checks that all ranks hold the same weights); rank 0 writes."""
        self.dist.check_in_sync({"G": self.G, "D": self.D, "G_ema": self.G_ema}, self.device)
        path = self.outdir / checkpoint_name(self.images_shown)
        if self.is_main:
            atomic_torch_save(self.checkpoint_payload(lod), path)
            prune_checkpoints(self.outdir, self.cfg.keep_checkpoints)
        return path

    def _load(self, spec: str) -> None:
        from .checkpoint import find_checkpoint

        path = find_checkpoint(spec, self.outdir)
        ck = load_checkpoint(path)
        t = ck["training"]
        saved = TrainConfig.from_json(t["train_config"])
        for name in ("resolution", "fmap_base", "fmap_max", "latent_size", "dlatent_size", "mapping_layers",
                     "mapping_fmaps", "cond", "lod_initial_resolution", "fused_scale"):
            if getattr(saved, name) != getattr(self.cfg, name):
                raise ValueError(f"cannot resume from {path}: it was trained with {name}={getattr(saved, name)!r}, "
                                 f"this run has {name}={getattr(self.cfg, name)!r}")
        if t["dataset_fingerprint"] != self.dataset.fingerprint:
            self.log(f"warning: resuming {path.name} on different data than it was trained on")
        try:
            self.G.load_state_dict(ck["G"])
            self.D.load_state_dict(ck["D"])
            self.G_ema.load_state_dict(ck["G_ema"])
            self.opt_G.load_state_dict(t["opt_G"])
            self.opt_D.load_state_dict(t["opt_D"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"cannot resume from {path}: {str(e).splitlines()[0]}") from None
        self.images_shown = int(t["images_shown"])
        self.consumed = int(t["consumed"])
        self.prev_lod = t["prev_lod"]
        self.cur_tick = int(t["cur_tick"])
        self.sched_nimg = int(t["sched_nimg"])
        self.repeats_left = int(t["repeats_left"])
        self.tick_start_nimg = int(t["tick_start_nimg"])
        set_rng_states(t["rng"], self.device)
        self.resumed_from = path
        self.log(f"Resumed from {path} at kimg {self.images_shown / 1000:.1f}, lod {t['lod']:.3f}")

    # -- snapshots -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def save_fakes(self, phase: Phase) -> Path:
        G = self.G_ema
        G.eval()
        z = self.grid_z.to(self.device)
        c = self.grid_c.to(self.device) if self.grid_c is not None else None
        imgs = []
        for psi in SNAPSHOT_PSIS:
            ws = G.truncate(G.mapping(z, c), psi, G.config.truncation_cutoff)  # official cutoff 8
            imgs.append(G.synthesis(ws, lod=phase.lod, noise_mode="const"))
        path = self.outdir / f"fakes{self.images_shown // 1000:06d}.png"
        save_grid(torch.cat(imgs), path, GRID_COLS, size=self.cfg.resolution)
        return path

    def snapshot_metrics(self, phase: Phase) -> Dict[str, Any]:
        """SWD x 1e3 of G_ema against the reals at the current resolution (PGGAN protocol, `swd_num` images per
        set; nothing below 16 px, where the protocol has no pyramid level). Rank 0 only; the reals' descriptors
        are computed once per resolution and reused."""
        from .metrics import MIN_RESOLUTION, real_descriptors, swd_for_generator

        num = min(self.cfg.swd_num, len(self.dataset))
        resolution = resolution_at(phase.lod, self.cfg.resolution_log2)
        if num < 1 or resolution < MIN_RESOLUTION:
            return {}
        if resolution not in self._swd_reals:
            self._swd_reals = {resolution: real_descriptors(self.dataset, num, resolution, seed=self.cfg.seed)}
        self.G_ema.eval()
        result = swd_for_generator(self.G_ema, self._swd_reals[resolution], num, lod=phase.lod,
                                   seed=self.cfg.seed, device=self.device)
        return {k: round(v, 4) for k, v in result.items()}

    def save_reals(self) -> Path:
        n = min(GRID_COLS * GRID_ROWS_PER_PSI, len(self.dataset))
        x = torch.stack([self.dataset[i][0] for i in range(n)])
        path = self.outdir / "reals.png"
        save_grid(to_float(x), path, GRID_COLS)
        return path

    # -- the loop --------------------------------------------------------------------------------------------------
    def run(self, stop_at_images: Optional[int] = None) -> TrainResult:
        cfg = self.cfg
        total = int(round(cfg.total_kimg * 1000))
        stop = _StopFlag()
        stop.install()
        # Deterministic kernels where torch has them (process-wide setting: restored on return).
        old_det = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        writer = self._tensorboard() if self.is_main else None
        log_path = self.outdir / "log.jsonl"
        if self.resumed_from is None and self.is_main:
            self.save_reals()
        trajectory: List[Tuple[int, float, int]] = []
        loader: Optional[Iterator] = None
        loader_batch = -1
        sums: Dict[str, float] = {}
        count = 0
        tick_time = time.time()
        last_ckpt: Optional[Path] = None
        last_log: Dict[str, Any] = {}
        status = "done"
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.total_kimg, initial=self.images_shown / 1000, unit="kimg", dynamic_ncols=True,
                       leave=False, file=sys.stderr,
                       bar_format="{l_bar}{bar}| {n:.2f}/{total:g} kimg [{elapsed}<{remaining}, {rate_fmt}]")
        phase = self._phase(self.images_shown)
        W = self.dist.world_size
        try:
            while self.images_shown < total:
                if self.repeats_left <= 0:  # official minibatch_repeats: schedule fixed for that many minibatches
                    self.sched_nimg = self.images_shown
                    self.repeats_left = cfg.minibatch_repeats
                phase = self._phase(self.sched_nimg)
                if is_level_change(self.prev_lod, phase.lod) and self.prev_lod is not None:
                    last_ckpt = self.save_checkpoint(phase.lod)   # state at the boundary, before the reset
                    if cfg.reset_opt_for_new_lod:
                        self.opt_G.state.clear()
                        self.opt_D.state.clear()
                self.prev_lod = phase.lod
                if phase.batch != loader_batch:
                    loader = make_loader(self.dataset, phase.batch // W, start=self.consumed, seed=cfg.seed,
                                         workers=cfg.workers, rank=self.dist.rank, world_size=W)
                    loader_batch = phase.batch
                terms = self._step(phase, loader)
                self.repeats_left -= 1
                trajectory.append((self.images_shown, phase.lod, phase.batch))
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if bar is not None:
                    bar.update(min(self.images_shown, total) / 1000 - bar.n)

                done = self.images_shown >= total
                interrupted = self.dist.any(stop.signum is not None, self.device)  # all ranks stop together
                stopping = stop_at_images is not None and self.images_shown >= stop_at_images
                if not (self.images_shown >= self.tick_start_nimg + cfg.tick_kimg * 1000 or done):
                    if interrupted or stopping:  # no extra tick: keeps the tick/snapshot cadence of the run
                        last_ckpt = self.save_checkpoint(phase.lod)
                        status = "interrupted" if interrupted else "stopped"
                        break
                    continue
                now = time.time()
                tick_kimg = (self.images_shown - self.tick_start_nimg) / 1000
                self.cur_tick += 1
                self.tick_start_nimg = self.images_shown
                dt = max(now - tick_time, 1e-9)
                tick_time = now
                sums = self.dist.mean_of(sums, self.device)
                record = {
                    "tick": self.cur_tick, "kimg": round(self.images_shown / 1000, 3),
                    "images_shown": self.images_shown, "lod": round(phase.lod, 5),
                    "resolution": phase.resolution, "batch": phase.batch,
                    "lr_G": phase.lr_G, "lr_D": phase.lr_D,
                    "loss_G": sums.get("loss_G", 0) / max(count, 1), "loss_D": sums.get("loss_D", 0) / max(count, 1),
                    "penalty": sums.get("penalty", 0) / max(count, 1),
                    "sec_per_kimg": dt / max(tick_kimg, 1e-9), "img_per_s": tick_kimg * 1000 / dt,
                    "mem_MiB": round(_memory_mib(self.device), 1), "time": now,
                }
                sums, count = {}, 0
                snapshot = self.cur_tick % cfg.snapshot_ticks == 0 or done
                if snapshot and self.is_main:
                    record.update(self.snapshot_metrics(phase))
                if self.is_main:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                if writer is not None:
                    for k in ("lod", "loss_G", "loss_D", "penalty", "sec_per_kimg", "img_per_s", "mem_MiB",
                              "swd_avg"):
                        if k in record:
                            writer.add_scalar(f"train/{k}", record[k], self.images_shown)
                    writer.flush()
                line = (f"kimg {record['kimg']:8.1f}  res {phase.resolution:4d}  lod {phase.lod:5.2f}  "
                        f"batch {phase.batch:3d}  loss_G {record['loss_G']:8.3f}  loss_D {record['loss_D']:8.3f}  "
                        f"penalty {record['penalty']:7.3f}  sec/kimg {record['sec_per_kimg']:7.1f}  "
                        f"img/s {record['img_per_s']:6.1f}  mem {record['mem_MiB']:.0f} MiB")
                if "swd_avg" in record:
                    line += f"  swd {record['swd_avg']:.2f}"
                if bar is not None:
                    bar.write(line, file=sys.stdout)
                else:
                    self.log(line)
                last_log = record
                if not all(math.isfinite(record[k]) for k in ("loss_G", "loss_D", "penalty")):
                    last_ckpt = self.save_checkpoint(phase.lod)
                    raise FloatingPointError(f"training diverged at kimg {record['kimg']}: losses are not finite "
                                             f"(last checkpoint {last_ckpt.name}); try a lower learning rate")
                if snapshot:
                    if self.is_main:
                        self.save_fakes(phase)
                    last_ckpt = self.save_checkpoint(phase.lod)
                if interrupted or stopping:
                    if last_ckpt is None or last_ckpt.name != checkpoint_name(self.images_shown):
                        last_ckpt = self.save_checkpoint(phase.lod)
                    status = "interrupted" if interrupted else "stopped"
                    break
        finally:
            stop.restore()
            torch.use_deterministic_algorithms(old_det[0], warn_only=old_det[1])
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        return TrainResult(self.images_shown, phase.lod, status, last_ckpt, trajectory, last_log)

    def _step(self, phase: Phase, loader: Iterator) -> Dict[str, float]:
        """D_repeats D steps (each on a new real minibatch) then one G step; returns this rank's logged scalars.

        `phase.batch` is the global minibatch: random inputs are drawn for all of it and this rank keeps its rows.
        """
        cfg, dev, rows = self.cfg, self.device, self.dist.rows
        for g in self.opt_G.param_groups:
            g["lr"] = phase.lr_G
        for g in self.opt_D.param_groups:
            g["lr"] = phase.lr_D
        B = phase.batch

        # D steps: fakes conditioned on the reals' labels (official D losses).
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        d_sum: Dict[str, float] = {}
        for _ in range(cfg.D_repeats):
            reals_u8, labels = next(loader)
            self.consumed += B
            reals = downsample_to(to_float(reals_u8.to(dev)), phase.resolution)
            if cfg.mirror_augment:
                reals = random_mirror(reals, flip=rows(torch.rand(B) < 0.5))
            reals = fade_reals(reals, phase.lod)
            c_real = self._one_hot(labels).to(dev) if self.label_size else None
            z, z2, cut, noise = self._latents(B, phase)
            with torch.no_grad():
                fakes = synthesize(self.G, z, c_real, z2, cut, noise, phase.lod)
            u = rows(torch.rand(B, device=dev)) if cfg.loss == "wgan-gp" else None  # gradient-penalty mixing
            loss_D, d_terms = self.D_loss(reals, fakes, c_real, phase.lod, u)
            self.opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            self.opt_D.step()
            self._update_ema(ema_beta(B, cfg.G_smoothing_kimg))  # official: Gs update runs with each D step
            self.images_shown += B                              # official: cur_nimg += minibatch per D step
            for k in ("loss", "penalty"):
                d_sum[k] = d_sum.get(k, 0.0) + d_terms[k] / cfg.D_repeats

        # G step.
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        c_fake = self._random_labels(B)
        z, z2, cut, noise = self._latents(B, phase)
        loss_G, g_terms = self.G_loss(z, c_fake, z2, cut, noise, phase.lod)
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        return {"loss_G": g_terms["loss"], "loss_D": d_sum["loss"], "penalty": d_sum["penalty"]}

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional
            return None
        return SummaryWriter(str(self.outdir))


def train(cfg: TrainConfig, resume: Optional[str] = None, impl: str = "auto", progress: bool = True,
          stop_at_images: Optional[int] = None, log: Callable[[str], None] = print,
          dist: Optional[DistContext] = None, device: Optional[str] = None) -> TrainResult:
    """Run (or resume) training as configured; returns where it ended. ValueError for bad data/options."""
    trainer = Trainer(cfg, resume=resume, impl=impl, progress=progress, log=log, dist=dist, device=device)
    return trainer.run(stop_at_images=stop_at_images)
