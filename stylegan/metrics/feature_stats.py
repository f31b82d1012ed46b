"""Feature statistics of an image set and how the sets are fed, split across processes and cached.

Why one module: every Inception/VGG16 metric does the same thing (images in batches -> the feature network -> a
running mean/covariance or all features), and the real images' statistics are the expensive, reusable half, so
they are cached on disk under a key of everything that determines them.

Ordering rule: items are processed in global batches of a fixed size; under torchrun rank r takes batches
r, r + W, ...; the features are gathered and fed to the statistics in batch order, so K processes give the numbers
of one process bit for bit (same batches, same order of floating-point sums).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..atomic_write import atomic_write_bytes
from ..cache_dirs import cache_subdir

STATS_VERSION = 1  # bump when what is stored changes, so old cache files are not reused


class FeatureStats:
    """Running float64 sums of features for mean and (population) covariance, and optionally every feature.

    As NVlabs stylegan2-ada-pytorch `metric_utils.FeatureStats`: cov = sum(x x^T) / N - mean mean^T.
    """

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False) -> None:
        self.capture_all, self.capture_mean_cov = capture_all, capture_mean_cov
        self.num_items = 0
        self.num_features: Optional[int] = None
        self._all: List[np.ndarray] = []
        self._sum: Optional[np.ndarray] = None
        self._sum_outer: Optional[np.ndarray] = None

    def append(self, features: np.ndarray) -> None:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"features of shape {list(x.shape)}: expected [N, D]")
        if self.num_features is None:
            self.num_features = x.shape[1]
        elif x.shape[1] != self.num_features:
            raise ValueError(f"features with {x.shape[1]} dimensions after {self.num_features}")
        self.num_items += x.shape[0]
        if self.capture_all:
            self._all.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            if self._sum is None:
                self._sum = np.zeros(x.shape[1], np.float64)
                self._sum_outer = np.zeros((x.shape[1], x.shape[1]), np.float64)
            self._sum += x64.sum(axis=0)
            self._sum_outer += x64.T @ x64

    def all(self) -> np.ndarray:
        """Every feature [N, D] in order (capture_all)."""
        if not self.capture_all:
            raise ValueError("these statistics were collected without capture_all")
        return np.concatenate(self._all) if self._all else np.zeros((0, self.num_features or 0), np.float32)

    def mean_cov(self) -> Tuple[np.ndarray, np.ndarray]:
        """(mean [D], population covariance [D, D]) in float64 (capture_mean_cov)."""
        if not self.capture_mean_cov or self._sum is None or self.num_items < 1:
            raise ValueError("these statistics hold no mean/covariance (no items, or capture_mean_cov off)")
        mean = self._sum / self.num_items
        return mean, self._sum_outer / self.num_items - np.outer(mean, mean)

    def to_bytes(self) -> bytes:
        import io

        arrays: Dict[str, Any] = {"num_items": np.int64(self.num_items)}
        if self.capture_all:
            arrays["all"] = self.all()
        if self.capture_mean_cov and self._sum is not None:
            arrays["sum"], arrays["sum_outer"] = self._sum, self._sum_outer
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_file(cls, path: Path, capture_all: bool, capture_mean_cov: bool) -> "FeatureStats":
        with np.load(path) as data:
            stats = cls(capture_all, capture_mean_cov)
            stats.num_items = int(data["num_items"])
            if capture_all:
                stats._all = [np.array(data["all"])]
                stats.num_features = stats._all[0].shape[1]
            if capture_mean_cov:
                stats._sum, stats._sum_outer = np.array(data["sum"]), np.array(data["sum_outer"])
                stats.num_features = stats._sum.shape[0]
        return stats


def metrics_cache_dir() -> Path:
    """The package cache's `metrics` folder (stylegan/cache_dirs.py): cached real-image statistics."""
    return cache_subdir("metrics")


def stats_cache_key(**parts: Any) -> str:
    """File name of cached statistics: a hash of everything that determines them (dataset fingerprint, feature
    network hash, call, item count, what is captured)."""
    text = json.dumps({"version": STATS_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + ".npz"


# ---------------------------------------------------------------------------------------------------------------
# Processes: one by default; under torchrun the initialised default group.

class Processes:
    """This process's rank and the world size, and the gather the statistics need (all ranks call it)."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.rank, self.world_size = rank, world_size

    @classmethod
    def current(cls) -> "Processes":
        """The torch.distributed default group if one is initialised, else one process."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return cls(torch.distributed.get_rank(), torch.distributed.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def my_batches(self, num_batches: int) -> range:
        return range(self.rank, num_batches, self.world_size)

    def agree(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a decision all ranks must share, such as "the cache has it")."""
        if self.world_size > 1:
            box = [value]
            torch.distributed.broadcast_object_list(box, src=0)
            return box[0]
        return value

    def gather(self, items: List[Tuple[int, np.ndarray]]) -> List[Tuple[int, np.ndarray]]:
        """Every rank's (batch index, features) pairs, sorted by batch index (all ranks get all of them)."""
        if self.world_size > 1:
            parts: List[Any] = [None] * self.world_size
            torch.distributed.all_gather_object(parts, items)
            items = [item for part in parts for item in part]
        return sorted(items, key=lambda item: item[0])


def num_batches(num_items: int, batch: int) -> int:
    return (num_items + batch - 1) // batch


def collect_features(make_batch: Callable[[int], torch.Tensor], num_items: int, batch: int,
                     extract: Callable[[torch.Tensor], torch.Tensor], capture_all: bool, capture_mean_cov: bool,
                     processes: Optional[Processes] = None,
                     progress: Optional[Callable[[int], None]] = None) -> FeatureStats:
    """FeatureStats of `num_items` items: `make_batch(b)` returns the images of global batch b (items
    b*batch .. min((b+1)*batch, num_items)); `extract(images)` their features. This rank computes its batches,
    then every rank gets the statistics of all of them, in batch order."""
    processes = processes or Processes.current()
    mine: List[Tuple[int, np.ndarray]] = []
    for b in processes.my_batches(num_batches(num_items, batch)):
        with torch.no_grad():
            features = extract(make_batch(b))
        mine.append((b, features.detach().to("cpu", torch.float32).numpy()))
        if progress is not None:
            progress(features.shape[0] * processes.world_size)
    stats = FeatureStats(capture_all, capture_mean_cov)
    for _, features in processes.gather(mine):
        stats.append(features)
    return stats


def cached_stats(path: Optional[Path], compute: Callable[[], FeatureStats], capture_all: bool,
                 capture_mean_cov: bool, processes: Optional[Processes] = None) -> Tuple[FeatureStats, bool]:
    """(statistics, True if read from the cache): read `path` when it exists, else compute and (rank 0) store it
    atomically. A damaged cache file is recomputed and replaced."""
    processes = processes or Processes.current()
    cached = None
    if path is not None and path.is_file():
        try:
            cached = FeatureStats.from_file(path, capture_all, capture_mean_cov)
        except (OSError, ValueError, KeyError):
            pass  # damaged or from another layout: recompute below
    if processes.agree(cached is not None):  # every rank computes (its share) unless rank 0 found the file
        if cached is None:
            cached = FeatureStats.from_file(path, capture_all, capture_mean_cov)
        return cached, True
    stats = compute()
    if path is not None and processes.is_main:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, stats.to_bytes())
        except OSError:
            pass  # an unwritable cache only costs the next run the time to recompute
    return stats, False


def as_rgb_u8(img: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW images as the feature networks take them: 1 channel repeated to 3 (official); 4 channels (RGBA)
    lose the alpha channel; anything else is a ValueError."""
    if img.dtype != torch.uint8 or img.ndim != 4:
        raise ValueError(f"images of dtype {img.dtype} and shape {list(img.shape)}: expected uint8 [N, C, H, W]")
    if img.shape[1] == 1:
        return img.repeat(1, 3, 1, 1)
    if img.shape[1] == 4:
        return img[:, :3]
    if img.shape[1] != 3:
        raise ValueError(f"images with {img.shape[1]} channels: the feature networks take 1, 3 or 4 (RGBA)")
    return img


