"""SWD of a generator against a dataset: the metric the training loop logs at snapshots and `stylegan metrics` prints.

Why a layer of its own: `swd.py` compares two sets of uint8 images; here the sets are made, the same way for both
callers: a seeded subset of the reals box-downsampled to the generator's resolution, and as many fakes, generated
in batches, with the reals' labels when G is conditional (the reference feeds the reals' labels too).
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import rng_devices
from ..images import box_downsample
from ..precision import FP32, Precision
from .swd import (DIR_REPEATS, DIRS_PER_REPEAT, MIN_RESOLUTION, NHOODS_PER_IMAGE, DescriptorBuilder, DescriptorSet,
                  check_images, derive_seed, swd_from_descriptors, swd_resolutions, to_uint8_pggan)


def _dataset_arrays(reals: Any) -> Tuple[Any, Optional[np.ndarray], str]:
    """(images, labels or None, layout) of an ImageDataset, or of a bare array (layout from its type)."""
    if hasattr(reals, "images") and hasattr(reals, "labels"):  # training.dataset.ImageDataset
        return reals.images, reals.labels, "NHWC"
    if isinstance(reals, np.ndarray):
        return reals, None, "NHWC"
    if isinstance(reals, torch.Tensor):
        return reals, None, "NCHW"
    raise TypeError(f"reals: expected an ImageDataset, a uint8 numpy array [N, H, W, C] (the dataset cache layout), "
                    f"a uint8 torch tensor [N, C, H, W] or a DescriptorSet; got {type(reals).__name__}")


def box_downsample_u8(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 [B, C, S, S] -> [B, C, resolution, resolution]: 2x2 box means in float32, rounded to uint8 once.

    Why: PGGAN's `downscale_minibatch`, and the same 2x2 box averages the training data gets at lower lods, so a
    snapshot's reals look like what D was shown.
    """
    if x.shape[-1] == resolution:
        return x
    return torch.round(box_downsample(x.to(torch.float32), resolution)).clamp_(0, 255).to(torch.uint8)


def _select_reals(reals: Any, num: int, seed: int) -> Tuple[Any, Optional[np.ndarray], str, np.ndarray]:
    """(images, labels of the chosen ones or None, layout, sorted indices of `num` reals drawn from `seed`)."""
    images, labels, layout = _dataset_arrays(reals)
    if len(images.shape) != 4:
        raise ValueError(f"reals have shape {list(images.shape)}: expected 4-D images ({layout})")
    total = int(images.shape[0])
    if num > total:
        raise ValueError(f"num={num} exceeds the {total} real images available; SWD compares equal-size sets")
    rng = np.random.default_rng(derive_seed(seed, 2))
    idx = np.sort(rng.choice(total, size=num, replace=False)) if num < total else np.arange(total)
    chosen = None if labels is None else np.asarray(labels, dtype=np.int64)[idx]
    return images, chosen, layout, idx


def _real_batches(images: Any, layout: str, idx: np.ndarray, resolution: int, batch: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(idx), batch):
        sel = idx[i:i + batch]
        if isinstance(images, torch.Tensor):
            x = images[torch.from_numpy(sel)]
        else:
            x = torch.from_numpy(np.asarray(images[sel]))
        if x.dtype != torch.uint8:
            raise TypeError(f"reals have dtype {x.dtype}: expected uint8 dataset images")
        if layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        yield box_downsample_u8(x.contiguous().cpu(), resolution)


def real_descriptors(reals: Any, num: int, resolution: int, seed: int = 0, batch: int = 256,
                     nhoods_per_image: int = NHOODS_PER_IMAGE,
                     min_resolution: int = MIN_RESOLUTION) -> DescriptorSet:
    """DescriptorSet of `num` real images (a seeded random subset) box-downsampled to `resolution`.

    Why: computed once and passed as `reals` to `swd_for_generator` at every snapshot of one resolution, it halves
    the snapshot cost and keeps the real side fixed, so the SWD curve moves only with the generator. It records the
    chosen reals' labels (None when the data has none), so the fakes get the same labels as from the dataset.
    `reals`: an ImageDataset, a uint8 numpy array [N, H, W, C] (`ImageDataset.images`) or a uint8 tensor
    [N, C, H, W], at a resolution that is `resolution` times a power of two.
    """
    images, labels, layout, idx = _select_reals(reals, num, seed)
    channels = int(images.shape[3] if layout == "NHWC" else images.shape[1])
    builder = DescriptorBuilder(num, resolution, channels, seed=seed, nhoods_per_image=nhoods_per_image,
                                min_resolution=min_resolution)
    for x in _real_batches(images, layout, idx, resolution, batch):
        builder.add(x)
    out = builder.finish()
    out.labels = labels
    return out


def _generator_device(G: torch.nn.Module, device: Optional[Union[str, torch.device]]) -> torch.device:
    if device is not None:
        return torch.device(device)
    for p in G.parameters():
        return p.device
    return torch.device("cpu")


def _fake_labels(labels_real: Optional[np.ndarray], label_size: int, num: int,
                 gen: torch.Generator) -> Optional[torch.Tensor]:
    """One-hot labels [num, label_size] of the fakes: the reals' labels; uniform random only when they have none.

    Why the reals' labels: on class-imbalanced data uniform labels would make the fakes' class mix differ from the
    reals', which SWD would count against G. None for an unconditional G (label_size 0).
    """
    if not label_size:
        return None
    if labels_real is None:
        cls = torch.randint(0, label_size, (num,), generator=gen)
    else:
        if len(labels_real) != num:
            raise ValueError(f"reals carry {len(labels_real)} labels for num={num} images")
        bad = labels_real[(labels_real < 0) | (labels_real >= label_size)]
        if bad.size:
            raise ValueError(f"the reals have label {int(bad[0])}, outside the generator's classes "
                             f"[0, {label_size - 1}] (label_size={label_size})")
        cls = torch.from_numpy(labels_real.astype(np.int64))
    return F.one_hot(cls, label_size).to(torch.float32)


def swd_for_generator(G: torch.nn.Module, reals: Any, num: int, psi: float = 1.0, lod: float = 0.0,
                      batch: int = 32, seed: int = 0, device: Optional[Union[str, torch.device]] = None,
                      noise_mode: str = "random", nhoods_per_image: int = NHOODS_PER_IMAGE,
                      dir_repeats: int = DIR_REPEATS, dirs_per_repeat: int = DIRS_PER_REPEAT,
                      min_resolution: int = MIN_RESOLUTION, progress: bool = False,
                      precision: Precision = FP32) -> Dict[str, float]:
    """SWD x 10^3 between `num` images of G (at `lod`, truncation `psi`) and `num` reals; the snapshot metric.

    Why: one call for the training loop and `stylegan metrics`. Fakes are generated `batch` at a time under
    no_grad and reduced to descriptors at once (never all held); z, labels and noise come from `seed` inside a
    forked RNG, so the caller's global RNG state is untouched and two calls with the same G give the same value.
    `reals`: an ImageDataset, a uint8 numpy array [N, H, W, C] (the dataset cache layout), a uint8 tensor
    [N, C, H, W] (any power-of-two multiple of G's output resolution: box-downsampled), or a DescriptorSet from
    `real_descriptors(reals, num, resolution, seed)` (reuse it across snapshots). Conditional G: fake i gets the
    label of real i, from the dataset or from the DescriptorSet alike (so both give the same SWD); uniform random
    labels only when the reals have none (bare arrays, unlabelled data). ValueError if a real's label is not one
    of G's classes. Returns {'swd_level_<res>': ..., 'swd_avg': ..., 'swd_time_s': seconds}.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num={num!r} is invalid: expected an int >= 1")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} is invalid: expected an int >= 1")
    t0 = time.perf_counter()
    dev = _generator_device(G, device)
    config = getattr(getattr(G, "module", G), "config", None)  # .module: a DistributedDataParallel wrapper
    if config is None or not hasattr(config, "resolution_at"):
        raise ValueError(f"G ({type(G).__name__}) has no GeneratorConfig `.config`: latent size and resolution "
                         f"are unknown")
    latent_size = int(config.latent_size)
    label_size = int(getattr(config, "label_size", 0) or 0)
    resolution = int(config.resolution_at(lod))
    swd_resolutions(resolution, min_resolution)  # fail before generating anything when lod's images are too small

    real_set: Optional[DescriptorSet] = reals if isinstance(reals, DescriptorSet) else None
    if real_set is None:
        images, labels_real, layout, _ = _select_reals(reals, num, seed)
    elif real_set.num_images != num:
        raise ValueError(f"reals DescriptorSet holds {real_set.num_images} images but num={num}")
    else:
        labels_real = real_set.labels

    gen = torch.Generator().manual_seed(derive_seed(seed, 3))
    z_all = torch.randn(num, latent_size, generator=gen)
    c_all = _fake_labels(labels_real, label_size, num, gen)

    builder: Optional[DescriptorBuilder] = None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num, desc="fakes", unit="img", leave=False)
    with torch.random.fork_rng(devices=rng_devices(dev)), torch.no_grad():
        torch.manual_seed(derive_seed(seed, 4))
        for i in range(0, num, batch):
            z = z_all[i:i + batch].to(dev)
            c = c_all[i:i + batch].to(dev) if c_all is not None else None
            img = precision.run(G, z, c, psi=psi, lod=lod, noise_mode=noise_mode)  # fp32 by default
            if builder is None:
                _, ch, s = check_images(img, "generator output")
                if s != resolution:
                    raise ValueError(f"generator made {s} px images at lod={lod}, expected {resolution} px")
                if real_set is not None:
                    if real_set.resolutions[0] != s or real_set.channels != (3 if ch == 1 else ch):
                        raise ValueError(f"reals DescriptorSet is for {real_set.resolutions[0]} px / "
                                         f"{real_set.channels} channels; the generator makes {s} px / {ch} channels")
                else:
                    real_ch = int(images.shape[3] if layout == "NHWC" else images.shape[1])
                    if real_ch != ch:
                        raise ValueError(f"the generator makes {ch}-channel images but the reals have {real_ch}")
                builder = DescriptorBuilder(num, s, ch, seed=seed, nhoods_per_image=nhoods_per_image,
                                            min_resolution=min_resolution)
            builder.add(to_uint8_pggan(img))
            if bar is not None:
                bar.update(img.shape[0])
    if bar is not None:
        bar.close()
    assert builder is not None  # num >= 1 guarantees one batch
    fake_set = builder.finish()
    if real_set is None:
        real_set = real_descriptors(reals, num, resolution, seed=seed, nhoods_per_image=nhoods_per_image,
                                    min_resolution=min_resolution)
    out = swd_from_descriptors(real_set, fake_set, seed, dir_repeats, dirs_per_repeat)
    out["swd_time_s"] = time.perf_counter() - t0
    return out
