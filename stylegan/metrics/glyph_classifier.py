"""Small CNN classifiers of the package's own glyphs, trained by the package; the detectors of `modes`/`glyph_acc`.

Why our own: the Stacked-MNIST mode count and a legibility score need a classifier, and a downloaded one (MNIST
LeNet, Inception) would break the offline promise. The data is procedural, so the package trains its classifiers
on images it draws itself, from seeds disjoint from the datasets' default seed 0, and ships the weights
(`weights/*.pt`, sha256-checked at load). `python -m stylegan.metrics.glyph_classifier --kind KIND --out FILE`
retrains them (seeded, fixed thread count: the same bytes on the same CPU model and torch version).

Two kinds:
- "digits": 1 channel, 10 classes: one channel of a `builtin:stacked-glyphs` image.
- "glyphs": 3 channels, the 36 classes of `builtin:glyphs`.
Inputs are uint8 [N, C, S, S] with S a power of two; they are classified at INPUT_RESOLUTION (32) px: box
averages when S is larger, nearest-neighbour repetition when smaller (`resize_note` says which).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..atomic_write import atomic_write_bytes
from ..images import box_downsample

INPUT_RESOLUTION = 32
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FORMAT = 1
# Seeds of the classifiers' own images: the datasets default to seed 0, so neither set is ever scored or trained on.
TRAIN_SEED = 1_000_003
HELDOUT_SEED = 2_000_003


@dataclass(frozen=True)
class Kind:
    """One classifier: what it reads, how many classes, its shipped file and that file's sha256."""

    name: str
    channels: int
    num_classes: int
    weights_file: str
    sha256: str
    # The default training recipe (`train_classifier`): images drawn, optimiser steps, minibatch.
    train_images: int
    steps: int
    batch: int = 128


KINDS: Dict[str, Kind] = {
    "digits": Kind("digits", 1, 10, "glyph_digits.pt",
                  "61f8124b9863c6bb07c977a0fd6c1e22edcf515027d18a5e1c772b86dd382fca", train_images=3000, steps=600),
    "glyphs": Kind("glyphs", 3, 36, "glyph_classes.pt",
                  "c30da2694013c8cdd9db9e000cdae1c4bbc91d8e812cf41073f6622cf514531d", train_images=10000, steps=1500),
}


def get_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"classifier kind {kind!r} is unknown: expected one of {', '.join(KINDS)}")
    return KINDS[kind]


class GlyphClassifier(nn.Module):
    """Four 3x3 conv + BatchNorm + ReLU stages (16, 32, 64, 96 channels; 2x2 max-pools between them: 32 -> 4 px),
    a global average and one linear layer: ~80k weights, ~3.7 M multiply-adds per image: it trains on a CPU in minutes.
    Input float [N, C, 32, 32] in [0, 1] (`to_input`), output logits [N, num_classes]."""

    WIDTHS = (16, 32, 64, 96)

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        layers = []
        c = channels
        for i, width in enumerate(self.WIDTHS):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i < len(self.WIDTHS) - 1:
                layers.append(nn.MaxPool2d(2))
            c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)
        self.channels, self.num_classes = channels, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _check_u8_images(images: torch.Tensor, channels: Optional[int] = None) -> int:
    """The side S of uint8 [N, C, S, S] images (S a power of two); TypeError/ValueError naming what is wrong."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a uint8 torch tensor [N, C, H, W], got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images have dtype {images.dtype}: expected uint8 (convert floats with "
                        f"stylegan.images.to_uint8_nchw)")
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images have shape {list(images.shape)}: expected [N, C, S, S] (square)")
    size = int(images.shape[-1])
    if size < 1 or size & (size - 1):
        raise ValueError(f"images are {size} px: expected a power-of-two size")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"images have {images.shape[1]} channel(s): expected {channels}")
    return size


def resize_note(size: int) -> str:
    """How `to_input` brings `size` px images to the classifier's 32 px, in words (reported with each result)."""
    if size > INPUT_RESOLUTION:
        return f"{size} px box-downsampled to {INPUT_RESOLUTION} px"
    if size < INPUT_RESOLUTION:
        return f"{size} px nearest-upsampled to {INPUT_RESOLUTION} px"
    return f"{size} px (native)"


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, S, S] -> float32 [N, C, 32, 32] in [0, 1]: box averages (float, no rounding) when S > 32,
    nearest-neighbour repetition when S < 32."""
    size = _check_u8_images(images)
    x = images.to(torch.float32) / 255.0
    if size > INPUT_RESOLUTION:
        x = box_downsample(x, INPUT_RESOLUTION)
    elif size < INPUT_RESOLUTION:
        f = INPUT_RESOLUTION // size
        x = x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)
    return x


def weights_path(kind: str) -> Path:
    return WEIGHTS_DIR / get_kind(kind).weights_file


def _retrain_hint(kind: str) -> str:
    return f"retrain it with `python -m stylegan.metrics.glyph_classifier --kind {kind} --out {weights_path(kind)}`"


def load_weights_file(path: Union[str, Path], kind: str, sha256: Optional[str] = None) -> GlyphClassifier:
    """A GlyphClassifier of `kind` from `path` (torch.load, weights_only), in eval mode on the CPU.

    sha256: the expected file hash (the shipped files' are in KINDS); a mismatch is a ValueError, so a damaged or
    swapped file never scores anything."""
    spec = get_kind(kind)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"glyph classifier weights {path} are missing; {_retrain_hint(kind)}")
    blob = path.read_bytes()
    if sha256 is not None and hashlib.sha256(blob).hexdigest() != sha256:
        raise ValueError(f"glyph classifier weights {path} have sha256 {hashlib.sha256(blob).hexdigest()}, expected "
                         f"{sha256} (damaged or replaced file); reinstall the package or {_retrain_hint(kind)}")
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT or payload.get("kind") != kind:
        raise ValueError(f"{path} is not a format-{WEIGHTS_FORMAT} glyph classifier of kind {kind!r}")
    with torch.random.fork_rng(devices=[]):  # the throw-away init must not move the caller's RNG (a training run)
        model = GlyphClassifier(spec.channels, spec.num_classes)
    model.load_state_dict(payload["state_dict"])
    return model.eval()


@functools.lru_cache(maxsize=8)
def _shipped(kind: str, device: str) -> GlyphClassifier:
    spec = get_kind(kind)
    return load_weights_file(weights_path(kind), kind, spec.sha256).to(device)


def load_classifier(kind: str, device: Union[str, torch.device] = "cpu") -> GlyphClassifier:
    """The shipped, hash-checked classifier of `kind` on `device` (loaded once per kind and device)."""
    return _shipped(kind, str(torch.device(device)))


@torch.no_grad()
def classify(model: GlyphClassifier, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """int64 [N] predicted classes of uint8 [N, C, S, S] images (on the CPU), `batch` at a time on the model's
    device."""
    _check_u8_images(images, model.channels)
    device = next(model.parameters()).device
    out = [model(to_input(images[i:i + batch].to(device))).argmax(dim=1).cpu()
           for i in range(0, images.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------------------------
# Training data and training.

def labelled_images(kind: str, count: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [M, C, 32, 32], int64 [M] labels) of the kind's own procedural data: for "digits" each channel of
    `count` stacked-glyph images (M = 3 * count), for "glyphs" `count` glyph images; deterministic in `seed`."""
    # Imported here: stylegan.training imports this package, so the renderers are only needed when drawing.
    from ..training.glyphs import GlyphParams, render_glyph
    from ..training.stacked_glyphs import StackedGlyphParams, render_stacked_glyph, stacked_digits

    get_kind(kind)
    if kind == "digits":
        params = StackedGlyphParams(count=count, seed=seed)
        images = np.stack([render_stacked_glyph(i, INPUT_RESOLUTION, params)[0] for i in range(count)])
        labels = np.array([stacked_digits(i, params) for i in range(count)], dtype=np.int64).reshape(-1)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).reshape(-1, 1, INPUT_RESOLUTION, INPUT_RESOLUTION)
        return x.contiguous(), torch.from_numpy(labels)
    params = GlyphParams(count=count, seed=seed)
    drawn = [render_glyph(i, INPUT_RESOLUTION, params) for i in range(count)]
    x = torch.from_numpy(np.stack([img for img, _ in drawn])).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor([label for _, label in drawn], dtype=torch.int64)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild corruptions of float [N, C, 32, 32] images in [0, 1], like a generator's imperfect samples: a random
    channel order (glyphs: colours), contrast/brightness changes, a [1, 2, 1] blur on 1 in 3, Gaussian noise."""
    n, c = x.shape[:2]
    if c > 1:
        order = torch.stack([torch.randperm(c, generator=gen) for _ in range(n)])
        x = torch.gather(x, 1, order[:, :, None, None].expand_as(x))
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.7, 1.1, generator=gen)
    shift = torch.empty(n, 1, 1, 1).uniform_(-0.08, 0.08, generator=gen)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + shift
    blur = torch.rand(n, generator=gen) < 1 / 3
    if bool(blur.any()):
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        k2 = (k[:, None] * k[None, :]).expand(c, 1, 3, 3)
        x = torch.where(blur[:, None, None, None], F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=c), x)
    sigma = torch.empty(n, 1, 1, 1).uniform_(0.0, 0.06, generator=gen)
    x = x + sigma * torch.randn(x.shape, generator=gen)
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def accuracy(model: GlyphClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of uint8 images whose predicted class equals its label."""
    was_training = model.training
    model.eval()
    correct = (classify(model, images) == labels).float().mean().item()
    model.train(was_training)
    return correct


def train_classifier(kind: str, train_images: Optional[int] = None, steps: Optional[int] = None,
                     batch: Optional[int] = None, lr: float = 3e-3, seed: int = 0, threads: int = 1,
                     log=print) -> GlyphClassifier:
    """A GlyphClassifier of `kind` trained from scratch on `train_images` images of TRAIN_SEED for `steps` Adam
    steps (one-cycle: linear warm-up over 5%, cosine decay to 0), with `augment`; defaults are KINDS' recipe.

    Deterministic: the weights' init, minibatch order and corruptions come from `seed`, and the thread count is
    fixed to `threads` for the run (the CPU's float reductions depend on it), the caller's RNG state untouched."""
    spec = get_kind(kind)
    train_images = spec.train_images if train_images is None else train_images
    steps = spec.steps if steps is None else steps
    batch = spec.batch if batch is None else batch
    for name, value in (("train_images", train_images), ("steps", steps), ("batch", batch), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected an int >= 1")
    t0 = time.perf_counter()
    images, labels = labelled_images(kind, train_images, TRAIN_SEED)
    log(f"{kind}: drew {images.shape[0]} training images in {time.perf_counter() - t0:.0f} s")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            model = GlyphClassifier(spec.channels, spec.num_classes)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            warmup = max(1, steps // 20)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: (s + 1) / warmup if s < warmup
                else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))))
            model.train()
            order = torch.randperm(images.shape[0], generator=gen)
            pos = 0
            for step in range(steps):
                if pos + batch > order.numel():
                    order, pos = torch.randperm(images.shape[0], generator=gen), 0
                idx = order[pos:pos + batch]
                pos += batch
                x = augment(images[idx].to(torch.float32) / 255.0, gen)
                loss = F.cross_entropy(model(x), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if (step + 1) % max(1, steps // 10) == 0:
                    log(f"{kind}: step {step + 1}/{steps} loss {loss.item():.4f} "
                        f"({time.perf_counter() - t0:.0f} s)")
    finally:
        torch.set_num_threads(old_threads)
    return model.eval()


def save_weights(model: GlyphClassifier, kind: str, path: Union[str, Path], info: Dict[str, object]) -> str:
    """Writes the weights file atomically; returns its sha256."""
    buffer = io.BytesIO()
    torch.save({"format": WEIGHTS_FORMAT, "kind": kind, "state_dict": model.state_dict(), "info": dict(info)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylegan.metrics.glyph_classifier",
                                     description="Retrain a glyph classifier of stylegan's weight-free metrics.")
    parser.add_argument("--kind", required=True, choices=sorted(KINDS))
    parser.add_argument("--out", required=True, help="weights file to write (.pt)")
    parser.add_argument("--train-images", type=int, default=None, help="images drawn for training [kind's recipe]")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps [kind's recipe]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (part of what makes a run reproducible)")
    parser.add_argument("--heldout", type=int, default=3000, help="held-out images of seed HELDOUT_SEED to score")
    args = parser.parse_args(argv)
    out_dir = Path(args.out).expanduser().resolve().parent
    if not out_dir.is_dir():
        parser.error(f"--out {args.out}: folder {out_dir} does not exist")
    try:
        t0 = time.perf_counter()
        model = train_classifier(args.kind, args.train_images, args.steps, seed=args.seed, threads=args.threads)
        train_s = time.perf_counter() - t0
        test_x, test_y = labelled_images(args.kind, args.heldout, HELDOUT_SEED)
        acc = accuracy(model, test_x, test_y)
    except ValueError as exc:
        parser.error(str(exc))
    spec = get_kind(args.kind)
    info = {"train_images": args.train_images or spec.train_images, "steps": args.steps or spec.steps,
            "seed": args.seed, "threads": args.threads, "heldout_images": int(test_y.numel()),
            "heldout_accuracy": acc, "torch": str(torch.__version__)}
    try:
        digest = save_weights(model, args.kind, args.out, info)
    except OSError as exc:
        parser.error(f"cannot write --out {args.out}: {exc}")
    print(f"{args.kind}: held-out accuracy {acc:.5f} on {test_y.numel()} images of seed {HELDOUT_SEED}; trained "
          f"in {train_s:.0f} s; wrote {args.out} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
