"""The multi-scale sliced Wasserstein distance (SWD) of PGGAN: uint8 image sets in, numbers out.

Why SWD: it needs no pretrained network (FID needs Inception weights we cannot ship), it is cheap enough to run at
training snapshots on a CPU, and it reports one number per scale, so one can see whether coarse structure (low
pyramid levels) or fine texture (high levels) is off. Generators and datasets are the business of `evaluation.py`.

Protocol (Karras et al. 2018, "Progressive Growing of GANs", appendix D, and the authors' reference implementation
`metrics/sliced_wasserstein.py` + `util_scripts.evaluate_metrics` in tkarras/progressive_growing_of_gans):
- Images are uint8 in [0, 255]; generator outputs in [-1, 1] are mapped with x * 127.5 + 127.5, rounded and
  saturated to uint8 (`Gs.run(..., out_mul=127.5, out_add=127.5, out_dtype=np.uint8)`). Grayscale is tiled to RGB.
- A Laplacian pyramid is built in float32 with the 5x5 binomial kernel [1, 4, 6, 4, 1]^T [1, 4, 6, 4, 1] / 256 and
  'mirror' borders (reflect without repeating the edge pixel, cv2's BORDER_REFLECT_101): down = blur then keep every
  2nd pixel; up = zero-insert then blur with 4x the kernel; level i = gauss_i - up(gauss_{i+1}); the last level is
  the Gaussian residual itself. Levels: full resolution, halved while >= 16 px (1024 px -> 7 levels, 16 px -> 1).
- From every image and level, 128 random 7x7 neighbourhoods (centres uniform in [3, S-4], all channels) are taken;
  each flattened to a C*49 descriptor.
- Each SET's descriptors of a level are normalised per channel with that set's own mean and (population) std over
  all its descriptors and the 7x7 positions (`finalize_descriptors` runs on reals and fakes separately).
- SWD per level: 4 repeats x 128 random directions (512 projections in all, the paper's number), each direction a
  Gaussian vector normalised to unit length; the mean over directions and descriptors of |sort(A.d) - sort(B.d)|,
  averaged over repeats; reported x 10^3. The average over levels is the summary number. The paper uses 16384
  images per set.

Where this implementation chooses (documented deviations, none changes the statistic's expectation):
- Both sets draw their neighbourhood positions from the same seeded stream (image i of either set is sampled at the
  same positions). Positions are independent of content, so this is the same estimator with common random numbers:
  lower variance, and SWD(x, x) is exactly 0 and SWD(a, b) == SWD(b, a) exactly. Both sets must hold the same number
  of images (the reference asserts equal descriptor counts too).
- A channel whose std is 0 (a constant set) is only centred, not divided (the reference would produce NaN).
- Images with C != 1, 3 (e.g. RGBA) keep their channels: descriptors are C*49-dimensional.

Memory and speed, as the code is written: the descriptors of every level of both sets are kept, as in the
reference (`descriptor_bytes()` gives one set's size); images are processed in batches and never held as
pyramids; sorting works on fixed-size chunks of directions, several chunks at a time in threads.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]

# Protocol constants (PGGAN metrics/sliced_wasserstein.py API.__init__; paper appendix D).
NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16
PAPER_NUM_IMAGES = 16384
SCALE = 1e3  # values are reported x 10^3 ("SWDx1e3")

# 1-D binomial taps; their outer product is the reference's 5x5 Gaussian / 256.
_BINOMIAL5 = (1.0, 4.0, 6.0, 4.0, 1.0)
_SORT_CHUNK_ELEMENTS = 1 << 22  # projections per set per sort task (16 MiB)


# ---------------------------------------------------------------------------------------------------------------
# Input checks and conversion.

def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """A torch view/copy of an image array (numpy arrays, also read-only memmaps, are copied)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.array(x, copy=True))
    raise TypeError(f"{name}: expected a torch.Tensor or numpy array of images [N, C, H, W], "
                    f"got {type(x).__name__}")


def check_images(x: ArrayLike, name: str) -> Tuple[int, int, int]:
    """(N, C, S) of an image batch after checking it is uint8 or float, NCHW, square and non-empty.

    Why a separate check: errors should name the argument and its shape before any work (or allocation) starts.
    """
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"{name} has shape {list(shape)}: expected 4-D images [N, C, H, W]")
    dtype = x.dtype
    is_u8 = dtype == torch.uint8 or dtype == np.uint8
    is_float = (dtype.is_floating_point if isinstance(dtype, torch.dtype)
                else np.issubdtype(dtype, np.floating))
    if not (is_u8 or is_float):
        raise TypeError(f"{name} has dtype {dtype}: expected uint8 in [0, 255] or float in [-1, 1]")
    n, c, h, w = shape
    if c > 4 and w <= 4:
        raise ValueError(f"{name} has shape {list(shape)}: expected channels-first [N, C, H, W]; this looks like "
                         f"[N, H, W, C] (transpose it, e.g. x.permute(0, 3, 1, 2))")
    if n < 1:
        raise ValueError(f"{name} has shape {list(shape)}: expected at least one image")
    if h != w:
        raise ValueError(f"{name} has shape {list(shape)}: expected square images (H == W)")
    return n, c, h


def to_uint8_pggan(x: ArrayLike) -> torch.Tensor:
    """uint8 tensor of the same shape: uint8 passes through; float [-1, 1] -> round(x * 127.5 + 127.5) saturated.

    Why quantise fakes: the protocol compares uint8 images (PGGAN `Gs.run(out_mul=127.5, out_add=127.5,
    out_dtype=np.uint8)`), so fakes and reals go through the same [0, 255] grid. Non-finite values are mapped
    (NaN -> 0, +-inf -> +-1) with a warning, so a diverged generator gets a bad score instead of an exception.
    """
    t = _as_tensor(x, "images")
    if t.dtype == torch.uint8:
        return t
    t = t.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        warnings.warn("SWD: images contain NaN/inf; mapped to 0 (NaN) and +-1 (inf) before quantisation")
        t = torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=-1.0)
    return torch.round(t * 127.5 + 127.5).clamp_(0, 255).to(torch.uint8)


def swd_resolutions(resolution: int, min_resolution: int = MIN_RESOLUTION) -> List[int]:
    """Pyramid level resolutions, full first: halve while the result stays >= min_resolution (and sizes are even).

    Why: the reference evaluates every power-of-two level down to 16 px (`while res >= 16`), so SWD at 256 px has
    levels 256, 128, 64, 32, 16.
    """
    if isinstance(min_resolution, bool) or not isinstance(min_resolution, int) or min_resolution < NHOOD_SIZE:
        raise ValueError(f"min_resolution={min_resolution!r} is invalid: expected an int >= {NHOOD_SIZE} "
                         f"(the descriptor neighbourhood size)")
    if resolution < min_resolution:
        raise ValueError(f"SWD needs images of at least {min_resolution} px (PGGAN protocol: pyramid levels down to "
                         f"16 px); got {resolution} px. Pass min_resolution={max(NHOOD_SIZE, resolution)} to "
                         f"evaluate smaller images anyway")
    out = [resolution]
    while out[-1] % 2 == 0 and out[-1] // 2 >= min_resolution:
        out.append(out[-1] // 2)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Laplacian pyramid (float32, torch).

def _take(x: torch.Tensor, dim: int, start: int, count: int, step: int = 1) -> torch.Tensor:
    """x's `count` entries along `dim` from `start` with `step` (a strided view)."""
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, start + (count - 1) * step + 1, step)
    return x[tuple(index)]


def _down1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Blur along `dim` with [1, 4, 6, 4, 1] / 16 and mirror borders, keeping only the even outputs.

    Only the kept outputs are computed (strided taps), so this costs half a full blur.
    """
    n = x.shape[dim]
    p = torch.cat([_take(x, dim, 2, 1), _take(x, dim, 1, 1), x,          # mirror: x[-2] = x[2], x[-1] = x[1]
                   _take(x, dim, n - 2, 1), _take(x, dim, n - 3, 1)], dim=dim)
    m = (n + 1) // 2
    out = _take(p, dim, 0, m, 2) * (_BINOMIAL5[0] / 16.0)
    for k in range(1, 5):
        out.add_(_take(p, dim, k, m, 2), alpha=_BINOMIAL5[k] / 16.0)
    return out


def _up1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero-insert x 2x along `dim`, then blur with [1, 4, 6, 4, 1] / 8 and mirror borders, polyphase.

    On the zero-inserted signal u (u[2i] = x[i]) the even outputs are (x[i-1] + 6 x[i] + x[i+1]) / 8 and the odd
    ones (x[i] + x[i+1]) / 2. Mirroring u at its borders means x[-1] = x[1] on the left but x[n] = x[n-1] on the
    right (u's last entry is an inserted zero), exactly as the reference's scipy 'mirror' convolution.
    """
    n = x.shape[dim]
    p = torch.cat([_take(x, dim, 1, 1), x, _take(x, dim, n - 1, 1)], dim=dim)  # x[-1] = x[1], x[n] = x[n-1]
    mid = _take(p, dim, 1, n)
    right = _take(p, dim, 2, n)
    even = (_take(p, dim, 0, n) + right).mul_(1.0 / 8.0).add_(mid, alpha=6.0 / 8.0)
    odd = (mid + right).mul_(0.5)
    return torch.stack([even, odd], dim=dim + 1 if dim >= 0 else dim).flatten(
        dim if dim >= 0 else x.ndim + dim, (dim if dim >= 0 else x.ndim + dim) + 1)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Gaussian pyramid step [N, C, S, S] -> [N, C, S/2, S/2]: 5x5 binomial blur (kernel [1,4,6,4,1]^T [1,4,6,4,1]
    / 256, mirror borders), keep even rows/columns (reference `pyr_down`, like cv2.pyrDown)."""
    return _down1d(_down1d(x, 3), 2)


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """Inverse step [N, C, S, S] -> [N, C, 2S, 2S]: zero-insert, blur with 4x the kernel (keeps the mean), mirror
    borders of the zero-inserted image (reference `pyr_up`)."""
    return _up1d(_up1d(x, 3), 2)


def laplacian_pyramid(x: torch.Tensor, num_levels: int) -> List[torch.Tensor]:
    """Laplacian pyramid of float images, full resolution first; the last level is the Gaussian residual.

    Why the Laplacian and not the Gaussian pyramid: each level then holds only the detail of its own scale, so SWD
    per level isolates errors by frequency band (PGGAN section 5).
    """
    gauss = x.to(torch.float32)
    levels: List[torch.Tensor] = []
    for _ in range(num_levels - 1):
        down = pyr_down(gauss)
        levels.append(gauss - pyr_up(down))
        gauss = down
    levels.append(gauss)
    return levels


# ---------------------------------------------------------------------------------------------------------------
# Descriptors.

def derive_seed(seed: int, stream: int) -> int:
    """Independent 63-bit seeds of one user seed, one per stream, so each random choice has its own stream.

    Streams: 0 neighbourhood positions, 1 projection directions (here); 2 the real subset, 3 latents and labels,
    4 noise (evaluation.py).
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, stream]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def descriptor_bytes(num_images: int, resolution: int, channels: int = 3,
                     nhoods_per_image: int = NHOODS_PER_IMAGE, min_resolution: int = MIN_RESOLUTION) -> int:
    """Bytes of float32 descriptors ONE set keeps (all levels); SWD holds two sets. For planning `num`."""
    c = 3 if channels == 1 else channels
    levels = len(swd_resolutions(resolution, min_resolution))
    return levels * num_images * nhoods_per_image * c * NHOOD_SIZE * NHOOD_SIZE * 4


@dataclass
class DescriptorSet:
    """Normalised 7x7 descriptors of one image set, per pyramid level: what SWD compares.

    Why an object: the reals' descriptors do not change between training snapshots, so the loop can compute them
    once (`real_descriptors`) and compare every snapshot's fakes against them.
    """

    resolutions: List[int]
    descriptors: List[torch.Tensor]  # per level: float32 [num_images * nhoods_per_image, channels * 49]
    num_images: int
    channels: int
    nhoods_per_image: int
    seed: int
    # int64 [num_images]: the class of each image when the set was made from labelled reals (`real_descriptors`),
    # so a conditional G's fakes are given the same labels; None for unlabelled images.
    labels: Optional[np.ndarray] = None

    def check_compatible(self, other: "DescriptorSet") -> None:
        """ValueError naming what differs when two sets cannot be compared."""
        for attr in ("resolutions", "num_images", "channels", "nhoods_per_image"):
            a, b = getattr(self, attr), getattr(other, attr)
            if a != b:
                raise ValueError(f"descriptor sets differ in {attr}: {a} vs {b}; SWD compares sets of the same "
                                 f"resolution, image count and channels")


class DescriptorBuilder:
    """Accumulates descriptors of a set fed in batches, so neither the images nor their pyramids are kept.

    Positions are drawn for the whole set up front from `seed`, so they do not depend on the batch size, and two
    sets built with the same seed and size sample image i at the same places (see the module docstring).
    """

    def __init__(self, num_images: int, resolution: int, channels: int, seed: int = 0,
                 nhoods_per_image: int = NHOODS_PER_IMAGE, min_resolution: int = MIN_RESOLUTION) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"num_images={num_images!r} is invalid: expected an int >= 1")
        if isinstance(nhoods_per_image, bool) or not isinstance(nhoods_per_image, int) or nhoods_per_image < 1:
            raise ValueError(f"nhoods_per_image={nhoods_per_image!r} is invalid: expected an int >= 1")
        if channels < 1:
            raise ValueError(f"channels={channels!r} is invalid: expected >= 1")
        self.resolutions = swd_resolutions(resolution, min_resolution)
        self.resolution = resolution
        self.in_channels = channels
        self.channels = 3 if channels == 1 else channels  # grayscale is tiled to RGB (PGGAN evaluate_metrics)
        self.num_images = num_images
        self.nhoods_per_image = nhoods_per_image
        self.seed = seed
        self.filled = 0
        dim = self.channels * NHOOD_SIZE * NHOOD_SIZE
        total = num_images * nhoods_per_image
        gen = torch.Generator().manual_seed(derive_seed(seed, 0))
        half = NHOOD_SIZE // 2
        self._centres: List[torch.Tensor] = []
        self._desc: List[torch.Tensor] = []
        for res in self.resolutions:
            # Centres uniform in [half, res - half - 1] so the 7x7 window lies inside the image (reference:
            # np.random.randint(H, S - H)); int32 keeps this small for 16384 x 128 positions.
            self._centres.append(torch.randint(half, res - half, (num_images, nhoods_per_image, 2), generator=gen,
                                               dtype=torch.int32))
            self._desc.append(torch.empty(total, dim, dtype=torch.float32))

    def add(self, images: ArrayLike) -> None:
        """Feed the next batch: uint8 [B, C, S, S] or float in [-1, 1] (quantised like fakes)."""
        n, c, s = check_images(images, "images")
        if c != self.in_channels or s != self.resolution:
            raise ValueError(f"images have shape {list(images.shape)}: this set expects "
                             f"[B, {self.in_channels}, {self.resolution}, {self.resolution}]")
        if self.filled + n > self.num_images:
            raise ValueError(f"too many images: {self.filled} + {n} > num_images={self.num_images}")
        x = to_uint8_pggan(images).to("cpu")
        if c == 1:
            x = x.expand(n, 3, s, s)
        pyramid = laplacian_pyramid(x.to(torch.float32), len(self.resolutions))
        half = NHOOD_SIZE // 2
        bidx = torch.arange(n).view(n, 1)
        rows_out = slice(self.filled * self.nhoods_per_image, (self.filled + n) * self.nhoods_per_image)
        for level, centres, store in zip(pyramid, self._centres, self._desc):
            cy = centres[self.filled:self.filled + n, :, 0].to(torch.int64) - half
            cx = centres[self.filled:self.filled + n, :, 1].to(torch.int64) - half
            # All 7x7 windows as a view [B, C, S-6, S-6, 7, 7]; pick each neighbourhood's top-left corner.
            windows = level.unfold(2, NHOOD_SIZE, 1).unfold(3, NHOOD_SIZE, 1)
            patches = windows[bidx, :, cy, cx]  # [B, K, C, 7, 7]: (channel, row, column) order as the reference
            store[rows_out] = patches.reshape(n * self.nhoods_per_image, -1)
        self.filled += n

    def finish(self) -> DescriptorSet:
        """The normalised DescriptorSet; ValueError if fewer images than num_images were fed."""
        if self.filled != self.num_images:
            raise ValueError(f"only {self.filled} of num_images={self.num_images} images were fed")
        for desc in self._desc:
            _normalize_per_channel(desc, self.channels)
        out = DescriptorSet(self.resolutions, self._desc, self.num_images, self.channels, self.nhoods_per_image,
                            self.seed)
        self._desc = []
        return out


def _normalize_per_channel(desc: torch.Tensor, channels: int, chunk_rows: int = 1 << 15) -> None:
    """In place: per channel, subtract the mean and divide by the population std over all rows and 7x7 positions.

    Two passes over row chunks (mean, then the centred second moment), each chunk summed by torch's cascade sum in
    float32 and the chunk totals accumulated in float64: accurate without a float64 copy of 2M x 147 values.
    """
    rows = desc.shape[0]
    view = desc.view(rows, channels, -1)
    count = rows * view.shape[2]
    total = torch.zeros(channels, dtype=torch.float64)
    for i in range(0, rows, chunk_rows):
        total += view[i:i + chunk_rows].sum(dim=(0, 2)).to(torch.float64)
    mean32 = (total / count).to(torch.float32).view(1, -1, 1)
    sq = torch.zeros(channels, dtype=torch.float64)
    for i in range(0, rows, chunk_rows):
        d = view[i:i + chunk_rows] - mean32
        sq += d.mul_(d).sum(dim=(0, 2)).to(torch.float64)
    std = torch.sqrt(sq / count)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant channel: centre only (reference: NaN)
    inv32 = (1.0 / std).to(torch.float32).view(1, -1, 1)
    for i in range(0, rows, chunk_rows):
        view[i:i + chunk_rows].sub_(mean32).mul_(inv32)


def compute_descriptors(images: ArrayLike, seed: int = 0, batch: int = 256,
                        nhoods_per_image: int = NHOODS_PER_IMAGE,
                        min_resolution: int = MIN_RESOLUTION) -> DescriptorSet:
    """DescriptorSet of an in-memory image set (uint8 or float [-1, 1], NCHW), processed `batch` images at a time."""
    n, c, s = check_images(images, "images")
    builder = DescriptorBuilder(n, s, c, seed=seed, nhoods_per_image=nhoods_per_image,
                                min_resolution=min_resolution)
    for i in range(0, n, batch):
        builder.add(images[i:i + batch])
    return builder.finish()


# ---------------------------------------------------------------------------------------------------------------
# Sliced Wasserstein distance.

def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dir_repeats: int = DIR_REPEATS,
                       dirs_per_repeat: int = DIRS_PER_REPEAT, generator: Optional[torch.Generator] = None) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projected rows of a and b.

    For equal-size samples the 1-D W1 distance is the mean absolute difference of the sorted projections. Returns
    the plain value (not x 10^3). Directions are float64 Gaussians normalised to unit length, then float32
    (reference: np.random.randn, normalise, astype(float32)); projections are one float32 matmul per chunk.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"descriptor matrices must be 2-D and of equal shape, got {list(a.shape)} and "
                         f"{list(b.shape)}")
    rows, dim = a.shape
    workers = max(1, min(torch.get_num_threads(), 8))
    # Fixed chunking (not derived from the thread count), so the float sums and the result never depend on it.
    chunk = max(1, min(32, _SORT_CHUNK_ELEMENTS // max(rows, 1)))

    def chunk_total(d: torch.Tensor) -> float:
        # numpy's in-place sort: values only, several times faster than torch.sort (which also builds indices),
        # and it releases the GIL, so chunks sort in parallel threads.
        pa = torch.matmul(d, a.t()).numpy()  # [chunk, rows]
        pb = torch.matmul(d, b.t()).numpy()
        pa.sort(axis=1)
        pb.sort(axis=1)
        np.subtract(pa, pb, out=pa)
        return float(np.abs(pa, out=pa).sum(dtype=np.float64))

    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(dir_repeats):
            dirs = torch.randn(dim, dirs_per_repeat, generator=generator, dtype=torch.float64)
            dirs /= dirs.norm(dim=0, keepdim=True)
            dirs_t = dirs.to(torch.float32).t().contiguous()  # [direction, dim]
            chunks = [dirs_t[j:j + chunk] for j in range(0, dirs_per_repeat, chunk)]
            total = sum(pool.map(chunk_total, chunks))  # map keeps order: the sum is deterministic
            results.append(total / (rows * dirs_per_repeat))
    return float(np.mean(results))


def swd_from_descriptors(reals: DescriptorSet, fakes: DescriptorSet, seed: int = 0,
                         dir_repeats: int = DIR_REPEATS, dirs_per_repeat: int = DIRS_PER_REPEAT) -> Dict[str, float]:
    """{'swd_level_<res>': ..., 'swd_avg': ...} x 10^3 for two compatible DescriptorSets (see `swd`)."""
    reals.check_compatible(fakes)
    for name, value in (("dir_repeats", dir_repeats), ("dirs_per_repeat", dirs_per_repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected an int >= 1")
    gen = torch.Generator().manual_seed(derive_seed(seed, 1))
    out: Dict[str, float] = {}
    for res, a, b in zip(reals.resolutions, reals.descriptors, fakes.descriptors):
        out[f"swd_level_{res}"] = sliced_wasserstein(a, b, dir_repeats, dirs_per_repeat, gen) * SCALE
    out["swd_avg"] = float(np.mean([out[f"swd_level_{res}"] for res in reals.resolutions]))
    return out


def swd(reals: ArrayLike, fakes: ArrayLike, seed: int = 0, batch: int = 256,
        nhoods_per_image: int = NHOODS_PER_IMAGE, dir_repeats: int = DIR_REPEATS,
        dirs_per_repeat: int = DIRS_PER_REPEAT, min_resolution: int = MIN_RESOLUTION) -> Dict[str, float]:
    """Multi-scale SWD x 10^3 between two image sets: {'swd_level_<res>': ..., ..., 'swd_avg': ...}.

    Why call it: a pretrained-network-free measure of how far generated images are from real ones, per scale
    (lower is better; 0 for identical sets). `reals` and `fakes`: torch tensors or numpy arrays [N, C, H, W], uint8
    in [0, 255] or float in [-1, 1] (quantised to uint8 as the protocol does), square, the same shape (same N, C,
    resolution >= min_resolution). `seed` fixes the neighbourhood positions and projection directions. Memory: see
    `descriptor_bytes` (2 sets x levels x N x 128 x C x 49 floats). Protocol and deviations: module docstring.
    """
    for name, x in (("reals", reals), ("fakes", fakes)):
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            raise TypeError(f"{name}: expected a torch.Tensor or numpy array of images [N, C, H, W], "
                            f"got {type(x).__name__}")
    shape_r = check_images(reals, "reals")
    shape_f = check_images(fakes, "fakes")
    if shape_r != shape_f:
        raise ValueError(f"reals {list(reals.shape)} and fakes {list(fakes.shape)} must have the same shape "
                         f"(same number of images, channels and resolution)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} is invalid: expected an int >= 1")
    a = compute_descriptors(reals, seed, batch, nhoods_per_image, min_resolution)
    b = compute_descriptors(fakes, seed, batch, nhoods_per_image, min_resolution)
    return swd_from_descriptors(a, b, seed, dir_repeats, dirs_per_repeat)
