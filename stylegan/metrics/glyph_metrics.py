"""Weight-free metrics of the package's glyph datasets: `modes` (Stacked-MNIST mode coverage) and `glyph_acc`.

Why: they need no downloaded network (the classifiers are the package's own, glyph_classifier.py), so they work
offline and on every machine, and they turn "how many modes does G cover" and "are the glyphs legible" into numbers.
- `mode_coverage`: the Stacked-MNIST protocol (Metz et al. 2017; VEEGAN, Srivastava et al. 2017; PGGAN Table 4):
  26,000 samples of a G trained on `builtin:stacked-glyphs`, each channel classified as a digit, so each sample is
  one of 1000 modes; reports the modes hit and KL(generated mode histogram || uniform over the 1000), natural log.
- `glyph_accuracy`: a conditional G trained on `builtin:glyphs` draws every class equally often; the fraction the
  36-class classifier reads as the requested class, overall and per class.
Generated images reach the classifiers as the official metrics hand them to their detectors: uint8 from
`stylegan.images.to_uint8_nchw` (x * 127.5 + 128, clamp, truncate), made by `generated.GeneratedImages` like the
fakes of every metric: latents and noise seeded per batch, so the same call gives the same number and the caller's
RNG is untouched.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch

from .feature_stats import num_batches
from .generated import GeneratedImages
from .evaluation import _generator_device
from .glyph_classifier import _check_u8_images, classify, load_classifier, resize_note
from .swd import derive_seed

NUM_MODES = 1000          # 10^3 digit triples (training/stacked_glyphs.py)
MODES_NUM_GEN = 26000     # the protocol's sample count (VEEGAN; PGGAN Table 4)
GLYPH_ACC_NUM_GEN = 3600  # 100 per class of builtin:glyphs
NUM_GLYPH_CLASSES = 36    # builtin:glyphs: 0-9, A-Z (training/glyphs.py CLASSES)
WORST_CLASSES = 5


def _check_count(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: expected an int >= {minimum}")


def _generator_sizes(G: torch.nn.Module) -> Tuple[int, int]:
    """(latent_size, label_size) from G's GeneratorConfig (also through a DDP wrapper's `.module`)."""
    config = getattr(getattr(G, "module", G), "config", None)
    if config is None or not hasattr(config, "latent_size"):
        raise ValueError(f"G ({type(G).__name__}) has no GeneratorConfig `.config`: its latent size and labels are "
                         f"unknown")
    return int(config.latent_size), int(getattr(config, "label_size", 0) or 0)


def generated_uint8(G: torch.nn.Module, num: int, seed: int, batch: int, device: torch.device,
                    labels: Optional[torch.Tensor] = None, psi: float = 1.0, lod: float = 0.0,
                    noise_mode: str = "random", progress: bool = False,
                    desc: str = "fakes") -> Iterator[torch.Tensor]:
    """uint8 [b, C, H, W] batches of `num` images of G at `lod`, made by `GeneratedImages` (latents and noise seeded
    per batch, as for every metric); `labels` int64 [num] class indices (None: unconditional)."""
    fakes = GeneratedImages(G, num, batch, seed, psi, lod, classes=labels, noise_mode=noise_mode)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num, desc=desc, unit="img", leave=False)
    for b in range(num_batches(num, batch)):
        images = fakes.images(b)
        yield images.to(device)
        if bar is not None:
            bar.update(images.shape[0])
    if bar is not None:
        bar.close()


def _rgb_size(images: torch.Tensor, metric: str, dataset: str) -> int:
    """The side of a batch of generated uint8 images; ValueError unless they are RGB like `dataset`."""
    if images.shape[1] != 3:
        raise ValueError(f"{metric}: the generator makes {images.shape[1]}-channel images; expected 3 (RGB, as in "
                         f"{dataset})")
    return _check_u8_images(images, 3)


# ---------------------------------------------------------------------------------------------------------------
# modes

def modes_of_images(images: torch.Tensor, batch: int = 512,
                    device: Optional[Union[str, torch.device]] = None) -> np.ndarray:
    """int64 [N] mode (100 * d_R + 10 * d_G + d_B) of uint8 RGB images [N, 3, S, S], each channel read by the
    shipped "digits" classifier (on `device`, default the images' own)."""
    _check_u8_images(images, 3)
    model = load_classifier("digits", images.device if device is None else device)
    n, _, h, w = images.shape
    digits = classify(model, images.reshape(n * 3, 1, h, w), batch=batch).reshape(n, 3)
    return (digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]).numpy().astype(np.int64)


def mode_statistics(modes: Union[np.ndarray, torch.Tensor, Any]) -> Dict[str, Any]:
    """{'modes': distinct modes hit (of 1000), 'modes_kl': KL(histogram || uniform), natural log, 'num_images'}.

    KL = sum_k q_k log(q_k * 1000) over the hit modes (q the empirical histogram), as VEEGAN and PGGAN report it:
    0 for a perfectly even histogram, log(1000) = 6.91 when one mode takes every sample."""
    arr = np.asarray(modes.cpu() if isinstance(modes, torch.Tensor) else modes)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"modes: expected a non-empty 1-D integer array, got shape {list(arr.shape)} dtype "
                         f"{arr.dtype}")
    if arr.min() < 0 or arr.max() >= NUM_MODES:
        bad = int(arr[(arr < 0) | (arr >= NUM_MODES)][0])
        raise ValueError(f"modes: value {bad} is outside [0, {NUM_MODES - 1}]")
    counts = np.bincount(arr, minlength=NUM_MODES).astype(np.float64)
    q = counts[counts > 0] / arr.size
    return {"modes": int((counts > 0).sum()), "modes_kl": float(np.sum(q * np.log(q * NUM_MODES))),
            "num_images": int(arr.size)}


def mode_coverage(G: torch.nn.Module, num: int = MODES_NUM_GEN, seed: int = 0, batch: int = 64,
                  device: Optional[Union[str, torch.device]] = None, psi: float = 1.0, lod: float = 0.0,
                  noise_mode: str = "random", progress: bool = False) -> Dict[str, Any]:
    """The `modes` metric of G (trained on builtin:stacked-glyphs): modes hit of 1000 and their KL to uniform.

    A conditional G gets uniform random labels from `seed`. Returns {'modes', 'modes_kl', 'num_gen',
    'modes_resize' (how the images reached the classifier's 32 px), 'modes_time_s'}."""
    _check_count("num", num)
    _check_count("batch", batch)
    t0 = time.perf_counter()
    dev = _generator_device(G, device)
    _, label_size = _generator_sizes(G)
    labels = None
    if label_size:
        labels = torch.randint(0, label_size, (num,), generator=torch.Generator().manual_seed(derive_seed(seed, 5)))
    modes, size = [], 0
    for images in generated_uint8(G, num, seed, batch, dev, labels, psi, lod, noise_mode, progress, "modes"):
        size = _rgb_size(images, "modes", "builtin:stacked-glyphs")
        modes.append(modes_of_images(images, batch=max(batch, 1)))
    out = mode_statistics(np.concatenate(modes))
    return {"modes": out["modes"], "modes_kl": out["modes_kl"], "num_gen": num, "modes_resize": resize_note(size),
            "modes_time_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------------------------
# glyph_acc

def glyph_accuracy(G: torch.nn.Module, num: int = GLYPH_ACC_NUM_GEN, seed: int = 0, batch: int = 64,
                   device: Optional[Union[str, torch.device]] = None, psi: float = 1.0, lod: float = 0.0,
                   noise_mode: str = "random", progress: bool = False) -> Dict[str, Any]:
    """The `glyph_acc` metric of a conditional G trained on builtin:glyphs: sample i requests class i % 36; the
    fraction the "glyphs" classifier reads as the requested class.

    Returns {'glyph_acc' (mean over samples, in [0, 1]), 'glyph_acc_per_class' {char: accuracy},
    'glyph_acc_worst' [(char, accuracy)] of the 5 worst classes, 'num_gen', 'glyph_acc_resize',
    'glyph_acc_time_s'}. ValueError for an unconditional G or one whose label count is not 36."""
    from ..training.glyphs import CLASSES  # the class characters (stylegan.training imports this package)

    _check_count("num", num, NUM_GLYPH_CLASSES)
    _check_count("batch", batch)
    t0 = time.perf_counter()
    _, label_size = _generator_sizes(G)
    if label_size != NUM_GLYPH_CLASSES:
        what = "an unconditional generator (label_size=0)" if not label_size else f"label_size={label_size}"
        raise ValueError(f"glyph_acc needs a conditional generator trained on builtin:glyphs with "
                         f"{NUM_GLYPH_CLASSES} classes; got {what}")
    dev = _generator_device(G, device)
    model = load_classifier("glyphs", dev)
    requested = torch.arange(num, dtype=torch.int64) % NUM_GLYPH_CLASSES
    predicted, size = [], 0
    for images in generated_uint8(G, num, seed, batch, dev, requested, psi, lod, noise_mode, progress,
                                  "glyph_acc"):
        size = _rgb_size(images, "glyph_acc", "builtin:glyphs")
        predicted.append(classify(model, images, batch=max(batch, 1)))
    correct = (torch.cat(predicted) == requested).to(torch.float64)
    per_class = {CLASSES[k]: float(correct[requested == k].mean()) for k in range(NUM_GLYPH_CLASSES)}
    worst = sorted(per_class.items(), key=lambda item: (item[1], CLASSES.index(item[0])))[:WORST_CLASSES]
    return {"glyph_acc": float(correct.mean()), "glyph_acc_per_class": per_class, "glyph_acc_worst": worst,
            "num_gen": num, "glyph_acc_resize": resize_note(size), "glyph_acc_time_s": time.perf_counter() - t0}
