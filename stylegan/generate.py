"""Seeds -> images: the sampling API behind `stylegan generate`, `style-mixing` and `interpolate`.

Why a module of its own: the CLI, notebooks and tests all need the same conventions, and these are what make our
images comparable with NVlabs' scripts: a seed's latent is `np.random.RandomState(seed).randn(latent_size)`, the
truncation trick is applied to w per layer (psi, cutoff; docs/FORMATS.md §1.10) and float images become uint8 with the
official conversion of `stylegan.images` (docs/FORMATS.md §1.11). Everything runs batched on G's device under no_grad.
"""
from __future__ import annotations

import math
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .images import tile, to_uint8
from .precision import FP32, Precision
from .synthesis import NOISE_MODES

INTERPOLATION_SPACES = ("w", "z")
MAX_SEED = 2 ** 32 - 1  # np.random.RandomState, which draws a seed's z, accepts seeds in [0, 2**32 - 1]
# Named layer groups of the paper (Sec. 3.1, Fig. 3) as (first, last) synthesis resolution, inclusive. Layer index
# 2*(log2(res) - 2) and the next one run at `res`: 4x4 -> layers 0-1, 8x8 -> 2-3, 16x16 -> 4-5, ...
LAYER_GROUPS: Dict[str, Tuple[int, Optional[int]]] = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, None)}
# Rough multiple of the largest activation a synthesis forward holds at once (conv input + output, noise,
# upsampled copy, normalisation temporaries), used to size batches; measured peaks stay below it.
ACTIVATION_COPIES = 8
DEFAULT_CPU_BUDGET_BYTES = 2 << 30
MAX_AUTO_BATCH = 32
BLANK_VALUE = 255  # the official style-mixing figure draws on a white canvas
# The most uint8 pixel bytes one call returns (the images of the seeds, the frames of an animation): a typo such
# as --frames 1e7 must fail at once with a clear error, not fill the machine's memory and get OOM-killed.
MAX_RESULT_BYTES = 2 << 30
# Grid PNGs: Pillow warns when opening an image above ~89 Mpx and refuses one above ~179 Mpx as a decompression
# bomb, so a larger grid is a file most viewers (and our own tools) cannot read back.
LARGE_GRID_PIXELS = 1 << 26
MAX_GRID_PIXELS = 1 << 27


# ----------------------------------------------------------------------------------------------------------------
# Latents and labels


def z_from_seed(seed: int, latent_size: int) -> np.ndarray:
    """The latent z of `seed` [latent_size] float64, exactly as NVlabs' scripts draw it, so seeds are comparable."""
    _check_seed(seed)
    return np.random.RandomState(seed).randn(latent_size)


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed={seed!r} is invalid: expected an int in [0, {MAX_SEED}]")


def model_device(G: torch.nn.Module) -> torch.device:
    """The device of G's first parameter (or buffer): where its inputs must go."""
    for tensor in G.parameters():
        return tensor.device
    for tensor in G.buffers():
        return tensor.device
    return torch.device("cpu")


def _dtype(G: torch.nn.Module) -> torch.dtype:
    for tensor in G.parameters():
        return tensor.dtype
    return torch.float32


def labels_for(G: torch.nn.Module, class_idx: Optional[int], n: int) -> Optional[torch.Tensor]:
    """One-hot labels c [n, label_size] for a conditional G, None for an unconditional one; ValueError on misuse.

    Why strict: silently ignoring --class on an unconditional net, or feeding zeros to a conditional one, produces
    plausible-looking but wrong images.
    """
    label_size = int(G.config.label_size)
    if label_size == 0:
        if class_idx is not None:
            raise ValueError(f"class_idx={class_idx!r} given, but the network is unconditional (label_size=0)")
        return None
    if class_idx is None:
        raise ValueError(f"the network is label-conditional with {label_size} classes: pass class_idx in "
                         f"[0, {label_size - 1}]")
    if isinstance(class_idx, bool) or not isinstance(class_idx, (int, np.integer)) or not 0 <= class_idx < label_size:
        raise ValueError(f"class_idx={class_idx!r} is invalid: expected an int in [0, {label_size - 1}]")
    c = torch.zeros(n, label_size, device=model_device(G), dtype=_dtype(G))
    c[:, int(class_idx)] = 1
    return c


def _check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode={noise_mode!r} is invalid: expected one of {NOISE_MODES}")


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB"


def check_result_size(G: torch.nn.Module, count: int, noun: str = "images", lod: float = 0.0) -> None:
    """ValueError when `count` images of G (at `lod`) exceed MAX_RESULT_BYTES, before any of them is made.

    Why here: every caller (generate, interpolate, the CLI's several classes) holds its result as one uint8 array.
    """
    res, channels = int(G.config.resolution_at(lod)), int(G.config.num_channels)
    needed = count * res * res * channels
    if needed > MAX_RESULT_BYTES:
        raise ValueError(f"{count} {noun} of {res}x{res}x{channels} pixels need an estimated {_gib(needed)} of "
                         f"memory, above the limit of {_gib(MAX_RESULT_BYTES)}: ask for at most "
                         f"{MAX_RESULT_BYTES // (res * res * channels)} {noun}")


def check_grid_size(G: torch.nn.Module, cols: int, rows: int, lod: float = 0.0) -> Optional[str]:
    """ValueError for a grid image above MAX_GRID_PIXELS; a warning (str) above LARGE_GRID_PIXELS, else None."""
    res = int(G.config.resolution_at(lod))
    width, height = cols * res, rows * res
    size = f"a {cols}x{rows} grid of {res} px images is a {width}x{height} image ({width * height / 1e6:.0f} Mpx)"
    if width * height > MAX_GRID_PIXELS:
        raise ValueError(f"{size}, above the limit of {MAX_GRID_PIXELS / 1e6:.0f} Mpx that image viewers "
                         f"(and Pillow) open: use a smaller grid, or one PNG per image")
    if width * height > LARGE_GRID_PIXELS:
        return f"{size}; some image viewers will refuse to open it"
    return None


def _check_seeds(seeds: Sequence[int]) -> List[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: expected at least one seed")
    for seed in seeds:
        _check_seed(seed)
    return [int(s) for s in seeds]


# ----------------------------------------------------------------------------------------------------------------
# Batching


def activation_bytes_per_image(G: torch.nn.Module) -> int:
    """Estimated peak bytes one image needs in a synthesis forward: the largest feature map times a safety factor.

    Why: a 1024-px network holds 16 x 1024^2 floats (64 MB) per feature map; batching 32 of those would need
    ~16 GB on a CPU. Sizing the batch from this estimate keeps CPU generation within a few GB.
    """
    cfg = G.config
    itemsize = torch.finfo(_dtype(G)).bits // 8
    largest = 0
    for res_log2 in range(2, cfg.log2_resolution + 1):
        largest = max(largest, cfg.nf(res_log2 - 1) * (1 << res_log2) ** 2)
    largest = max(largest, cfg.num_channels * cfg.resolution ** 2)
    return ACTIVATION_COPIES * largest * itemsize


def auto_batch_size(G: torch.nn.Module, budget_bytes: Optional[int] = None) -> int:
    """Batch size that fits `budget_bytes` (default: 2 GiB on CPU, half the free memory on CUDA), 1..32."""
    if budget_bytes is None:
        device = model_device(G)
        budget_bytes = DEFAULT_CPU_BUDGET_BYTES
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget_bytes = free // 2
    return int(max(1, min(MAX_AUTO_BATCH, budget_bytes // activation_bytes_per_image(G))))


def _batches(n: int, batch_size: int) -> List[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _resolve_batch(G: torch.nn.Module, batch_size: Optional[int]) -> int:
    if batch_size is None:
        return auto_batch_size(G)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: expected an int >= 1 or None (automatic)")
    return batch_size


def _progress_bar(total: int, desc: str, progress: Optional[bool]) -> tqdm:
    # None: tqdm decides (shown on a terminal only); shown at all only when there is more than one batch.
    disable = True if progress is False or total <= 1 else (None if progress is None else False)
    return tqdm(total=total, desc=desc, unit="batch", disable=disable, leave=False)


# ----------------------------------------------------------------------------------------------------------------
# z -> w -> images


@torch.no_grad()
def ws_from_z(G: torch.nn.Module, z: torch.Tensor, psi: Optional[float] = 0.7, cutoff: Optional[int] = 8,
              class_idx: Optional[int] = None) -> torch.Tensor:
    """Truncated ws [N, num_layers, dlatent_size] of latents z [N, latent_size] (mapping, then truncation)."""
    z = z.to(device=model_device(G), dtype=_dtype(G))
    ws = G.mapping(z, labels_for(G, class_idx, z.shape[0]))
    if psi is not None and psi != 1 and cutoff is not None:
        ws = G.truncate(ws, psi, cutoff)
    return ws


def ws_from_seeds(G: torch.nn.Module, seeds: Sequence[int], psi: Optional[float] = 0.7,
                  cutoff: Optional[int] = 8, class_idx: Optional[int] = None) -> torch.Tensor:
    """Truncated ws [len(seeds), num_layers, dlatent_size] of the seeds' latents (z_from_seed convention)."""
    seeds = _check_seeds(seeds)
    z = np.stack([z_from_seed(s, int(G.config.latent_size)) for s in seeds])
    return ws_from_z(G, torch.from_numpy(z), psi, cutoff, class_idx)


@torch.no_grad()
def synthesize(G: torch.nn.Module, ws: torch.Tensor, noise_mode: str = "const", batch_size: Optional[int] = None,
               progress: Optional[bool] = None, lod: float = 0.0,
               noise: Optional[Sequence[torch.Tensor]] = None, precision: Precision = FP32) -> np.ndarray:
    """uint8 images [N, H, W, C] of ws [N, num_layers, dlatent_size], batched so memory stays bounded.

    lod > 0 renders a progressive level (resolution_at(lod)), e.g. what a mid-training checkpoint has learnt.
    noise: explicit noise maps (one per layer or per block, each [N or 1, 1, H, W], e.g. a projection's), used
    instead of noise_mode. precision (stylegan.precision): the synthesis network's arithmetic; fp32 (the default)
    is the exact, official-equal path; the mapping network and truncation always run in float32.
    """
    _check_noise_mode(noise_mode)
    batch_size = _resolve_batch(G, batch_size)
    ws = ws.to(device=model_device(G), dtype=_dtype(G))
    chunks = _batches(ws.shape[0], batch_size)
    out: List[np.ndarray] = []
    with _progress_bar(len(chunks), "generating", progress) as bar:
        for chunk in chunks:
            maps = None if noise is None else [
                n.to(device=ws.device, dtype=ws.dtype)[chunk if n.shape[0] == ws.shape[0] else slice(None)]
                for n in noise]
            out.append(to_uint8(precision.run(G.synthesis, ws[chunk], lod=lod, noise_mode=noise_mode, noise=maps)))
            bar.update(1)
    if not out:
        res, ch = int(G.config.resolution_at(lod)), int(G.config.num_channels)
        return np.zeros((0, res, res, ch), dtype=np.uint8)
    return np.concatenate(out)


def generate_images(G: torch.nn.Module, seeds: Sequence[int], psi: Optional[float] = 0.7, cutoff: Optional[int] = 8,
                    noise_mode: str = "const", class_idx: Optional[int] = None, batch_size: Optional[int] = None,
                    progress: Optional[bool] = None, lod: float = 0.0, precision: Precision = FP32) -> np.ndarray:
    """uint8 images [len(seeds), H, W, C], one per seed; the same seeds and weights give NVlabs' images.

    psi/cutoff: truncation (psi=1 or None disables it). noise_mode: 'const' (the network's stored noise, so a seed
    always gives the same image), 'random' or 'none'. class_idx: required for, and only for, conditional networks.
    batch_size None picks one from the network's resolution (auto_batch_size). progress: see _progress_bar.
    lod: progressive level to render (0 = full resolution). precision: see synthesize.
    """
    _check_noise_mode(noise_mode)
    seeds = _check_seeds(seeds)
    G.config.check_lod(lod)
    check_result_size(G, len(seeds), "images", lod)
    batch_size = _resolve_batch(G, batch_size)
    # Map in the same batches as synthesis: the mapping output is tiny, but z for 10^5 seeds need not be one batch.
    images: List[np.ndarray] = []
    chunks = _batches(len(seeds), batch_size)
    with _progress_bar(len(chunks), "generating", progress) as bar:
        for chunk in chunks:
            ws = ws_from_seeds(G, seeds[chunk], psi, cutoff, class_idx)
            images.append(synthesize(G, ws, noise_mode, batch_size, progress=False, lod=lod, precision=precision))
            bar.update(1)
    return np.concatenate(images)


# ----------------------------------------------------------------------------------------------------------------
# Style mixing


def layer_range(name_or_range: str, num_layers: int) -> range:
    """Synthesis layer indices of a named group ('coarse', 'middle', 'fine') or an inclusive 'A-B' / 'A' range.

    Why named groups: the paper's Figure 3 speaks of coarse (4^2-8^2), middle (16^2-32^2) and fine (64^2-1024^2)
    styles; on a smaller network a group is clipped to the layers it has, and an empty group is an error rather than
    a grid with no mixing at all.
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 2:
        raise ValueError(f"num_layers={num_layers!r} is invalid: expected an int >= 2")
    text = str(name_or_range).strip().lower()
    if text in LAYER_GROUPS:
        lo_res, hi_res = LAYER_GROUPS[text]
        first = 2 * (int(math.log2(lo_res)) - 2)
        stop = num_layers if hi_res is None else 2 * (int(math.log2(hi_res)) - 2) + 2
        stop = min(stop, num_layers)
        if first >= stop:
            resolution = 2 ** (num_layers // 2 + 1)
            raise ValueError(f"style group {text!r} ({_group_span(text)}) is empty for a {resolution}x{resolution} "
                             f"network with {num_layers} layers; use 'coarse', 'middle' or a range 'A-B' within "
                             f"0-{num_layers - 1}")
        return range(first, stop)
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
    if match is None:
        raise ValueError(f"styles={name_or_range!r} is invalid: expected 'coarse', 'middle', 'fine' or a layer range "
                         f"'A-B' (inclusive, 0-{num_layers - 1})")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if first > last or last >= num_layers:
        raise ValueError(f"styles={name_or_range!r} is out of range: expected A-B with 0 <= A <= B <= "
                         f"{num_layers - 1} (the network has {num_layers} layers)")
    return range(first, last + 1)


def _group_span(name: str) -> str:
    lo, hi = LAYER_GROUPS[name]
    return f"{lo}x{lo} and up" if hi is None else f"{lo}x{lo} to {hi}x{hi}"


def mix_styles(row_ws: torch.Tensor, col_ws: torch.Tensor, layers: Iterable[int]) -> torch.Tensor:
    """ws [R*C, L, D] of every (row, col) pair: row's ws with `layers` replaced by col's, row-major order."""
    layers = list(layers)
    rows, cols = row_ws.shape[0], col_ws.shape[0]
    mixed = row_ws[:, None].expand(rows, cols, *row_ws.shape[1:]).clone()
    if layers:
        mixed[:, :, layers] = col_ws[None, :, layers].expand(rows, cols, len(layers), row_ws.shape[-1])
    return mixed.reshape(rows * cols, *row_ws.shape[1:])


def style_mixing_grid(G: torch.nn.Module, row_seeds: Sequence[int], col_seeds: Sequence[int], layers: Iterable[int],
                      psi: Optional[float] = 0.7, cutoff: Optional[int] = 8, noise_mode: str = "const",
                      class_idx: Optional[int] = None, batch_size: Optional[int] = None,
                      progress: Optional[bool] = None, precision: Precision = FP32
                      ) -> Tuple[np.ndarray, Dict[Tuple[int, int], np.ndarray]]:
    """(grid [H*(rows+1), W*(cols+1), C] uint8, {(row_seed, col_seed): image}): the paper's Figure 3.

    Top-left blank (white), first row = the column sources, first column = the row sources, cell (i, j) = row i's
    ws with the layers in `layers` taken from column j's ws. Truncation is applied to each ws before mixing.
    """
    row_seeds, col_seeds = _check_seeds(row_seeds), _check_seeds(col_seeds)
    check_grid_size(G, len(col_seeds) + 1, len(row_seeds) + 1)
    layers = list(layers)
    num_layers = int(G.num_layers)
    bad = [i for i in layers if not 0 <= int(i) < num_layers]
    if bad:
        raise ValueError(f"layers {bad} are out of range for a network with {num_layers} layers")
    ws = ws_from_seeds(G, row_seeds + col_seeds, psi, cutoff, class_idx)
    row_ws, col_ws = ws[:len(row_seeds)], ws[len(row_seeds):]
    all_ws = torch.cat([row_ws, col_ws, mix_styles(row_ws, col_ws, layers)])
    images = synthesize(G, all_ws, noise_mode, batch_size, progress, precision=precision)
    row_imgs, col_imgs = images[:len(row_seeds)], images[len(row_seeds):len(row_seeds) + len(col_seeds)]
    mixed = images[len(row_seeds) + len(col_seeds):]

    rows, cols = len(row_seeds), len(col_seeds)
    canvas = [[np.full_like(images[0], BLANK_VALUE)] + list(col_imgs)]
    cells: Dict[Tuple[int, int], np.ndarray] = {}
    for i in range(rows):
        line = [row_imgs[i]]
        for j in range(cols):
            cell = mixed[i * cols + j]
            cells[(row_seeds[i], col_seeds[j])] = cell
            line.append(cell)
        canvas.append(line)
    return tile(canvas), cells


# ----------------------------------------------------------------------------------------------------------------
# Interpolation


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1): keeps Gaussian latents at a typical norm, unlike lerp."""
    a_dir, b_dir = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = math.acos(float(np.clip(np.dot(a_dir, b_dir), -1.0, 1.0)))
    if math.sin(omega) < 1e-6:  # (anti)parallel: any great circle works; lerp is the stable choice
        return (1.0 - t) * a + t * b
    return (math.sin((1.0 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


def interpolation_positions(num_keys: int, frames: int, which: Optional[range] = None) -> List[Tuple[int, float]]:
    """(segment, t) for each frame (or the frames in `which`): frames spread evenly over the closed loop
    key0 -> key1 -> ... -> key0."""
    return [(int(k * num_keys // frames), (k * num_keys % frames) / frames) for k in (which or range(frames))]


def interpolate(G: torch.nn.Module, seeds: Sequence[int], frames: int, space: str = "w", psi: Optional[float] = 0.7,
                cutoff: Optional[int] = 8, noise_mode: str = "const", class_idx: Optional[int] = None,
                batch_size: Optional[int] = None, progress: Optional[bool] = None,
                precision: Precision = FP32) -> np.ndarray:
    """uint8 frames [frames, H, W, C] of a looping walk through the seeds' latents (slerp in z, lerp in w).

    The walk returns from the last seed to the first, so an animation loops without a jump; frame k sits at
    position k*len(seeds)/frames along it, hence when `frames` is a multiple of len(seeds), frame
    i*frames/len(seeds) is exactly seed i's image (and frame 0 is always seed 0's). Latents are made one batch
    at a time, so only the frames themselves (bounded by check_result_size) grow with `frames`.
    """
    seeds = _check_seeds(seeds)
    if len(seeds) < 2:
        raise ValueError(f"interpolate needs at least 2 seeds, got {seeds}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames={frames!r} is invalid: expected an int >= 1")
    if space not in INTERPOLATION_SPACES:
        raise ValueError(f"space={space!r} is invalid: expected one of {INTERPOLATION_SPACES}")
    _check_noise_mode(noise_mode)
    check_result_size(G, frames, "frames")
    batch_size = _resolve_batch(G, batch_size)
    n = len(seeds)
    if space == "z":
        keys = [z_from_seed(s, int(G.config.latent_size)) for s in seeds]
    else:
        keys_w = ws_from_seeds(G, seeds, psi, cutoff, class_idx)
    res, channels = int(G.config.resolution), int(G.config.num_channels)
    out = np.empty((frames, res, res, channels), dtype=np.uint8)
    chunks = _batches(frames, batch_size)
    with _progress_bar(len(chunks), "generating", progress) as bar:
        for chunk in chunks:
            positions = interpolation_positions(n, frames, range(chunk.start, chunk.stop))
            if space == "z":
                z = np.stack([keys[seg] if t == 0 else slerp(keys[seg], keys[(seg + 1) % n], t)
                              for seg, t in positions])
                ws = ws_from_z(G, torch.from_numpy(z), psi, cutoff, class_idx)
            else:
                ws = torch.stack([keys_w[seg] if t == 0 else torch.lerp(keys_w[seg], keys_w[(seg + 1) % n], t)
                                  for seg, t in positions])
            out[chunk] = synthesize(G, ws, noise_mode, batch_size, progress=False, precision=precision)
            bar.update(1)
    return out
