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
from .checkpoint import (atomic_torch_save, checkpoint_name, get_rng_states, load_checkpoint, prune_checkpoints,
                         set_rng_states)
from .config import TrainConfig
from .dataset import ImageDataset, check_enough_images, downsample_to, make_loader, random_mirror, to_float
from .losses import get_loss
from .schedule import Phase, ema_beta, fade_reals, is_level_change, mixing_cutoff, phase_at

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
                           dlatent_avg_beta=cfg.dlatent_avg_beta, style_mixing_prob=cfg.style_mixing_prob)
    dcfg = DiscriminatorConfig(resolution=cfg.resolution, num_channels=num_channels, label_size=label_size,
                               fmap_base=cfg.fmap_base, fmap_max=cfg.fmap_max)
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
                 log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        self.progress = progress
        self.device = _resolve_device(cfg.device)
        self.outdir = Path(cfg.outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)
        import random as _random
        _random.seed(cfg.seed)

        self.dataset = ImageDataset(cfg.data, cfg.resolution, cache_dir=cfg.cache_dir, strict=cfg.strict_data,
                                    glyphs_count=cfg.glyphs_count, verbose=progress)
        max_batch = max(phase_at(n, cfg).batch for n in self._level_starts())
        check_enough_images(len(self.dataset), max_batch, cfg.data)
        self._check_batches()
        if cfg.cond and self.dataset.num_classes < 1:
            raise ValueError(f"--cond needs class labels, but dataset {cfg.data!r} has none "
                             f"(add a dataset.json with labels)")
        self.label_size = self.dataset.num_classes if cfg.cond else 0

        self.G, self.D, self.G_ema = build_networks(cfg, self.dataset.num_channels, self.label_size, impl)
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.G_lrate_base, betas=(cfg.G_beta1, cfg.G_beta2),
                                      eps=cfg.adam_epsilon)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.D_lrate_base, betas=(cfg.D_beta1, cfg.D_beta2),
                                      eps=cfg.adam_epsilon)
        self.g_loss_fn, self.d_loss_fn = get_loss(cfg.loss, cfg.wgan_lambda, cfg.r1_gamma)

        # Progress state (all of it goes into checkpoints).
        self.images_shown = 0
        self.consumed = 0            # samples drawn from the data stream (= images_shown with one rank)
        self.prev_lod: Optional[float] = None
        self.sched_nimg = 0          # images_shown at which the current schedule was evaluated
        self.repeats_left = 0        # minibatches left before the schedule is evaluated again
        self.cur_tick = 0
        self.tick_start_nimg = 0
        self.resumed_from: Optional[Path] = None

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

    def _check_batches(self) -> None:
        """D's minibatch-stddev needs batch % min(4, batch) == 0 (official group size 4): say so up front."""
        for n in self._level_starts():
            p = phase_at(n, self.cfg)
            g = min(4, p.batch)
            if p.batch % g:
                raise ValueError(f"minibatch {p.batch} at {p.resolution}px is not divisible by the minibatch-stddev "
                                 f"group size {g}; use a multiple of 4 (or 1-3)")

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(labels.long(), self.label_size).float()

    def _write_config(self) -> None:
        atomic_write_bytes(self.outdir / "config.json", self.cfg.to_json().encode("utf-8"))

    def _random_labels(self, n: int) -> Optional[torch.Tensor]:
        """Labels for G's fakes: drawn from the dataset's label distribution (official get_random_labels_tf)."""
        if not self.label_size:
            return None
        idx = torch.randint(len(self.dataset), (n,))
        return self._one_hot(torch.from_numpy(self.dataset.labels)[idx]).to(self.device)

    def _generate(self, z: torch.Tensor, c: Optional[torch.Tensor], phase: Phase, update_w_avg: bool) -> torch.Tensor:
        """G's training forward: mapping -> (w_avg update) -> style-mixing regularisation -> synthesis."""
        G = self.G
        ws = G.mapping(z, c)
        if update_w_avg:
            G.update_w_avg(ws, self.cfg.dlatent_avg_beta)
        if self.cfg.style_mixing_prob > 0:
            cut = mixing_cutoff(phase.num_active_layers, self.cfg.style_mixing_prob)
            if cut < phase.num_active_layers:
                z2 = torch.randn_like(z)
                ws = G.mix(ws, G.mapping(z2, c), cut)
        return G.synthesis(ws, lod=phase.lod, noise_mode="random")

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
            "rng": get_rng_states(),
            "train_config": self.cfg.to_json(),
            "dataset_fingerprint": self.dataset.fingerprint,
            "label_size": self.label_size,
            "num_channels": self.dataset.num_channels,
        }
        return payload

    def save_checkpoint(self, lod: float) -> Path:
        path = atomic_torch_save(self.checkpoint_payload(lod), self.outdir / checkpoint_name(self.images_shown))
        prune_checkpoints(self.outdir, self.cfg.keep_checkpoints)
        return path

    def _load(self, spec: str) -> None:
        from .checkpoint import find_checkpoint

        path = find_checkpoint(spec, self.outdir)
        ck = load_checkpoint(path)
        t = ck["training"]
        saved = TrainConfig.from_json(t["train_config"])
        for name in ("resolution", "fmap_base", "fmap_max", "latent_size", "dlatent_size", "mapping_layers",
                     "mapping_fmaps", "cond", "lod_initial_resolution"):
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
        set_rng_states(t["rng"])
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
        writer = self._tensorboard()
        log_path = self.outdir / "log.jsonl"
        if self.resumed_from is None:
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
        phase = phase_at(self.images_shown, cfg)
        try:
            while self.images_shown < total:
                if self.repeats_left <= 0:  # official minibatch_repeats: schedule fixed for that many minibatches
                    self.sched_nimg = self.images_shown
                    self.repeats_left = cfg.minibatch_repeats
                phase = phase_at(self.sched_nimg, cfg)
                if is_level_change(self.prev_lod, phase.lod) and self.prev_lod is not None:
                    last_ckpt = self.save_checkpoint(phase.lod)   # state at the boundary, before the reset
                    if cfg.reset_opt_for_new_lod:
                        self.opt_G.state.clear()
                        self.opt_D.state.clear()
                self.prev_lod = phase.lod
                if phase.batch != loader_batch:
                    loader = make_loader(self.dataset, phase.batch, start=self.consumed, seed=cfg.seed,
                                         workers=cfg.workers)
                    loader_batch = phase.batch
                terms = self._step(phase, loader)
                self.repeats_left -= 1
                trajectory.append((self.images_shown, phase.lod, phase.batch))
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if bar is not None:
                    bar.update(phase.batch / 1000)

                done = self.images_shown >= total
                interrupted = stop.signum is not None
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
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                if writer is not None:
                    for k in ("lod", "loss_G", "loss_D", "penalty", "sec_per_kimg", "img_per_s", "mem_MiB"):
                        writer.add_scalar(f"train/{k}", record[k], self.images_shown)
                    writer.flush()
                line = (f"kimg {record['kimg']:8.1f}  res {phase.resolution:4d}  lod {phase.lod:5.2f}  "
                        f"batch {phase.batch:3d}  loss_G {record['loss_G']:8.3f}  loss_D {record['loss_D']:8.3f}  "
                        f"penalty {record['penalty']:7.3f}  sec/kimg {record['sec_per_kimg']:7.1f}  "
                        f"img/s {record['img_per_s']:6.1f}  mem {record['mem_MiB']:.0f} MiB")
                if bar is not None:
                    bar.write(line, file=sys.stdout)
                else:
                    self.log(line)
                last_log = record
                if not all(math.isfinite(record[k]) for k in ("loss_G", "loss_D", "penalty")):
                    last_ckpt = self.save_checkpoint(phase.lod)
                    raise FloatingPointError(f"training diverged at kimg {record['kimg']}: losses are not finite "
                                             f"(last checkpoint {last_ckpt.name}); try a lower learning rate")
                if self.cur_tick % cfg.snapshot_ticks == 0 or done:
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
        """D_repeats D steps (each on a new real minibatch) then one G step; returns logged scalars."""
        cfg, dev = self.cfg, self.device
        for g in self.opt_G.param_groups:
            g["lr"] = phase.lr_G
        for g in self.opt_D.param_groups:
            g["lr"] = phase.lr_D
        B = phase.batch

        def D_on(c: Optional[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
            return lambda img: self.D(img, c, phase.lod)

        # D steps: fakes conditioned on the reals' labels (official D losses).
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        d_sum: Dict[str, float] = {}
        for _ in range(cfg.D_repeats):
            reals_u8, labels = next(loader)
            self.consumed += B
            reals = downsample_to(to_float(reals_u8.to(dev)), phase.resolution)
            if cfg.mirror_augment:
                reals = random_mirror(reals)
            reals = fade_reals(reals, phase.lod)
            c_real = self._one_hot(labels).to(dev) if self.label_size else None
            with torch.no_grad():
                fakes = self._generate(torch.randn(B, cfg.latent_size, device=dev), c_real, phase,
                                       update_w_avg=False)
            loss_D, d_terms = self.d_loss_fn(D_on(c_real), reals, fakes)
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
        fakes = self._generate(torch.randn(B, cfg.latent_size, device=dev), c_fake, phase, update_w_avg=True)
        loss_G, g_terms = self.g_loss_fn(D_on(c_fake), fakes)
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
          stop_at_images: Optional[int] = None, log: Callable[[str], None] = print) -> TrainResult:
    """Run (or resume) training as configured; returns where it ended. ValueError for bad data/options."""
    trainer = Trainer(cfg, resume=resume, impl=impl, progress=progress, log=log)
    return trainer.run(stop_at_images=stop_at_images)
