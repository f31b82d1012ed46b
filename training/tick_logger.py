"""One tick of training as one log record: the JSONL line, the TensorBoard scalars, the status line, the progress bar.

Why one class: it is the only place where logged tensors become Python numbers. Each step hands over its loss terms
as detached tensors (no host synchronisation); at the end of a tick they are stacked and copied to the host once,
averaged over the tick and over ranks. On a GPU that keeps the training step free of host syncs between ticks.
"""
from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Union

import torch

from .distributed import DistContext
from .schedule import Phase

Scalar = Union[float, torch.Tensor]
LOGGED_TERMS = ("loss_G", "loss_D", "penalty")   # what a training step reports
TENSORBOARD_KEYS = LOGGED_TERMS + ("lod", "sec_per_kimg", "img_per_s", "rss_MiB", "peak_MiB", "swd_avg",
                                   "augment_p", "ada_rt")


def rss_mib() -> float:
    """This process's current resident memory (host RAM) in MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return float("nan")


def peak_mib(device: torch.device) -> float:
    """Peak memory in MiB: allocated on the CUDA device, else the process's peak resident memory (ru_maxrss; the
    kernel updates it lazily, so it is never reported below the current RSS)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_mib())  # ru_maxrss: KiB on Linux


class TickLogger:
    """Collects a tick's steps and writes its record (rank 0 writes; every rank joins the rank average)."""

    def __init__(self, outdir: Path, dist: DistContext, device: torch.device, total_kimg: float,
                 initial_kimg: float, progress: bool, log: Callable[[str], None]) -> None:
        self.log_path = outdir / "log.jsonl"
        self.dist = dist
        self.device = device
        self.log = log
        self.steps: List[Dict[str, Scalar]] = []
        self.tick_time = time.time()
        self.bar = None
        self.writer = None
        if dist.is_main:
            self.writer = _tensorboard(outdir)
            if progress:
                from tqdm import tqdm
                self.bar = tqdm(total=total_kimg, initial=initial_kimg, unit="kimg", dynamic_ncols=True,
                                leave=False, file=sys.stderr,
                                bar_format="{l_bar}{bar}| {n:.2f}/{total:g} kimg [{elapsed}<{remaining}, "
                                           "{rate_fmt}]")

    def add(self, terms: Dict[str, Scalar], images_shown: int) -> None:
        """One step's terms (tensors stay on their device until the tick ends)."""
        self.steps.append(terms)
        if self.bar is not None:
            self.bar.update(min(images_shown / 1000, self.bar.total) - self.bar.n)

    def _means(self) -> Dict[str, float]:
        """Tick means of every term: one host copy for all steps, then the average over ranks."""
        n = max(len(self.steps), 1)
        sums: Dict[str, float] = {}
        extra = [k for k in (self.steps[0] if self.steps else {}) if k not in LOGGED_TERMS]  # e.g. ada_rt
        for k in (*LOGGED_TERMS, *extra):
            values = [s[k] for s in self.steps]
            tensors = [torch.as_tensor(v, dtype=torch.float64, device=self.device).reshape(()) for v in values]
            sums[k] = sum(torch.stack(tensors).tolist()) if tensors else 0.0
        sums = self.dist.mean_of(sums, self.device)
        return {k: v / n for k, v in sums.items()}

    def end_tick(self, tick: int, images_shown: int, tick_images: int, phase: Phase) -> Dict[str, Any]:
        """The tick's record: its mean terms, speed and memory (every rank calls this: it averages over ranks)."""
        now = time.time()
        dt = max(now - self.tick_time, 1e-9)
        self.tick_time = now
        tick_kimg = tick_images / 1000
        record: Dict[str, Any] = {
            "tick": tick, "kimg": round(images_shown / 1000, 3), "images_shown": images_shown,
            "lod": round(phase.lod, 5), "resolution": phase.resolution, "batch": phase.batch,
            "lr_G": phase.lr_G, "lr_D": phase.lr_D, **self._means(),
            "sec_per_kimg": dt / max(tick_kimg, 1e-9), "img_per_s": tick_kimg * 1000 / dt,
            "rss_MiB": round(rss_mib(), 1), "peak_MiB": round(peak_mib(self.device), 1), "time": now,
        }
        self.steps = []
        return record

    def write(self, record: Dict[str, Any], metric_keys: Sequence[str] = ()) -> None:
        """Rank 0: append the record to log.jsonl, add its TensorBoard scalars (the training terms and the snapshot
        metrics `metric_keys`), print the status line."""
        if not self.dist.is_main:
            return
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k in TENSORBOARD_KEYS:
                if k in record:
                    self.writer.add_scalar(f"train/{k}", record[k], record["images_shown"])
            for k in metric_keys:
                self.writer.add_scalar(f"metrics/{k}", record[k], record["images_shown"])
            self.writer.flush()
        self._status(record, metric_keys)

    def _status(self, r: Dict[str, Any], metric_keys: Sequence[str] = ()) -> None:
        line = (f"kimg {r['kimg']:8.1f}  res {r['resolution']:4d}  lod {r['lod']:5.2f}  batch {r['batch']:3d}  "
                f"loss_G {r['loss_G']:8.3f}  loss_D {r['loss_D']:8.3f}  penalty {r['penalty']:7.3f}  "
                f"sec/kimg {r['sec_per_kimg']:7.1f}  img/s {r['img_per_s']:6.1f}  peak {r['peak_MiB']:.0f} MiB")
        if "augment_p" in r:
            line += f"  p {r['augment_p']:.3f}  r_t {r['ada_rt']:.2f}"
        if "swd_avg" in r:
            line += f"  swd {r['swd_avg']:.2f}"
        for k in metric_keys:
            line += f"  {k} {r[k]:.4g}"
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def finite_losses(record: Dict[str, Any]) -> bool:
    """False when a tick's mean losses hold a NaN or an infinity (the run diverged)."""
    return all(math.isfinite(record[k]) for k in LOGGED_TERMS)


def _tensorboard(outdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard is optional
        return None
    return SummaryWriter(str(outdir))
