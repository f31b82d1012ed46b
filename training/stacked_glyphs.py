"""`builtin:stacked-glyphs`: 1000 modes, one digit glyph in each of R, G and B (the Stacked-MNIST protocol).

Why: mode coverage is measured on data with a known, countable set of modes. Metz et al. 2017 (unrolled GANs),
VEEGAN (Srivastava et al. 2017) and PGGAN (Karras et al. 2018, Table 4) stack three MNIST digits into the
channels of one image, so there are 10^3 modes, and count how many of them 26,000 generated samples hit with a
digit classifier run on each channel. MNIST needs a download; here each channel holds a digit drawn by the
package's own glyph renderer (glyphs.py: same font, shape variation and supersampled drawing), so the data and its
classifier (stylegan/metrics/glyph_classifier.py) work offline.
An image is a pure function of (seed, index). Its label is its mode, 100 * d_R + 10 * d_G + d_B; the digits are
the first draws of the image's RNG, so labels are known without drawing (`stacked_digits`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np

from .glyphs import canvas_size, downscale, glyph_alpha, random_shape

NUM_DIGITS = 10
NUM_MODES = NUM_DIGITS ** 3
# Per-channel grey levels: a dark background and a bright glyph (MNIST's polarity), each varying per channel, so
# the colours vary between images of one mode while every channel keeps a contrast of at least 130 levels.
BACKGROUND_LEVELS = (0.0, 50.0)
GLYPH_LEVELS = (180.0, 255.0)
_RNG_TAG = 0x73746B64  # "stkd": keeps these streams apart from builtin:glyphs' for the same (seed, index)


@dataclass(frozen=True)
class StackedGlyphParams:
    """Everything that determines the dataset's content (it is part of the cache key)."""

    count: int = 10000
    seed: int = 0
    version: int = 1  # bump when the drawing code changes, so old caches are not reused

    @property
    def num_classes(self) -> int:
        return NUM_MODES

    def to_dict(self) -> Dict[str, int]:
        return asdict(self)


def mode_of_digits(d_r: int, d_g: int, d_b: int) -> int:
    """The mode index of an image whose R, G, B channels hold digits d_r, d_g, d_b."""
    return 100 * d_r + 10 * d_g + d_b


def _rng(index: int, params: StackedGlyphParams) -> np.random.Generator:
    if not 0 <= index < params.count:
        raise IndexError(f"stacked-glyph index {index} out of range [0, {params.count})")
    return np.random.default_rng([params.seed, index, _RNG_TAG])


def stacked_digits(index: int, params: StackedGlyphParams = StackedGlyphParams()) -> Tuple[int, int, int]:
    """The (R, G, B) digits of image `index`, without drawing it."""
    d = _rng(index, params).integers(NUM_DIGITS, size=3)
    return int(d[0]), int(d[1]), int(d[2])


def render_stacked_glyph(index: int, resolution: int,
                         params: StackedGlyphParams = StackedGlyphParams()) -> Tuple[np.ndarray, int]:
    """Return (uint8 [resolution, resolution, 3] image, mode) for image `index`; deterministic.

    Each channel is drawn on its own: a digit with its own size, stroke, rotation and position (glyphs.py's
    `random_shape`), light on a dark level, on the supersampled canvas, then Lanczos-downscaled.
    """
    rng = _rng(index, params)
    digits = rng.integers(NUM_DIGITS, size=3)
    canvas = canvas_size(resolution)
    channels = []
    for digit in digits:
        alpha = glyph_alpha(str(int(digit)), canvas, random_shape(rng, canvas))
        background, glyph = rng.uniform(*BACKGROUND_LEVELS), rng.uniform(*GLYPH_LEVELS)
        channels.append(downscale(background + (glyph - background) * alpha, resolution))
    return np.stack(channels, axis=-1), mode_of_digits(*(int(d) for d in digits))
