"""The progressive-growing training loop behind `stylegan train`.

Per minibatch (official NVlabs stylegan training_loop.py; minibatch_repeats defaults to 1 here (official 4) so lod
and learning rates are re-evaluated every minibatch; D_repeats = 1 as official; both are config fields):
  schedule -> (level change: checkpoint, reset Adam moments) -> reals at the current resolution, mirrored, faded at
  the same lod -> D step (loss incl. its penalty), G_ema update (half-life G_smoothing_kimg; official order: Gs is
  updated with the D step), images_shown += batch -> G step with style-mixing regularisation and the w_avg update.
Every `tick_kimg`: one log record (tick_logger.py). Every `snapshot_ticks` ticks and at the end: sample grids and
the SWD (snapshots.py) and a checkpoint; checkpoints also at each level change and on SIGINT/SIGTERM.

Exact resume: the schedule is a pure function of images_shown, the data order a pure function of the sample
position, and the checkpoint holds every other piece of state (weights, Adam moments, RNG states, the TrainState
counters), so an interrupted + resumed run follows the same trajectory as an uninterrupted one (bit-identical on
the same machine).

Several processes (torchrun): see training/distributed.py. Every random tensor is drawn for the global batch and
each rank keeps its rows; G's and D's losses each run as one DistributedDataParallel forward + backward
(`GeneratorLoss`, `DiscriminatorLoss`); only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch

from ..atomic_write import atomic_write_bytes
from ..devices import resolve_device, rng_devices
from ..generator import random_crossover_point
from ..images import box_downsample
from ..loading import nonfinite_tensors
from ..fp16_recipe import nan_to_num_grads_
from ..precision import FP32, Precision, resolve_precision
from .checkpoint import (Checkpoint, TrainState, atomic_torch_save, checkpoint_name, open_checkpoint,
                         prune_checkpoints, set_rng_states)
from .ada import AdaController
from .augment import AdaPipeline, make_pipeline
from .config import TrainConfig, mbstd_batch_problem
from .dataset import ImageDataset, check_enough_images, make_loader, random_mirror, to_float
from .distributed import DistContext, build_ops_first
from .run_folder import RunLock, check_fresh
from .losses import clip_weights_, get_loss
from .schedule import Phase, ema_beta, fade_reals, is_level_change, level_starts, phase_at
from .snapshots import Snapshots, one_hot
from .tick_logger import TickLogger, finite_losses
from .transfer import (ARCHITECTURE_FROM_G, Source, check_data, check_given, frozen_parameters,
                       load_source_weights, networks_from_configs, open_source, source_summary)

Noise = Optional[List[Optional[torch.Tensor]]]
AUGMENT_SEED_OFFSET = 54321  # the augmentation's generator is seeded from the run's seed + this


@dataclass
class TrainResult:
    """What a call to `train` did (the CLI prints it; tests compare runs with it)."""

    images_shown: int
    lod: float
    status: str                                  # 'done' | 'interrupted' | 'stopped'
    checkpoint: Optional[Path]
    signal: Optional[int] = None                 # the signal that interrupted the run (SIGINT, SIGTERM)
    trajectory: List[Tuple[int, float, int]] = field(default_factory=list)  # (images_shown, lod, batch) per step
    last_log: Dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------

def build_networks(cfg: TrainConfig, num_channels: int, label_size: int, impl: str = "auto"):
    """(G, D, G_ema) for a config and the dataset's channels/labels; G_ema starts as a copy of G."""
    from ..config import GeneratorConfig
    from ..discriminator import Discriminator
    from ..generator import Generator

    gcfg = GeneratorConfig(resolution=cfg.resolution, num_channels=num_channels, label_size=label_size,
                           latent_size=cfg.latent_size, dlatent_size=cfg.dlatent_size,
                           mapping_layers=cfg.mapping_layers, mapping_fmaps=cfg.mapping_fmaps,
                           fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max,
                           dlatent_avg_beta=cfg.dlatent_avg_beta, style_mixing_prob=cfg.style_mixing_prob,
                           fused_scale=cfg.fused_scale)
    dcfg = fresh_discriminator_config(cfg, num_channels, label_size)
    G = Generator(gcfg, impl=impl)
    D = Discriminator(dcfg, impl=impl)
    G_ema = Generator(gcfg, impl=impl)
    G_ema.load_state_dict(G.state_dict())
    G_ema.requires_grad_(False)
    return G, D, G_ema


def make_optimizer(cfg: TrainConfig, net: torch.nn.Module, lr: float, betas: Tuple[float, float]
                   ) -> torch.optim.Optimizer:
    """`cfg.optimizer` over net's parameters: Adam (official betas and epsilon) or RMSprop with torch's defaults
    (alpha 0.99, eps 1e-8: what the WGAN reference code, martinarjovsky/WassersteinGAN, uses)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(net.parameters(), lr=lr)
    return torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=cfg.adam_epsilon)


def fresh_discriminator_config(cfg: TrainConfig, num_channels: int, label_size: int):
    """The D of a config (also the fresh D of a --resume-from file that has none)."""
    from ..config import DiscriminatorConfig

    return DiscriminatorConfig(resolution=cfg.resolution, num_channels=num_channels, label_size=label_size,
                               fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max, fused_scale=cfg.fused_scale)


def synthesize(G: torch.nn.Module, z: torch.Tensor, c: Optional[torch.Tensor], z2: Optional[torch.Tensor], cut: int,
               noise: Noise, lod: float, w_avg_update: Optional[Callable[[torch.Tensor], None]] = None) -> torch.Tensor:
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
    G and D run in `precision`'s autocast region; their images and scores come back float32 for the loss.
    """

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, loss_fn: Callable[..., Any],
                 w_avg_update: Callable[[torch.Tensor], None], precision: Precision = FP32,
                 augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        super().__init__()
        self.G = G
        self._D = (D,)
        self.loss_fn = loss_fn
        self.w_avg_update = w_avg_update
        self.precision = precision
        self.augment = augment  # D sees augmented images (training/augment.py), fakes of the G step included

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor], z2: Optional[torch.Tensor], cut: int,
                noise: Noise, lod: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        fakes = self.precision.run(synthesize, self.G, z, c, z2, cut, noise, lod, self.w_avg_update)
        D, augment, precision = self._D[0], self.augment, self.precision
        if augment is not None:  # the augmentation runs in float32, outside the autocast region
            return self.loss_fn(lambda img: precision.run(D, augment(img), c, lod), fakes)
        return self.loss_fn(lambda img: precision.run(D, img, c, lod), fakes)


class DiscriminatorLoss(torch.nn.Module):
    """D's loss on reals and fakes, penalty included, as ONE module call (one DDP forward and backward; the
    penalty's double backward runs inside it)."""

    def __init__(self, D: torch.nn.Module, loss_fn: Callable[..., Any], precision: Precision = FP32,
                 augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        super().__init__()
        self.D = D
        self.loss_fn = loss_fn
        self.precision = precision
        self.augment = augment  # applied inside D's callable: reals, fakes and the penalty's inputs

    def forward(self, reals: torch.Tensor, fakes: torch.Tensor, c: Optional[torch.Tensor], lod: float,
                u: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        extra = {} if u is None else {"u": u}
        if self.augment is not None:  # the augmentation runs in float32, outside the autocast region
            augment = self.augment
            return self.loss_fn(lambda img: self.precision.run(self.D, augment(img), c, lod), reals, fakes, **extra)
        return self.loss_fn(lambda img: self.precision.run(self.D, img, c, lod), reals, fakes, **extra)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Deterministic kernels where torch has them, while the block runs (a process-wide setting: restored).

    Without torch's debugging fill of uninitialized memory: deterministic mode otherwise writes NaN into every
    `torch.empty` (every op output, dtype cast and convolution buffer), one extra write pass per fresh tensor that
    changes no result of an op that writes its output before reading it (docs/PERFORMANCE.md §8.6: it carries the
    first-touch page faults in a profile, but saves little CPU time)."""
    import torch.utils.deterministic as torch_deterministic

    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
           torch_deterministic.fill_uninitialized_memory)
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch_deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch_deterministic.fill_uninitialized_memory = old[2]


class _StopFlag:
    """Set by SIGINT/SIGTERM: the loop finishes the current step, writes a checkpoint and returns."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old: Dict[int, Any] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The handlers while the block runs (main thread only: signals cannot be caught elsewhere)."""
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        try:
            yield
        finally:
            for s, h in self._old.items():
                signal.signal(s, h)
            self._old.clear()

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum


# ---------------------------------------------------------------------------------------------------------------

class Trainer:
    """Holds the state of one run; `run()` trains until total_kimg, a signal, or `stop_at_images`."""

    def __init__(self, cfg: TrainConfig, resume: Union[str, Checkpoint, None] = None, impl: str = "auto",
                 progress: bool = True, log: Callable[[str], None] = print, dist: Optional[DistContext] = None,
                 device: Optional[str] = None, allow_nonfinite: bool = False, source: Optional[Source] = None) -> None:
        """`resume`: `--resume FILE|DIR|latest` or a checkpoint already read (the CLI reads it once); one whose
        weights hold NaN/Inf is refused unless `allow_nonfinite`.
        `source`: `cfg.resume_pkl` already read (training/transfer.py; read here when None); unused with `resume`.
        `dist`/`device`: this process's rank and device under torchrun (training/distributed.py `init_from_env`);
        by default one process on `cfg.device`. Only rank 0 logs and writes files."""
        self.cfg = cfg
        self.dist = dist if dist is not None else DistContext()
        self.is_main = self.dist.is_main
        self.log = log if self.is_main else (lambda _msg: None)
        self.progress = progress and self.is_main
        self.allow_nonfinite = allow_nonfinite
        self.device = resolve_device(device if device is not None else cfg.device)
        self.outdir = Path(cfg.outdir)
        self._lock: Optional[RunLock] = None
        if self.is_main:  # one run per folder, one process per run (training/run_folder.py)
            self.outdir.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock(self.outdir).acquire()
        try:
            if self.is_main and resume is None:
                check_fresh(self.outdir)
            self._build(impl, resume, source)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run folder without training (run() releases it when it returns)."""
        if self._lock is not None:
            self._lock.release()

    def _build(self, impl: str, resume: Union[str, Checkpoint, None], source: Optional[Source]) -> None:
        """Data, networks, optimisers, losses and state (from `resume` when given, else from `cfg.resume_pkl`
        when set); the config file last."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)
        random.seed(cfg.seed)

        # before any data work: a precision this device cannot run is refused at once (fp16 on a CPU)
        self.precision = resolve_precision(cfg.precision, self.device, warn=False,  # the line below says it
                                           num_fp16_res=cfg.num_fp16_res)
        if cfg.precision != self.precision.name:  # config.json and checkpoints hold what `auto` chose
            cfg = self.cfg = dataclasses.replace(cfg, precision=self.precision.name)
        self.log(self.precision.describe())
        level_phases = [self.phase(n) for n in level_starts(cfg)]
        for p in level_phases:  # before any work: every level's minibatch must split into mbstd groups per rank
            problem = mbstd_batch_problem(p.batch, self.dist.world_size)
            if problem is not None:
                raise ValueError(f"{problem} (at {p.resolution}px)")
        self.dataset = self._open_dataset()
        check_enough_images(len(self.dataset), max(p.batch for p in level_phases), cfg.data)
        if cfg.cond and self.dataset.num_classes < 1:
            raise ValueError(f"--cond needs class labels, but dataset {cfg.data!r} has none "
                             f"(add a dataset.json with labels)")
        self.label_size = self.dataset.num_classes if cfg.cond else 0

        build_ops_first(self.dist, impl, self.device)  # several ranks: rank 0 compiles, the others load the cache
        if resume is not None and not isinstance(resume, Checkpoint):
            resume = open_checkpoint(resume, self.outdir)
        self.source: Optional[Source] = None
        if cfg.resume_pkl is not None and resume is None:  # a new run from a network file (training/transfer.py)
            self.source = source if source is not None else open_source(cfg.resume_pkl)
            nets = self.source.networks
            check_given({name: getattr(cfg, name) for name in ARCHITECTURE_FROM_G}, nets, lambda n: n)
            check_data(nets, self.dataset.num_channels, self.label_size, cfg.data)
            d_config = nets.D.config if nets.D is not None else fresh_discriminator_config(
                cfg, self.dataset.num_channels, self.label_size)
            self.G, self.D, self.G_ema = networks_from_configs(nets.generator.config, d_config, impl)
            load_source_weights(self.source, self.G, self.D, self.G_ema, self.log)
            self.cfg = cfg = cfg.replace(resume_pkl_sha256=self.source.sha256)
            self.log(f"Fine-tuning from {source_summary(self.source)}")
        elif cfg.resume_pkl is not None:  # continuing a fine-tuning run: its networks have the file's configs
            self.G, self.D, self.G_ema = networks_from_configs(*resume.network_configs(), impl)
        else:
            self.G, self.D, self.G_ema = build_networks(cfg, self.dataset.num_channels, self.label_size, impl)
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        self.D_frozen = {id(p) for p in frozen_parameters(self.D, cfg.freezed)}  # Freeze-D: never trained
        self._set_D_trainable(True)
        self.opt_G = make_optimizer(cfg, self.G, cfg.G_lrate_base, (cfg.G_beta1, cfg.G_beta2))
        self.opt_D = make_optimizer(cfg, self.D, cfg.D_lrate_base, (cfg.D_beta1, cfg.D_beta2))
        g_loss_fn, d_loss_fn = get_loss(cfg.loss, cfg.wgan_lambda, cfg.r1_gamma)
        # D augmentation (training/augment.py) and the ADA controller of its p (training/ada.py).
        self.augment = make_pipeline(cfg.augment, cfg.augpipe, cfg.augment_p or 0.0, cfg.seed + AUGMENT_SEED_OFFSET,
                                     self.dist.rows, self.dist.world_size, impl)
        self.ada: Optional[AdaController] = None
        if isinstance(self.augment, AdaPipeline):
            self.augment.check_channels(self.dataset.num_channels)
        if isinstance(self.augment, AdaPipeline) and cfg.augment_p is None:
            self.ada = AdaController(cfg.ada_target, cfg.ada_kimg_used, cfg.ada_interval, self.dist.all_reduce_mean_)
        # One module per optimisation step, DDP-wrapped with several ranks (the plain module with one).
        self.G_loss = self.dist.wrap(GeneratorLoss(self.G, self.D, g_loss_fn, self._update_w_avg, self.precision,
                                                   self.augment), self.device)
        self.D_loss = self.dist.wrap(DiscriminatorLoss(self.D, d_loss_fn, self.precision, self.augment), self.device)

        self.state = TrainState()
        self.snapshots = Snapshots(cfg, self.outdir, self.dataset, self.label_size, self.device)
        self.last_checkpoint: Optional[Path] = None
        self.resumed_from: Optional[Path] = None
        if resume is not None:
            self._load(resume)
        if self.is_main:
            atomic_write_bytes(self.outdir / "config.json", cfg.to_json().encode("utf-8"))

    # -- set-up ----------------------------------------------------------------------------------------------------
    def _open_dataset(self) -> ImageDataset:
        """One process per machine prepares the dataset cache, the others wait and then open it."""
        cfg = self.cfg

        def open_it(verbose: bool) -> ImageDataset:
            return ImageDataset(cfg.data, cfg.resolution, cache_dir=cfg.cache_dir, strict=cfg.strict_data,
                                glyphs_count=cfg.glyphs_count, verbose=verbose, glyphs_style=cfg.glyphs_style)

        dataset = open_it(self.progress) if self.dist.local_rank == 0 else None
        self.dist.barrier()
        return dataset if dataset is not None else open_it(False)

    def phase(self, images_shown: int) -> Phase:
        """The schedule at `images_shown`; the global minibatch is rounded down to a multiple of the rank count."""
        return phase_at(images_shown, self.cfg, world_size=self.dist.world_size)

    def _load(self, checkpoint: Checkpoint) -> None:
        path, payload = checkpoint.path, checkpoint.payload
        checkpoint.check_compatible(self.cfg)
        t = payload["training"]
        bad = [f"{net}.{name}" for net in ("G", "D", "G_ema") for name in nonfinite_tensors(payload[net])]
        if bad and not self.allow_nonfinite:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise ValueError(f"cannot resume from {path}: its weights hold NaN/Inf ({shown}); resume from an "
                             f"earlier checkpoint (--resume FILE) or pass --allow-nonfinite to continue anyway")
        if t["dataset_fingerprint"] != self.dataset.fingerprint:
            self.log(f"warning: resuming {path.name} on different data than it was trained on")
        if checkpoint.train_config.precision != self.cfg.precision:  # weights are float32 either way
            self.log(f"warning: resuming {path.name}, trained in {checkpoint.train_config.precision}, in "
                     f"{self.cfg.precision}")
        try:
            self.G.load_state_dict(payload["G"])
            self.D.load_state_dict(payload["D"])
            self.G_ema.load_state_dict(payload["G_ema"])
            self.opt_G.load_state_dict(t["opt_G"])
            self.opt_D.load_state_dict(t["opt_D"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"cannot resume from {path}: {str(e).splitlines()[0]}") from None
        self.state = TrainState.from_payload(payload)
        set_rng_states(t["rng"], self.device)
        self._load_augment_state(t.get("augment"))
        self.resumed_from = path
        self.log(f"Resumed from {path} at kimg {self.state.images_shown / 1000:.1f}, lod {t['lod']:.3f}")

    # -- the loop --------------------------------------------------------------------------------------------------
    def run(self, stop_at_images: Optional[int] = None) -> TrainResult:
        cfg, state = self.cfg, self.state
        if self.resumed_from is None and self.is_main:
            self.snapshots.save_reals()
        result = TrainResult(state.images_shown, self.phase(state.images_shown).lod, "done", None)
        loader: Optional[Iterator] = None
        loader_batch = -1
        stop = _StopFlag()
        logger = TickLogger(self.outdir, self.dist, self.device, cfg.total_kimg, state.images_shown / 1000,
                            self.progress, self.log)
        if self._lock is not None:
            self._lock.acquire()  # held since __init__, or taken again for a second run() of this Trainer
        with deterministic_algorithms(cfg.deterministic), stop.installed(), contextlib.closing(logger), \
                contextlib.ExitStack() as unlock:
            unlock.callback(self.close)
            while state.images_shown < cfg.total_images:
                phase = self._schedule()
                if phase.batch != loader_batch:
                    loader = make_loader(self.dataset, phase.batch // self.dist.world_size, start=state.consumed,
                                         seed=cfg.seed, workers=cfg.workers, rank=self.dist.rank,
                                         world_size=self.dist.world_size)
                    loader_batch = phase.batch
                logger.add(self.step(phase, loader), state.images_shown)
                result.trajectory.append((state.images_shown, phase.lod, phase.batch))
                result.lod = phase.lod
                done = state.images_shown >= cfg.total_images
                if done or state.images_shown >= state.tick_start_nimg + cfg.tick_kimg * 1000:
                    result.last_log = self._end_tick(phase, logger, done)
                interrupted = self.dist.any(stop.signum is not None, self.device)  # all ranks stop together
                if interrupted or (stop_at_images is not None and state.images_shown >= stop_at_images):
                    result.status = "interrupted" if interrupted else "stopped"
                    result.signal = stop.signum
                    break
            if result.trajectory and self.last_checkpoint != self.outdir / checkpoint_name(state.images_shown):
                self.save_checkpoint(result.lod)
        result.images_shown = state.images_shown
        result.checkpoint = self.last_checkpoint
        return result

    def _schedule(self) -> Phase:
        """The phase of the next minibatch (re-evaluated every minibatch_repeats minibatches, as official); at a
        level change the state at the boundary is checkpointed and Adam's moments are reset."""
        cfg, state = self.cfg, self.state
        if state.repeats_left <= 0:
            state.sched_nimg = state.images_shown
            state.repeats_left = cfg.minibatch_repeats
        state.repeats_left -= 1
        phase = self.phase(state.sched_nimg)
        if state.prev_lod is not None and is_level_change(state.prev_lod, phase.lod):
            self.save_checkpoint(phase.lod)
            if cfg.reset_opt_for_new_lod:
                self.opt_G.state.clear()
                self.opt_D.state.clear()
        state.prev_lod = phase.lod
        return phase

    def _end_tick(self, phase: Phase, logger: TickLogger, done: bool) -> Dict[str, Any]:
        """Log the tick; at snapshots (every snapshot_ticks ticks and at the end) also the SWD, a sample grid and
        a checkpoint. A tick whose losses are not finite is checkpointed and ends the run with FloatingPointError."""
        cfg, state = self.cfg, self.state
        state.cur_tick += 1
        tick_images = state.images_shown - state.tick_start_nimg
        state.tick_start_nimg = state.images_shown
        record = logger.end_tick(state.cur_tick, state.images_shown, tick_images, phase)
        if isinstance(self.augment, AdaPipeline):
            record["augment_p"] = self.augment.p
        snapshot = state.cur_tick % cfg.snapshot_ticks == 0 or done
        metric_keys: Tuple[str, ...] = ()
        if snapshot and self.is_main:
            with torch.random.fork_rng(devices=rng_devices(self.device)):  # what a snapshot draws never moves training
                record.update(self.snapshots.metrics(self.G_ema, phase))
                chosen = self.snapshots.chosen_metrics(self.G_ema, phase)
            metric_keys = tuple(k for k, v in chosen.items() if isinstance(v, float))
            record.update(chosen)
        logger.write(record, metric_keys)
        if not finite_losses(record):
            path = self.save_checkpoint(phase.lod)
            raise FloatingPointError(f"training diverged at kimg {record['kimg']}: losses are not finite "
                                     f"(last checkpoint {path.name}); try a lower learning rate")
        if snapshot:
            if self.is_main:
                with torch.random.fork_rng(devices=rng_devices(self.device)):
                    self.snapshots.save_fakes(self.G_ema, phase, state.images_shown)
            self.save_checkpoint(phase.lod)
        return record

    def step(self, phase: Phase, loader: Iterator) -> Dict[str, torch.Tensor]:
        """D_repeats D steps (each on a new real minibatch) then one G step; returns this rank's loss terms as
        detached tensors (no host synchronisation: TickLogger converts them once per tick).

        Images shown (the schedule's clock) count D's minibatches, as official training_loop.py (`cur_nimg +=
        minibatch` after each of the D_repeats D runs, none for the G run): one step adds D_repeats x batch, and
        the phase (lod, batch, learning rates) stays fixed for the whole step.

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
        self._set_D_trainable(True)
        d_terms: Dict[str, torch.Tensor] = {}
        for _ in range(cfg.D_repeats):
            reals_u8, labels = next(loader)
            self.state.consumed += B
            reals = box_downsample(to_float(reals_u8.to(dev)), phase.resolution)
            if cfg.mirror_augment:
                reals = random_mirror(reals, flip=rows(torch.rand(B) < 0.5))
            reals = fade_reals(reals, phase.lod)
            c_real = one_hot(labels, self.label_size).to(dev) if self.label_size else None
            z, z2, cut, noise = self._latents(B, phase)
            with torch.no_grad():
                fakes = self.precision.run(synthesize, self.G, z, c_real, z2, cut, noise, phase.lod)
            u = rows(torch.rand(B, device=dev)) if cfg.loss == "wgan-gp" else None  # gradient-penalty mixing
            loss_D, terms = self.D_loss(reals, fakes, c_real, phase.lod, u)
            self.opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            self._repair_grads(self.D)
            self.opt_D.step()
            if cfg.loss == "wgan":  # the original WGAN's Lipschitz constraint, after every critic update
                clip_weights_(self.D, cfg.wgan_clip)
            self._update_ema(ema_beta(B, cfg.G_smoothing_kimg))  # official: Gs update runs with each D step
            self.state.images_shown += B                        # official: cur_nimg += minibatch per D step
            if self.ada is not None:
                self.ada.add(terms["real_sign"])
            for k in ("loss", "penalty", "real_sign"):
                d_terms[k] = d_terms.get(k, 0.0) + terms[k] / cfg.D_repeats

        # G step.
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        c_fake = self._random_labels(B)
        z, z2, cut, noise = self._latents(B, phase)
        loss_G, g_terms = self.G_loss(z, c_fake, z2, cut, noise, phase.lod)
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self._repair_grads(self.G)
        self.opt_G.step()
        self._set_D_trainable(True)
        if self.ada is not None and self.ada.due():  # official: after the iteration, every ada_interval minibatches
            self.augment.p = self.ada.update(self.augment.p, B)
        return {"loss_G": g_terms["loss"], "loss_D": d_terms["loss"], "penalty": d_terms["penalty"],
                "ada_rt": d_terms["real_sign"]}

    def _repair_grads(self, net: torch.nn.Module) -> None:
        """The fp16 recipe: NaN/Inf in the gradients replaced before the step, as the official loop does instead
        of a loss scaler (stylegan/fp16_recipe.py); fp32 and bf16 (float32's range) are left exactly as they are."""
        if self.precision.name == "fp16":
            nan_to_num_grads_(net.parameters())

    def _set_D_trainable(self, trainable: bool) -> None:
        """requires_grad of D's parameters, except the Freeze-D ones, which never train."""
        for p in self.D.parameters():
            p.requires_grad_(trainable and id(p) not in self.D_frozen)

    def _load_augment_state(self, saved: Optional[Dict[str, Any]]) -> None:
        """The augmentation's p, generator and the controller's accumulated signs from a checkpoint (a checkpoint
        of a run without augmentation: this run's pipeline starts afresh)."""
        if self.augment is None:
            return
        if not saved:
            self.log("note: the checkpoint has no augmentation state; the augmentation starts afresh")
            return
        self.augment.load_state_dict(saved["pipeline"])
        if self.cfg.augment_p is not None and isinstance(self.augment, AdaPipeline):
            self.augment.p = self.cfg.augment_p  # --aug-p given on resume wins over the saved p
        if self.ada is not None and saved.get("ada") is not None:
            self.ada.load_state_dict(saved["ada"], self.device)

    # -- random inputs and running averages ------------------------------------------------------------------------
    def _random_labels(self, n: int) -> Optional[torch.Tensor]:
        """This rank's rows of labels for n fakes, drawn from the dataset's label distribution (official
        get_random_labels_tf)."""
        if not self.label_size:
            return None
        idx = self.dist.rows(torch.randint(len(self.dataset), (n,)))
        return one_hot(torch.from_numpy(self.dataset.labels)[idx], self.label_size).to(self.device)

    def _latents(self, n: int, phase: Phase) -> Tuple[torch.Tensor, Optional[torch.Tensor], int, Noise]:
        """(z, z2, crossover, noise maps): this rank's rows of the random inputs of n fakes.

        Drawn in the order of the official graph (z, style-mixing crossover, second z, per-layer noise) and always
        for the global batch, so the RNG stream does not depend on the number of ranks. z2 is None without mixing;
        noise maps are drawn for the layers that run at this lod (None above), as the network draws them.
        """
        cfg, dev, rows = self.cfg, self.device, self.dist.rows
        z = torch.randn(n, cfg.latent_size, device=dev)
        active = phase.num_active_layers
        cut = active
        z2 = None
        if cfg.style_mixing_prob > 0:
            cut = random_crossover_point(active, cfg.style_mixing_prob)
            if cut < active:
                z2 = rows(torch.randn_like(z))
        noise: Noise = None
        if self.G.config.use_noise:
            maps = self.G.synthesis.random_noise(n, active, dev)
            noise = [rows(m) for m in maps] + [None] * (self.G.synthesis.num_layers - active)
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
        """Everything a resume needs, as a weights_only-loadable payload (training/checkpoint.py)."""
        payload = self.state.to_payload({"G": self.G, "D": self.D, "G_ema": self.G_ema},
                                        {"G": self.opt_G, "D": self.opt_D}, self.cfg, lod, self.device,
                                        self.dist.world_size, self.dataset.fingerprint, self.dataset.num_channels,
                                        self.label_size)
        if self.augment is not None:
            payload["training"]["augment"] = {"pipeline": self.augment.state_dict(),
                                              "ada": None if self.ada is None else self.ada.state_dict()}
        return payload

    def save_checkpoint(self, lod: float) -> Path:
        """Every rank calls this (it first checks that all ranks hold the same weights); rank 0 writes."""
        self.dist.check_in_sync({"G": self.G, "D": self.D, "G_ema": self.G_ema}, self.device)
        path = self.outdir / checkpoint_name(self.state.images_shown)
        if self.is_main:
            atomic_torch_save(self.checkpoint_payload(lod), path, log=self.log)
            prune_checkpoints(self.outdir, self.cfg.keep_checkpoints, protect=path)
        self.last_checkpoint = path
        return path


def train(cfg: TrainConfig, resume: Optional[str] = None, impl: str = "auto", progress: bool = True,
          stop_at_images: Optional[int] = None, log: Callable[[str], None] = print,
          dist: Optional[DistContext] = None, device: Optional[str] = None) -> TrainResult:
    """Run (or resume) training as configured; returns where it ended. ValueError for bad data/options."""
    trainer = Trainer(cfg, resume=resume, impl=impl, progress=progress, log=log, dist=dist, device=device)
    return trainer.run(stop_at_images=stop_at_images)
