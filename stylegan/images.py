"""Float images -> uint8 pixels, grids of them, grid PNGs, and the 2x2 box downsampling of image batches.

Why one module: `stylegan generate`, the style-mixing figure and the training loop's fakes/reals grids must show the
same pixels for the same tensor, so the conversion is NVlabs' (x*127.5 + 128, clamped to [0, 255] and truncated;
docs/FORMATS.md §1.11) everywhere. The SWD metric quantises differently on purpose (its protocol), see
`stylegan.metrics.swd.to_uint8_pggan`.
"""
from __future__ import annotations

import io
import math
import os
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .atomic_write import atomic_write_bytes

PNG_CHANNELS = (1, 3, 4)  # written as PIL modes L, RGB, RGBA


def box_down2(x: torch.Tensor) -> torch.Tensor:
    """2x2 box average of [N, C, H, W] (official downscale2d factor 2, and how lower-lod reals are made)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))


def box_downsample(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Repeated 2x2 box averages of float [N, C, S, S] down to `resolution` (official lower-lod images, computed
    in float without intermediate rounding); ValueError unless S / resolution is a power of two."""
    s = x.shape[-1]
    if resolution > s or s % resolution or (s // resolution) & (s // resolution - 1):
        raise ValueError(f"cannot box-downsample {s} px images to {resolution} px: expected a power-of-two ratio")
    while x.shape[-1] > resolution:
        x = box_down2(x)
    return x


def to_uint8_nchw(img: torch.Tensor) -> torch.Tensor:
    """NCHW float images in [-1, 1] -> NCHW uint8 on the same device, the official rounding (x*127.5 + 128, clamp,
    truncate): what NVlabs' generate and metrics code feed to PNG files and to feature networks."""
    return (img.detach().to(torch.float32) * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """NCHW float images in [-1, 1] -> NHWC uint8 numpy (for PNG files), the rounding of `to_uint8_nchw`."""
    return to_uint8_nchw(img).permute(0, 2, 3, 1).cpu().numpy()


def tile(rows_of_images: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """One image [H*rows, W*cols, C] of equally sized HWC images given row by row."""
    return np.concatenate([np.concatenate(list(line), axis=1) for line in rows_of_images], axis=0)


def image_grid(images: np.ndarray, cols: int, rows: int, fill: int = 0) -> np.ndarray:
    """Images [N, H, W, C] laid out row-major on a cols x rows grid; empty cells are `fill`; ValueError if N > cells."""
    if cols < 1 or rows < 1:
        raise ValueError(f"grid {cols}x{rows} is invalid: expected at least 1x1")
    n = images.shape[0]
    if n > cols * rows:
        raise ValueError(f"{n} images do not fit a {cols}x{rows} grid ({cols * rows} cells)")
    blank = np.full(images.shape[1:], fill, dtype=images.dtype)
    cells = list(images) + [blank] * (cols * rows - n)
    return tile([cells[r * cols:(r + 1) * cols] for r in range(rows)])


def save_image_grid(images: torch.Tensor, path: Union[str, os.PathLike], cols: int, rows: Optional[int] = None,
                    upscale_to: Optional[int] = None) -> None:
    """Writes float [-1, 1] images [N, C, H, W] as one PNG grid, atomically (a reader never sees half a PNG).

    rows None: as many as N needs. upscale_to: each cell's size in px, reached by nearest-neighbour repetition, so
    a low-resolution phase of training is shown pixel-exact at the final size. Empty cells are black.
    """
    if images.ndim != 4 or images.shape[1] not in PNG_CHANNELS:
        raise ValueError(f"images have shape {list(images.shape)}: expected [N, C, H, W] with C in {PNG_CHANNELS}")
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols={cols!r} is invalid: expected an int >= 1")
    pixels = to_uint8(images)
    if upscale_to is not None:
        size = pixels.shape[1]
        if isinstance(upscale_to, bool) or not isinstance(upscale_to, int) or upscale_to < size \
                or upscale_to % size or pixels.shape[2] != size:
            raise ValueError(f"upscale_to={upscale_to!r} is invalid for {size}x{pixels.shape[2]} images: expected "
                             f"a multiple of the (square) image size")
        factor = upscale_to // size
        pixels = pixels.repeat(factor, axis=1).repeat(factor, axis=2)
    grid = image_grid(pixels, cols, math.ceil(pixels.shape[0] / cols) if rows is None else rows)
    write_png(grid, path)


def _pil(pixels: np.ndarray) -> Image.Image:
    """PIL image of one uint8 HWC array (1, 3 or 4 channels); ValueError for anything else."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] not in PNG_CHANNELS:
        raise ValueError(f"pixels are {pixels.dtype} {list(pixels.shape)}: expected uint8 [H, W, C] with C in "
                         f"{PNG_CHANNELS}")
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def png_bytes(pixels: np.ndarray) -> bytes:
    """THE PNG encoding of one uint8 HWC image (1, 3 or 4 channels): every PNG the CLI writes and `stylegan serve`
    answers comes from here, so both give the same bytes."""
    buffer = io.BytesIO()
    _pil(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class _PilFrames:
    """Frames as PIL images, made one at a time whenever a writer iterates (Pillow's PNG writer does so twice),
    so a PIL copy of every frame never sits in memory next to the array."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def __iter__(self):
        return (_pil(frame) for frame in self.frames)


def animation_bytes(frames: np.ndarray, image_format: str, duration_ms: int) -> bytes:
    """A looping animation of uint8 frames [N, H, W, C] ('GIF', or 'PNG' for an animated PNG), `duration_ms` per
    frame: the encoding of `stylegan interpolate`'s files and of `stylegan serve`'s /api/interpolate."""
    buffer = io.BytesIO()
    _pil(frames[0]).save(buffer, format=image_format, save_all=True, append_images=_PilFrames(frames[1:]), loop=0,
                         duration=duration_ms)
    return buffer.getvalue()


def write_png(pixels: np.ndarray, path: Union[str, os.PathLike]) -> None:
    """Writes one uint8 HWC image (1, 3 or 4 channels) as a PNG, atomically."""
    atomic_write_bytes(path, png_bytes(pixels))
