"""Compute a metric by its protocol: images -> feature network -> statistics -> the number.

Why here and not in the CLI: `stylegan metrics`, the training loop's snapshot metrics and the Python API all call
`compute_metric`, so a number means the same wherever it was made. Real images arrive as `RealImages` (a dataset's
uint8 array, its labels and fingerprint), fakes as `GeneratedImages` (seeded per batch) or as another RealImages
(two folders).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import torch
from tqdm import tqdm

from ..feature_nets import FeatureNet, load_feature_net
from ..precision import FP32, Precision
from .evaluation import box_downsample_u8, swd_for_generator
from .feature_stats import (FeatureStats, Processes, as_rgb_u8, cached_stats, collect_features, metrics_cache_dir,
                            stats_cache_key)
from .frechet import frechet_distance
from .generated import STREAM_PATH, GeneratedImages, batch_generator, draw_labels, draw_noise
from .inception_score import inception_score
from .kernel_distance import kernel_distance
from .path_length import PathLengthBatch, filtered_mean, path_distances
from .precision_recall import precision_recall
from .protocols import Protocol

DETECTOR_BATCH = 64   # images per feature-network call (the official batch_size)
PPL_BATCH = 2         # samples per PPL batch (official): one noise draw is shared by a batch's 4 images


@dataclass(frozen=True)
class RealImages:
    """A set of real (or folder) images: uint8 NHWC array `images`, optional int labels, a fingerprint that
    identifies the content, and the resolution the metric wants (box-downsampled from the stored one)."""

    images: Any
    labels: Optional[np.ndarray]
    fingerprint: str
    resolution: int
    name: str = "reals"

    @classmethod
    def of(cls, dataset: Any, resolution: Optional[int] = None, name: str = "reals") -> "RealImages":
        """From a training.dataset.ImageDataset (or anything with .images, .labels, .fingerprint)."""
        stored = int(dataset.images.shape[1])
        resolution = stored if resolution is None else int(resolution)
        if resolution > stored or stored % resolution:
            raise ValueError(f"{name}: cannot compare at {resolution} px images stored at {stored} px")
        return cls(dataset.images, getattr(dataset, "labels", None), str(dataset.fingerprint), resolution, name)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, b: int, batch: int, count: int) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.images[b * batch:min((b + 1) * batch, count)]))  # a copy of the memmap
        return box_downsample_u8(x.permute(0, 3, 1, 2).contiguous(), self.resolution)


@dataclass
class MetricOptions:
    """Everything besides the images that decides a metric's number (or where its inputs come from)."""

    inception: Optional[str] = None     # path or URL of inception-2015-12-05.pt (None: the official URL)
    vgg16: Optional[str] = None         # path or URL of vgg16.pt (None: the official URL)
    seed: int = 0
    psi: float = 1.0
    lod: float = 0.0
    batch: int = DETECTOR_BATCH
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    allow_fewer: bool = False           # legacy protocols: run with fewer reals than they ask for
    ppl_crop: bool = False              # PPL: the paper's FFHQ face crop
    min_resolution: int = 16            # SWD: smallest pyramid level (the protocol's 16 px)
    cache_dir: Optional[Path] = None    # real statistics (None: metrics_cache_dir())
    use_cache: bool = True
    progress: bool = False
    processes: Optional[Processes] = None
    precision: Precision = FP32         # the fakes' synthesis (FID/KID/PR/IS/SWD); PPL always runs in float32


@dataclass(frozen=True)
class MetricResult:
    """A metric's numbers (official result keys, e.g. {'pr50k3_full_precision': .., 'pr50k3_full_recall': ..})."""

    protocol: Protocol
    results: Dict[str, float]
    num_gen: int
    num_real: int
    seconds: float
    detector: Optional[FeatureNet] = None
    details: Dict[str, Any] = field(default_factory=dict)
    reals_from_cache: bool = False

    @property
    def name(self) -> str:
        return self.protocol.name

    def to_json(self) -> Dict[str, Any]:
        p = self.protocol
        out: Dict[str, Any] = {
            "name": p.name, "results": self.results, "official_protocol": p.official,
            "protocol": {"kind": p.kind, "num_gen": p.num_gen, "max_real": p.max_real, "registry_name": p.registry_name,
                         **({"space": p.space, "sampling": p.sampling} if p.kind == "ppl" else {})},
            "num_gen": self.num_gen, "num_real": self.num_real, "seconds": round(self.seconds, 3),
            "reals_from_cache": self.reals_from_cache,
        }
        if self.detector is not None:
            out["detector"] = {"kind": self.detector.kind, "file": str(self.detector.path),
                               "sha256": self.detector.sha256}
        if self.details:
            out["details"] = self.details
        return out


class _Bar:
    """One tqdm bar per phase, shown only when asked and only on rank 0."""

    def __init__(self, total: int, desc: str, show: bool) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="img", leave=False, disable=not show)

    def __call__(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _collect(desc: str, total: int, make_batch: Callable[[int], torch.Tensor], extract: Callable, batch: int,
             capture_all: bool, capture_mean_cov: bool, opts: MetricOptions) -> FeatureStats:
    processes = opts.processes or Processes.current()
    bar = _Bar(total, desc, opts.progress and processes.is_main)
    try:
        return collect_features(make_batch, total, batch, extract, capture_all, capture_mean_cov, processes, bar)
    finally:
        bar.close()


def _num_real(protocol: Protocol, reals: RealImages, opts: MetricOptions) -> int:
    available = len(reals)
    if protocol.max_real is None:
        return available
    if protocol.exact_reals and available < protocol.max_real and not opts.allow_fewer:
        raise ValueError(f"{protocol.name} uses {protocol.max_real} real images but {reals.name} has {available}; "
                         f"pass --allow-fewer to run it with all {available} (the number is then not comparable), "
                         f"or use the _full protocol")
    return min(available, protocol.max_real)


def _detector(protocol: Protocol, opts: MetricOptions) -> FeatureNet:
    source = opts.inception if protocol.detector == "inception" else opts.vgg16
    return load_feature_net(source, protocol.detector, opts.device, progress=opts.progress)


def _fakes_stats(protocol: Protocol, fakes: Union[GeneratedImages, RealImages], extract: Callable, capture_all: bool,
                 capture_mean_cov: bool, opts: MetricOptions) -> FeatureStats:
    if isinstance(fakes, GeneratedImages):
        return _collect(f"{protocol.name}: fakes", fakes.num, lambda b: as_rgb_u8(fakes.images(b)), extract,
                        fakes.batch, capture_all, capture_mean_cov, opts)
    n = len(fakes)
    return _collect(f"{protocol.name}: {fakes.name}", n, lambda b: as_rgb_u8(fakes.batch(b, opts.batch, n)),
                    extract, opts.batch, capture_all, capture_mean_cov, opts)


def _reals_stats(protocol: Protocol, reals: RealImages, net: FeatureNet, call: str, extract: Callable,
                 capture_all: bool, capture_mean_cov: bool, opts: MetricOptions):
    n = _num_real(protocol, reals, opts)
    path = None
    if opts.use_cache:
        key = stats_cache_key(data=reals.fingerprint, resolution=reals.resolution, detector=net.sha256, call=call,
                              num=n, capture_all=capture_all, capture_mean_cov=capture_mean_cov)
        path = (opts.cache_dir or metrics_cache_dir()) / key
    stats, from_cache = cached_stats(
        path, lambda: _collect(f"{protocol.name}: {reals.name}", n, lambda b: as_rgb_u8(reals.batch(b, opts.batch, n)),
                               extract, opts.batch, capture_all, capture_mean_cov, opts),
        capture_all, capture_mean_cov, opts.processes)
    return stats, n, from_cache


def _feature_metric(protocol: Protocol, fakes: Union[GeneratedImages, RealImages], reals: Optional[RealImages],
                    opts: MetricOptions) -> MetricResult:
    start = time.perf_counter()
    net = _detector(protocol, opts)
    kind = protocol.kind
    if kind == "is":
        stats = _fakes_stats(protocol, fakes, net.probabilities, True, False, opts)
        mean, std = inception_score(stats.all())
        return MetricResult(protocol, {f"{protocol.name}_mean": mean, f"{protocol.name}_std": std}, stats.num_items,
                            0, time.perf_counter() - start, net)
    if reals is None:
        raise ValueError(f"{protocol.name} compares with real images: give a dataset")
    capture_all, capture_mean_cov = kind != "fid", kind == "fid"
    real_stats, num_real, from_cache = _reals_stats(protocol, reals, net, "features", net.features, capture_all,
                                                    capture_mean_cov, opts)
    gen_stats = _fakes_stats(protocol, fakes, net.features, capture_all, capture_mean_cov, opts)
    if kind == "fid":
        results = {protocol.name: frechet_distance(*gen_stats.mean_cov(), *real_stats.mean_cov())}
    elif kind == "kid":
        results = {protocol.name: kernel_distance(gen_stats.all(), real_stats.all(), seed=opts.seed)}
    else:
        pr = precision_recall(torch.from_numpy(gen_stats.all()), torch.from_numpy(real_stats.all()))
        results = {f"{protocol.name}_{k}": v for k, v in pr.items()}
    return MetricResult(protocol, results, gen_stats.num_items, num_real, time.perf_counter() - start, net,
                        reals_from_cache=from_cache)


def _path_length(protocol: Protocol, G: torch.nn.Module, label_pool: Optional[np.ndarray],
                 opts: MetricOptions) -> MetricResult:
    start = time.perf_counter()
    net = _detector(protocol, opts)
    num = int(protocol.num_gen)

    def make_batch(b: int) -> PathLengthBatch:
        n = min(PPL_BATCH, num - b * PPL_BATCH)
        g = batch_generator(opts.seed, STREAM_PATH, b)
        z = torch.randn(2 * n, int(G.config.latent_size), generator=g)
        return PathLengthBatch(z0=z[:n], z1=z[n:], t=torch.rand(n, generator=g),
                               c=draw_labels(G, n, label_pool, g), noise=draw_noise(G, 1, g))

    def extract(batch: PathLengthBatch) -> torch.Tensor:
        with torch.no_grad():
            d = path_distances(G, net.lpips_features, batch, protocol.space, protocol.sampling, crop=opts.ppl_crop,
                               lod=opts.lod)
        return d[:, None]

    stats = _collect(f"{protocol.name}: samples", num, make_batch, extract, PPL_BATCH, True, False, opts)
    dist = stats.all()[:, 0]
    if not np.isfinite(dist).all():
        raise ValueError(f"{protocol.name}: {int((~np.isfinite(dist)).sum())} path lengths are not finite "
                         f"(does the generator produce NaN?)")
    return MetricResult(protocol, {protocol.name: filtered_mean(dist)}, len(dist), 0, time.perf_counter() - start,
                        net, details={"epsilon": 1e-4, "crop": opts.ppl_crop})


def compute_metric(protocol: Protocol, G: Optional[torch.nn.Module] = None, reals: Optional[RealImages] = None,
                   fakes: Optional[RealImages] = None, opts: Optional[MetricOptions] = None) -> MetricResult:
    """The metric `protocol` of generator G (or of the folder `fakes`) against `reals`.

    Generated images: `protocol.num_gen` of G at opts.psi / opts.lod, latents seeded by opts.seed, labels drawn
    from the reals' labels. Feature networks come from opts.inception / opts.vgg16 (paths or URLs).
    """
    opts = opts or MetricOptions()
    kind = protocol.kind
    if protocol.needs_reals and reals is None:
        raise ValueError(f"{protocol.name} compares with real images: give a dataset")
    if fakes is not None:
        return _feature_metric(protocol, fakes, reals, opts)
    if G is None:
        raise ValueError(f"{protocol.name}: give a generator or a folder of fakes")
    label_pool = None if reals is None else reals.labels
    if kind in ("fid", "kid", "pr", "is"):
        gen = GeneratedImages(G, int(protocol.num_gen), opts.batch, opts.seed, opts.psi, opts.lod, label_pool,
                              opts.precision)
        return _feature_metric(protocol, gen, reals, opts)
    if kind == "ppl":
        return _path_length(protocol, G, label_pool, opts)
    if kind == "swd":
        return _swd(protocol, G, reals, opts)
    if kind in ("modes", "glyph_acc"):
        return _glyph_metric(protocol, G, opts)
    raise ValueError(f"{protocol.name}: metric kind {kind!r} is not available in this build")


def _glyph_metric(protocol: Protocol, G: torch.nn.Module, opts: MetricOptions) -> MetricResult:
    """modes / glyph_acc: the package's own classifiers (glyph_metrics.py); every rank computes all of it."""
    from .glyph_metrics import glyph_accuracy, mode_coverage

    start = time.perf_counter()
    num = int(protocol.num_gen)
    if protocol.kind == "modes":
        r = mode_coverage(G, num, seed=opts.seed, batch=opts.batch, device=opts.device, psi=opts.psi, lod=opts.lod,
                          progress=opts.progress)
        results = {protocol.name: float(r["modes"]), f"{protocol.name}_kl": r["modes_kl"]}
        details = {f"{protocol.name}_resize": r["modes_resize"]}
    else:
        r = glyph_accuracy(G, num, seed=opts.seed, batch=opts.batch, device=opts.device, psi=opts.psi, lod=opts.lod,
                           progress=opts.progress)
        results = {protocol.name: r["glyph_acc"]}
        details = {f"{protocol.name}_per_class": {k: round(v, 4) for k, v in r["glyph_acc_per_class"].items()},
                   f"{protocol.name}_worst": [[k, round(v, 4)] for k, v in r["glyph_acc_worst"]],
                   f"{protocol.name}_resize": r["glyph_acc_resize"]}
    return MetricResult(protocol, results, num, 0, time.perf_counter() - start, details=details)


def _swd(protocol: Protocol, G: torch.nn.Module, reals: RealImages, opts: MetricOptions) -> MetricResult:
    start = time.perf_counter()
    num = min(int(protocol.num_gen), len(reals))
    result = swd_for_generator(G, reals, num, psi=opts.psi,  # RealImages has .images and .labels
                               lod=opts.lod, seed=opts.seed, device=opts.device, progress=opts.progress,
                               min_resolution=opts.min_resolution, precision=opts.precision)
    result.pop("swd_time_s", None)
    return MetricResult(protocol, result, num, num, time.perf_counter() - start)
