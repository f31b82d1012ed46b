"""Training data: a folder or .zip of images, or `builtin:glyphs` / `builtin:stacked-glyphs`, prepared once into a
uint8 cache.

Why a cache: decoding, cropping and Lanczos-resizing thousands of JPEGs every epoch would dominate a CPU run, and
progressive growing only ever needs the full-resolution pixels (lower resolutions are 2x2 box averages of them,
computed on the batch in torch, as the official dataset_tool's lod images are). The cache is an `.npy` file
[N, H, W, C] uint8 (opened as a memmap, so DataLoader workers share pages), plus labels and a JSON header, keyed by
the source (path + every file's size/mtime, or the glyph parameters) and the resolution.

Rules (documented for users):
- Folders are searched recursively for .png .jpg .jpeg .webp .bmp (case-insensitive); zips and glob patterns
  likewise. Files are read and decoded by image_reader.py, the one reading path `stylegan dataset` uses too (EXIF
  orientation applied, Pillow's decompression-bomb limit kept, zip members escaping the archive refused).
- Each image is centre-cropped to a square and resized to the target resolution with Lanczos (`CACHE_FIT`; other
  crops and filters: `stylegan dataset`). Images smaller than the target are upscaled with one warning that counts
  them; if EVERY image is smaller, it is a ValueError.
- Channels follow the data: the majority of images decide between grayscale (1), RGB (3) and RGBA (4); the others
  are converted (alpha composited over white when the majority has none).
- Unreadable files are skipped and counted (warning); with strict=True the first ones are named in a ValueError.
- Labels: unlabelled unless the folder/zip root has a `dataset.json` of the form
  {"labels": [["relative/path.png", 3], ...]} (paths relative to the root, '/' separators). Every image must have
  a label then. builtin:glyphs is labelled (36 classes, 0-9 then A-Z), builtin:stacked-glyphs by its mode (1000
  classes, 100 * d_R + 10 * d_G + d_B; usually trained unconditional).
- An empty dataset is a ValueError; so is one with fewer images than one minibatch (checked by the loop with
  `check_enough_images`).
- Before any work: labels must be class indices below MAX_CLASSES, the built-in sets stay within MAX_GLYPHS and
  MAX_GLYPH_RESOLUTION, and the cache (`cache_bytes`) must fit the free space of the cache folder. A failed
  preparation leaves no temp file; an unwritable cache folder is a ValueError naming --cache-dir.
- meta.json records how the cache was built (strict, the unreadable images), so a strict open of a cache that a
  non-strict run built fails as a strict build would have.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..atomic_write import atomic_write_bytes
from ..cache_dirs import CACHE_ENV, cache_subdir
from .glyphs import GLYPH_STYLES, MAX_GLYPH_RESOLUTION, MAX_GLYPHS, GlyphParams, drawing_bytes, render_glyph
from .image_reader import IMAGE_EXTENSIONS, Fit, ImageSource, SkippedImage, probe, read_pixels
from .stacked_glyphs import StackedGlyphParams, render_stacked_glyph

BUILTIN_GLYPHS = "builtin:glyphs"
BUILTIN_STACKED_GLYPHS = "builtin:stacked-glyphs"
# Each built-in set: (cache kind, its params class, its renderer (index, resolution, params) -> (image, label)).
BUILTIN_DATASETS = {
    BUILTIN_GLYPHS: ("glyphs", GlyphParams, render_glyph),
    BUILTIN_STACKED_GLYPHS: ("stacked-glyphs", StackedGlyphParams, render_stacked_glyph),
}
CACHE_VERSION = 3  # 2: meta.json records how the cache was built; 3: EXIF orientation, alpha over white
NPY_HEADER_BYTES = 128
CACHE_FIT = Fit()  # centre crop + Lanczos: what `--data` does with a folder (stylegan dataset offers the others)
# Labels are class indices; G's label embedding and D's class outputs grow with their count, so a label that is
# really an id (say 10**12) must be refused before a network is sized from it.
MAX_CLASSES = 1 << 16


def default_cache_dir() -> Path:
    """The package cache's `datasets` folder (stylegan/cache_dirs.py)."""
    return cache_subdir("datasets")


# ---------------------------------------------------------------------------------------------------------------
# Preparation into the cache.

def _cache_key(kind: str, items: Any, resolution: int) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "kind": kind, "items": items, "resolution": resolution},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getbuffer())


def _size(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1, e.g. '286.1 GiB'."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:,.1f} TiB"


def cache_bytes(count: int, resolution: int, channels: int) -> int:
    """Bytes of a dataset cache of `count` images: the estimate every size check of a dataset compares."""
    return count * resolution * resolution * channels + NPY_HEADER_BYTES


def check_cache_fits(count: int, resolution: int, channels: int, cache: Path, what: str, lower: str) -> None:
    """ValueError unless the cache fits the free space of the filesystem of `cache`.

    Why before the file is made: it is a sparse memmap, so creating it succeeds at any size; filling it is what
    fails, hours and a full disk later. `what` names the dataset, `lower` the options that shrink it.
    """
    needed = cache_bytes(count, resolution, channels)
    existing = next(p for p in [cache, *cache.parents] if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ValueError(f"{what}: its cache of {count} images of {resolution}x{resolution}x{channels} pixels needs "
                         f"{_size(needed)}, more than the {_size(free)} free in {cache} (--cache-dir); lower {lower} "
                         f"or pass another --cache-dir")


def _check_glyphs(data: str, count: int, resolution: int, style: str = "solid") -> None:
    """The limits of the built-in sets (glyphs.py says why), checked before anything is drawn."""
    if style not in GLYPH_STYLES:
        raise ValueError(f"glyph style {style!r}: expected one of {', '.join(GLYPH_STYLES)}")
    if count > MAX_GLYPHS:
        raise ValueError(f"--glyphs {count} is above the limit of {MAX_GLYPHS} images of {data} "
                         f"(the cache would need {_size(cache_bytes(count, resolution, 3))} at {resolution} px)")
    if resolution > MAX_GLYPH_RESOLUTION:
        raise ValueError(f"--resolution {resolution} is above the limit of {MAX_GLYPH_RESOLUTION} px of "
                         f"{data} (drawing one glyph would need {_size(drawing_bytes(resolution))})")


def _check_labels(source: ImageSource, labels: Dict[str, int]) -> None:
    """Every image has a class index in [0, MAX_CLASSES): checked before any image is decoded."""
    missing = [k for k in source.names if k not in labels]
    if missing:
        raise ValueError(f"dataset {source.spec!r}: dataset.json has no label for {len(missing)} image(s), "
                         f"e.g. {missing[0]!r}")
    values = [labels[k] for k in source.names]
    if values and min(values) < 0:
        raise ValueError(f"dataset {source.spec!r}: labels must be integers >= 0")
    if values and max(values) >= MAX_CLASSES:
        name = max(source.names, key=lambda k: labels[k])
        raise ValueError(f"dataset {source.spec!r}: dataset.json gives {name!r} the label {labels[name]}, which "
                         f"implies {labels[name] + 1} classes, above the limit of {MAX_CLASSES} (labels are class "
                         f"indices 0 to N-1)")


def _unreadable_error(spec: str, bad: List[str]) -> ValueError:
    shown = ", ".join(sorted(bad)[:5]) + (" ..." if len(bad) > 5 else "")
    return ValueError(f"dataset {spec!r}: {len(bad)} unreadable image(s): {shown}")


@contextlib.contextmanager
def _temp_npy(path: Path) -> Iterator[Path]:
    """A temp file name next to `path`, removed on every way out (on success it has been renamed to `path`)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _move_into_place(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _prepare_folder(source: ImageSource, resolution: int, strict: bool, out_images: Path,
                    cache: Path) -> Dict[str, Any]:
    if not source.names:
        raise ValueError(f"dataset {source.spec!r} contains no images "
                         f"(looked for {', '.join(IMAGE_EXTENSIONS)}, recursively)")
    labels = source.labels()
    if labels is not None:
        _check_labels(source, labels)
    # Pass 1: headers only (cheap): readable?, size, mode.
    bad: List[str] = []
    ok: List[Tuple[str, int, int]] = []   # name, min side, channels
    for name in source.names:
        try:
            width, height, votes = probe(source.read(name))
            ok.append((name, min(width, height), votes))
        except SkippedImage:  # undecodable or above Pillow's MAX_IMAGE_PIXELS: counted below
            bad.append(name)
    if bad and strict:
        raise _unreadable_error(source.spec, bad)
    channels = Counter(c for _, _, c in ok).most_common(1)[0][0] if ok else 3
    check_cache_fits(len(ok), resolution, channels, cache, f"dataset {source.spec!r} at {resolution} px",
                     "--resolution")
    # Pass 2: decode, convert, crop, resize into a memmap.
    with _temp_npy(out_images) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(max(len(ok), 1), resolution, resolution, channels))
        kept: List[str] = []
        small = 0
        for name, side, _ in ok:
            try:
                arr[len(kept)] = read_pixels(source.read(name), channels, resolution, CACHE_FIT)
            except SkippedImage:  # truncated/corrupt data only shows up on full decode
                bad.append(name)
                continue
            small += side < resolution
            kept.append(name)
        if bad and strict:
            raise _unreadable_error(source.spec, bad)
        if not kept:
            raise ValueError(f"dataset {source.spec!r}: none of its {len(source.names)} image file(s) could be "
                             f"read")
        if small == len(kept):
            raise ValueError(f"dataset {source.spec!r}: every image is smaller than the target resolution "
                             f"{resolution} (largest square side {max(s for _, s, _ in ok)}); choose a smaller "
                             f"--resolution")
        if bad:
            warnings.warn(f"dataset {source.spec!r}: skipped {len(bad)} unreadable image(s) (strict mode names "
                          f"them)")
        if small:
            warnings.warn(f"dataset {source.spec!r}: {small} of {len(kept)} image(s) are smaller than "
                          f"{resolution}px and were upscaled")
        arr.flush()
        n = len(kept)
        del arr
        # Trim to the images actually kept (rare path: some failed only on full decode).
        if n != len(ok):
            full = np.load(tmp, mmap_mode="r")
            _atomic_save_npy(out_images, np.ascontiguousarray(full[:n]))
            del full
        else:
            _move_into_place(tmp, out_images)
    label_list = [labels[k] for k in kept] if labels is not None else None
    return {"names": kept, "labels": label_list, "skipped": len(bad), "unreadable": sorted(bad), "upscaled": small,
            "channels": channels}


def _prepare_glyphs(data: str, params: Any, resolution: int, out_images: Path, cache: Path) -> Dict[str, Any]:
    """Draws a built-in set (`data`, one of BUILTIN_DATASETS) with its `params` into the cache."""
    render = BUILTIN_DATASETS[data][2]
    check_cache_fits(params.count, resolution, 3, cache, f"{data} with --glyphs {params.count} at "
                     f"{resolution} px", "--glyphs or --resolution")
    with _temp_npy(out_images) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(params.count, resolution, resolution, 3))
        labels = []
        for i in range(params.count):
            arr[i], label = render(i, resolution, params)
            labels.append(label)
        arr.flush()
        del arr
        _move_into_place(tmp, out_images)
    return {"names": None, "labels": labels, "skipped": 0, "unreadable": [], "upscaled": 0, "channels": 3,
            "num_classes": params.num_classes}


def _unwritable(cache: Path, exc: OSError) -> ValueError:
    return ValueError(f"cannot write the dataset cache in {cache} (--cache-dir): {exc}; pass a "
                      f"writable --cache-dir (or set ${CACHE_ENV})")


def _build_cache(folder: Path, cache: Path, prepare: Callable[[Path, Path], Dict[str, Any]],
                 meta_extra: Dict[str, Any]) -> None:
    """Runs `prepare(images_path, cache)` into `folder` and writes meta.json last (its presence marks a complete
    entry). A cache folder it cannot write is a ValueError naming --cache-dir; a failed build leaves no folder."""
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta = prepare(folder / "images.npy", cache)
        meta.update(meta_extra)
        atomic_write_bytes(folder / "meta.json", json.dumps(meta).encode("utf-8"))
    except OSError as exc:
        _remove_if_empty(folder, created)
        raise _unwritable(cache, exc) from None
    except BaseException:
        _remove_if_empty(folder, created)
        raise


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


# ---------------------------------------------------------------------------------------------------------------

class ImageDataset(torch.utils.data.Dataset):
    """The prepared dataset: item i -> (uint8 tensor [C, H, W], int label or -1). Opens/creates the cache."""

    def __init__(self, data: str, resolution: int, cache_dir: Optional[os.PathLike] = None, strict: bool = False,
                 glyphs_count: int = 10000, glyphs_seed: int = 0, verbose: bool = False,
                 glyphs_style: str = "solid") -> None:
        if resolution < 1 or resolution & (resolution - 1):
            raise ValueError(f"dataset resolution must be a power of two, got {resolution}")
        self.data = data
        self.resolution = resolution
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        if data != BUILTIN_GLYPHS and glyphs_style != "solid":  # never silently ignored (a folder has no style)
            raise ValueError(f"--glyphs-style {glyphs_style} applies to {BUILTIN_GLYPHS} only, not {data}")
        if data in BUILTIN_DATASETS:
            kind, params_class, _ = BUILTIN_DATASETS[data]
            style = {"style": glyphs_style} if data == BUILTIN_GLYPHS else {}
            params = params_class(count=glyphs_count, seed=glyphs_seed, **style)
            _check_glyphs(data, params.count, resolution, glyphs_style)
            key = _cache_key(kind, params.to_dict(), resolution)
            source: Optional[ImageSource] = None
        elif data.startswith("builtin:"):
            raise ValueError(f"unknown built-in dataset {data!r}; available: {', '.join(BUILTIN_DATASETS)}")
        else:
            source = ImageSource(data)
            key = _cache_key("zip" if source.is_zip else "folder", source.fingerprint_items, resolution)
        self.fingerprint = key
        folder = cache / key
        images_path, meta_path = folder / "images.npy", folder / "meta.json"
        if not (images_path.is_file() and meta_path.is_file()):
            if verbose:
                print(f"Preparing dataset {data} at {resolution}px into {folder} ...", flush=True)
            if source is None:
                prepare = functools.partial(_prepare_glyphs, data, params, resolution)
            else:
                prepare = functools.partial(_prepare_folder, source, resolution, strict)
            try:
                _build_cache(folder, cache, prepare, dict(source=data, resolution=resolution, fingerprint=key,
                                                          strict=strict))
            finally:
                if source is not None:
                    source.close()
        self.cache_path = folder
        self.meta: Dict[str, Any] = json.loads(meta_path.read_text())
        if strict and self.meta.get("unreadable"):  # built by a non-strict run: --strict still fails as it would have
            raise _unreadable_error(data, self.meta["unreadable"])
        self.images: np.ndarray = np.load(images_path, mmap_mode="r")
        if self.images.ndim != 4 or self.images.shape[1:3] != (resolution, resolution):
            raise ValueError(f"dataset cache {images_path} is damaged (shape {self.images.shape}); delete the folder")
        labels = self.meta.get("labels")
        self.labels: Optional[np.ndarray] = np.asarray(labels, dtype=np.int64) if labels is not None else None
        self.num_classes = int(self.meta.get("num_classes") or (int(self.labels.max()) + 1 if self.labels is not None
                                                                 else 0))
        self.skipped = int(self.meta.get("skipped", 0))

    def __getstate__(self) -> Dict[str, Any]:
        # DataLoader workers started with spawn/forkserver pickle the dataset: reopen the memmap there instead of
        # pickling (= copying) every image.
        state = self.__dict__.copy()
        state["images"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.images = np.load(self.cache_path / "images.npy", mmap_mode="r")

    @property
    def num_channels(self) -> int:
        return int(self.images.shape[3])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        img = torch.from_numpy(np.array(self.images[i], copy=True)).permute(2, 0, 1)  # [C, H, W] uint8
        label = int(self.labels[i]) if self.labels is not None else -1
        return img, label


def check_enough_images(num_images: int, batch: int, data: str) -> None:
    """ValueError when the dataset cannot fill one minibatch (a GAN cannot train on it meaningfully)."""
    if num_images < batch:
        raise ValueError(f"dataset {data!r} has {num_images} image(s), fewer than one minibatch ({batch}); "
                         f"add images or lower --batch")


# ---------------------------------------------------------------------------------------------------------------
# Sampling.

class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of indices: a fresh permutation per epoch (seed + epoch) over one global sequence of sample
    positions, of which each rank takes every world_size-th, starting at global position `start` + rank.

    `start` is a global position (samples consumed by all ranks together), which is how `--resume` continues the
    exact data order without replaying it, also with a different number of ranks. A rank's batch of b items
    holds the global positions start + rank, start + rank + W, ...: the rows rank::W of the global batch."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 start: int = 0) -> None:
        if size <= 0:
            raise ValueError(f"InfiniteSampler: size must be > 0, got {size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"InfiniteSampler: rank {rank} not in [0, {world_size})")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.seed, self.shuffle, self.start = seed, shuffle, start

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[int]:
        # Global position of this rank's item k: start + k * world_size + rank (over the concatenation of epochs).
        k = 0
        epoch, order = -1, np.empty(0, dtype=np.int64)
        while True:
            g = self.start + k * self.world_size + self.rank
            e, pos = divmod(g, self.size)
            if e != epoch:
                epoch, order = e, self._epoch_order(e)
            yield int(order[pos])
            k += 1


def make_loader(dataset: ImageDataset, batch: int, start: int, seed: int, workers: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Iterator of (uint8 [batch, C, H, W], int64 labels): this rank's rows of the global sample stream from global
    position `start` on (`batch` is the per-rank batch)."""
    sampler = InfiniteSampler(len(dataset), rank=rank, world_size=world_size, seed=seed, start=start)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                                         pin_memory=False, drop_last=True, persistent_workers=False,
                                         prefetch_factor=2 if workers > 0 else None,
                                         # own generator: creating a loader must not consume the global RNG,
                                         # or a resumed run would diverge from an uninterrupted one
                                         generator=torch.Generator().manual_seed(seed))
    return iter(loader)


# ---------------------------------------------------------------------------------------------------------------
# Batch transforms (torch, float).

def to_float(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] in the default dtype (official adjust_dynamic_range([0, 255] -> [-1, 1]))."""
    return batch_u8.to(torch.get_default_dtype()) * (2.0 / 255.0) - 1.0


def random_mirror(x: torch.Tensor, generator: Optional[torch.Generator] = None,
                  flip: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Flip each sample left-right with probability 1/2 (official mirror_augment, per sample).

    `flip`: bool [N], which samples to flip, drawn here when None (the training loop draws it for the global
    batch and passes each rank its rows)."""
    if flip is None:
        flip = torch.rand(x.shape[0], generator=generator) < 0.5
    if not bool(flip.any()):  # decided where `flip` lives (the CPU in training), before it moves to x's device
        return x
    flip = flip.to(x.device)
    out = x.clone()
    out[flip] = x[flip].flip(-1)
    return out
