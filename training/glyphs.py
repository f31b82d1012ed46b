"""`builtin:glyphs`: a procedural RGB dataset of digits and letters that ships with the package.

Why: a CPU-only user needs a dataset that needs no download and is learnable in minutes, with structure at two
scales so progressive growing and style mixing show something: the glyph's shape, position and rotation are
coarse attributes; its colour and the background's colours and gradient are fine ones.
Every image is a pure function of (seed, index): `render_glyph(i)` draws the same picture on every machine that
has the same Pillow font, so the dataset can be regenerated instead of stored.
Uses Pillow's bundled scalable font (`ImageFont.load_default(size=...)`, Pillow >= 10.1).
"""
from __future__ import annotations

import functools
import math
import string
from dataclasses import asdict, dataclass
from typing import Any, Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CLASSES = string.digits + string.ascii_uppercase  # 36 classes: label k draws CLASSES[k]
# Limits of what `stylegan train --glyphs/--resolution` may ask for. More images of a procedural set teach nothing
# new but take hours to draw and fill the disk; and each glyph is drawn at 4x in float64 (drawing_bytes), which
# past 1024 px (the official networks' largest size) needs more memory than a typical machine has.
MAX_GLYPHS = 1_000_000
MAX_GLYPH_RESOLUTION = 1024
SUPERSAMPLE = 4
# Stroke styles: 'solid' glyphs (the default set) or hollow 'outline' ones (the same glyphs, colours and poses, drawn as
# a ring along the contour): a differently styled set for fine-tuning experiments (docs/TRANSFER.md).
GLYPH_STYLES = ("solid", "outline")
OUTLINE_WIDTH = 0.06  # the outline's stroke width on each side of the contour, relative to the font size


@dataclass(frozen=True)
class GlyphParams:
    """Everything that determines the dataset's content (it is part of the cache key)."""

    count: int = 10000
    seed: int = 0
    num_classes: int = 36
    version: int = 2  # bump when the drawing code changes, so old caches are not reused
    style: str = "solid"  # one of GLYPH_STYLES

    def to_dict(self) -> Dict[str, Any]:
        """The cache key's content; the default style is left out so caches made before it existed stay valid."""
        d = asdict(self)
        if d["style"] == "solid":
            del d["style"]
        return d


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


def _luma(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _colour_in_luma(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A random RGB colour whose luma lies in [lo, hi] (rejection sampling, deterministic given rng)."""
    for _ in range(50):
        c = rng.uniform(0, 255, size=3)
        if lo <= _luma(c) <= hi:
            return c
    return np.full(3, (lo + hi) / 2)


def _gradient(size: int, c0: np.ndarray, c1: np.ndarray, angle: float) -> np.ndarray:
    """[size, size, 3] float linear gradient from c0 to c1 along direction `angle` (radians)."""
    t = (np.arange(size) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(t, t, indexing="ij")
    p = xx * math.cos(angle) + yy * math.sin(angle)
    p = (p - p.min()) / max(p.max() - p.min(), 1e-6)
    return c0[None, None, :] * (1 - p[..., None]) + c1[None, None, :] * p[..., None]


def canvas_size(resolution: int) -> int:
    """Side of the supersampled canvas a glyph of `resolution` px is drawn on (4x, at least 128 px)."""
    return max(SUPERSAMPLE * resolution, 128)


@dataclass(frozen=True)
class GlyphShape:
    """Where and how big one glyph is drawn on a canvas: the coarse attributes of builtin:glyphs."""

    font_size: int
    stroke: int    # extra stroke width that thickens the glyph: readable at 16-32 px
    angle: float   # degrees, counter-clockwise
    cx: float
    cy: float


def random_shape(rng: np.random.Generator, canvas: int) -> GlyphShape:
    """Size, stroke, rotation and position of a glyph on a `canvas` px square (five draws from `rng`, in order)."""
    font_size = int(canvas * rng.uniform(0.7, 0.95))
    stroke = int(round(font_size * rng.uniform(0.02, 0.05)))
    angle = rng.uniform(-15, 15)
    cx = canvas / 2 + rng.uniform(-0.08, 0.08) * canvas
    cy = canvas / 2 + rng.uniform(-0.08, 0.08) * canvas
    return GlyphShape(font_size, stroke, angle, cx, cy)


def glyph_alpha(char: str, canvas: int, shape: GlyphShape, style: str = "solid") -> np.ndarray:
    """float32 [canvas, canvas] coverage in [0, 1] of `char` drawn with `shape` (anti-aliased, rotated); style
    'outline' draws only a ring along the contour (GLYPH_STYLES)."""
    mask = Image.new("L", (canvas, canvas), 0)
    if style == "outline":  # a hollow glyph: only the stroke along the contour
        ImageDraw.Draw(mask).text((shape.cx, shape.cy), char, font=_font(shape.font_size), fill=0, anchor="mm",
                                  stroke_width=max(shape.stroke, int(round(shape.font_size * OUTLINE_WIDTH))),
                                  stroke_fill=255)
    else:
        ImageDraw.Draw(mask).text((shape.cx, shape.cy), char, font=_font(shape.font_size), fill=255, anchor="mm",
                                  stroke_width=shape.stroke, stroke_fill=255)
    mask = mask.rotate(shape.angle, resample=Image.BICUBIC, center=(shape.cx, shape.cy))
    return np.asarray(mask, dtype=np.float32) / 255.0


def downscale(img: np.ndarray, resolution: int) -> np.ndarray:
    """A float drawing [S, S] (gray) or [S, S, 3] (RGB) in [0, 255] -> uint8 at `resolution`: rounded once, then
    Lanczos-resized, for clean anti-aliased edges."""
    big = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "L" if img.ndim == 2 else "RGB")
    return np.array(big.resize((resolution, resolution), Image.LANCZOS), dtype=np.uint8)


def drawing_bytes(resolution: int) -> int:
    """Bytes of one float64 RGB canvas of the supersampled drawing; render_glyph holds a few at once."""
    return canvas_size(resolution) ** 2 * 3 * 8


def render_glyph(index: int, resolution: int, params: GlyphParams = GlyphParams()) -> Tuple[np.ndarray, int]:
    """Return (uint8 [resolution, resolution, 3] image, class label) for image `index`; deterministic.

    A solid glyph of one colour on a soft two-colour background gradient, light-on-dark or dark-on-light: the
    glyph's luma is at least 60 away from the gradient's first colour (the second is within 50 per channel of it).
    Version 1 drew two-tone fills, outlines and backgrounds of any two colours: at 16-32 px
    its glyphs often had too little contrast to read, and a short CPU run learned colour blobs instead of shapes.
    Drawn at a supersampled size (4x, at least 128 px) and downscaled with Lanczos for clean anti-aliased edges.
    """
    if not 0 <= index < params.count:
        raise IndexError(f"glyph index {index} out of range [0, {params.count})")
    rng = np.random.default_rng([params.seed, index, 0x61797068])
    label = int(rng.integers(params.num_classes))
    S = canvas_size(resolution)

    # Colours: a light background with a dark glyph, or the reverse.
    if rng.uniform() < 0.5:
        bg0, fill = _colour_in_luma(rng, 150, 255), _colour_in_luma(rng, 0, 90)
    else:
        bg0, fill = _colour_in_luma(rng, 0, 105), _colour_in_luma(rng, 165, 255)
    bg1 = np.clip(bg0 + rng.uniform(-50, 50, size=3), 0, 255)   # a nearby second colour: a soft gradient
    bg = _gradient(S, bg0, bg1, rng.uniform(0, 2 * math.pi))

    alpha = glyph_alpha(CLASSES[label], S, random_shape(rng, S), params.style)[..., None]
    img = bg * (1 - alpha) + fill[None, None, :] * alpha
    return downscale(img, resolution), label
