"""`builtin:glyphs`: a procedural RGB dataset of digits and letters that ships with the package.

Why: a CPU-only user needs a dataset that needs no download and is learnable in minutes, with structure at two
scales so progressive growing and style mixing show something: the glyph's shape, position and rotation are
coarse attributes; its colours, outline, two-tone fill and the background gradient are fine ones.
Every image is a pure function of (seed, index): `render_glyph(i)` draws the same picture on every machine that
has the same Pillow font, so the dataset can be regenerated instead of stored.
Uses Pillow's bundled scalable font (`ImageFont.load_default(size=...)`, Pillow >= 10.1).
"""
from __future__ import annotations

import functools
import math
import string
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CLASSES = string.digits + string.ascii_uppercase  # 36 classes: label k draws CLASSES[k]


@dataclass(frozen=True)
class GlyphParams:
    """Everything that determines the dataset's content (it is part of the cache key)."""

    count: int = 10000
    seed: int = 0
    num_classes: int = 36
    version: int = 1  # bump when the drawing code changes, so old caches are not reused

    def to_dict(self) -> Dict[str, int]:
        return asdict(self)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    try:
        font = ImageFont.load_default(size=size)
    except TypeError as e:  # Pillow < 10.1: no size argument
        raise RuntimeError("builtin:glyphs needs Pillow >= 10.1 (scalable default font)") from e
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("builtin:glyphs needs Pillow built with FreeType (ImageFont.load_default(size=...) "
                           "returned a bitmap font)")
    return font


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3)


def _luma(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _gradient(size: int, c0: np.ndarray, c1: np.ndarray, angle: float) -> np.ndarray:
    """[size, size, 3] float linear gradient from c0 to c1 along direction `angle` (radians)."""
    t = (np.arange(size) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(t, t, indexing="ij")
    p = xx * math.cos(angle) + yy * math.sin(angle)
    p = (p - p.min()) / max(p.max() - p.min(), 1e-6)
    return c0[None, None, :] * (1 - p[..., None]) + c1[None, None, :] * p[..., None]


def render_glyph(index: int, resolution: int, params: GlyphParams = GlyphParams()) -> Tuple[np.ndarray, int]:
    """Return (uint8 [resolution, resolution, 3] image, class label) for image `index`; deterministic.

    Drawn at a supersampled size (4x, at least 128 px) and downscaled with Lanczos for clean anti-aliased edges.
    """
    if not 0 <= index < params.count:
        raise IndexError(f"glyph index {index} out of range [0, {params.count})")
    rng = np.random.default_rng([params.seed, index, 0x61797068])
    label = int(rng.integers(params.num_classes))
    S = max(4 * resolution, 128)

    # Background: two-colour linear gradient at a random angle.
    bg0, bg1 = _random_colour(rng), _random_colour(rng)
    bg = _gradient(S, bg0, bg1, rng.uniform(0, 2 * math.pi))
    bg_luma = (_luma(bg0) + _luma(bg1)) / 2

    # Glyph fill: two colours (a second gradient), contrasting with the background's mean brightness.
    def contrasting() -> np.ndarray:
        for _ in range(20):
            c = _random_colour(rng)
            if abs(_luma(c) - bg_luma) > 70:
                return c
        return np.full(3, 255.0 if bg_luma < 128 else 0.0)

    fill = _gradient(S, contrasting(), contrasting(), rng.uniform(0, 2 * math.pi))
    stroke_colour = _random_colour(rng)

    # Shape: size, stroke, rotation and position.
    font_size = int(S * rng.uniform(0.75, 1.0))
    bold = int(round(font_size * rng.uniform(0.015, 0.045)))      # thickens the fill: readable at 16-32 px
    outline = int(round(font_size * rng.uniform(0.03, 0.07))) if rng.uniform() < 0.5 else 0
    angle = rng.uniform(-25, 25)
    cx = S / 2 + rng.uniform(-0.1, 0.1) * S
    cy = S / 2 + rng.uniform(-0.1, 0.1) * S

    font = _font(font_size)
    outer = Image.new("L", (S, S), 0)
    inner = Image.new("L", (S, S), 0)
    text = CLASSES[label]
    ImageDraw.Draw(outer).text((cx, cy), text, font=font, fill=255, anchor="mm", stroke_width=bold + outline,
                               stroke_fill=255)
    ImageDraw.Draw(inner).text((cx, cy), text, font=font, fill=255, anchor="mm", stroke_width=bold,
                               stroke_fill=255)
    outer = outer.rotate(angle, resample=Image.BICUBIC, center=(cx, cy))
    inner = inner.rotate(angle, resample=Image.BICUBIC, center=(cx, cy))
    a_out = np.asarray(outer, dtype=np.float32)[..., None] / 255.0
    a_in = np.asarray(inner, dtype=np.float32)[..., None] / 255.0

    img = bg * (1 - a_out) + stroke_colour[None, None, :] * a_out   # outline colour under the whole glyph
    img = img * (1 - a_in) + fill * a_in                             # fill inside
    big = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    small = big.resize((resolution, resolution), Image.LANCZOS)
    return np.array(small, dtype=np.uint8), label
