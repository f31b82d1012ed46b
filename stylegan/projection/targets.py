"""Target images for projection, prepared as NVlabs' projector.py does: centre crop to a square, Lanczos resize to
the network's resolution, and the network's channel count (grayscale for 1-channel networks).

Why strict checks before decoding: a file that is not an image, an empty one, or one whose header claims a huge
size must fail with one line naming the file, not a Pillow traceback or a decompression that fills memory.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import PIL.Image
import torch

MAX_TARGET_SIDE = 8192  # larger photos are refused: 8192^2 RGB is 200 MB decoded, and gains nothing at <= 1024 px
PIL_MODE_FOR_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}


class TargetImageError(ValueError):
    """A target file is missing, not an image, empty or too large."""


def load_target(path: Union[str, os.PathLike], resolution: int, channels: int) -> torch.Tensor:
    """uint8 [channels, resolution, resolution] of the image file at `path` (official crop + Lanczos resize)."""
    if channels not in PIL_MODE_FOR_CHANNELS:
        raise ValueError(f"channels={channels!r}: expected one of {sorted(PIL_MODE_FOR_CHANNELS)}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise TargetImageError(f"{path} is a directory: expected an image file (PNG, JPEG, ...)")
    if not os.path.isfile(path):
        raise TargetImageError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise TargetImageError(f"{path} is empty (0 bytes): expected an image file (PNG, JPEG, ...)")
    try:
        with PIL.Image.open(path) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise TargetImageError(f"{path} is an empty {width}x{height} image")
            if max(width, height) > MAX_TARGET_SIDE:
                raise TargetImageError(f"{path} is {width}x{height} px: the limit is {MAX_TARGET_SIDE} px per side; "
                                       f"downscale it first")
            image = image.convert(PIL_MODE_FOR_CHANNELS[channels])  # decodes the pixels
    except TargetImageError:
        raise
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
        raise TargetImageError(f"{path} is not a readable image ({type(exc).__name__}: {exc})") from None
    side = min(width, height)
    image = image.crop(((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2))
    image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def uint8_to_float(img_u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1] (x / 127.5 - 1): the generator's range, for losses against its images."""
    return img_u8.to(torch.float32) / 127.5 - 1.0


__all__ = ["load_target", "TargetImageError", "MAX_TARGET_SIDE", "uint8_to_float"]
