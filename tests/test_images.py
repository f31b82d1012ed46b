"""stylegan.images: the official float -> uint8 conversion, image grids and atomic grid PNGs."""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.images import image_grid, save_image_grid, tile, to_uint8


def test_to_uint8_matches_the_official_conversion():
    x = torch.tensor([-2.0, -1.0, -0.0039, 0.0, 0.5, 0.999, 1.0, 3.0]).view(1, 1, 1, 8).repeat(1, 3, 1, 1)
    x[0, 1] += 0.25  # channels differ, so a wrong NCHW -> NHWC permutation shows
    out = to_uint8(x)
    assert out.shape == (1, 1, 8, 3) and out.dtype == np.uint8
    # x*127.5 + 128, clamp, truncate: -1 -> 0.5 -> 0, -0.0039 -> 127.50 -> 127, 0.999 -> 255.37 -> 255
    assert out[0, 0, :, 0].tolist() == [0, 0, 127, 128, 191, 255, 255, 255]
    assert out[0, 0, :, 1].tolist() == [0, 32, 159, 159, 223, 255, 255, 255]


def test_image_grid_and_tile():
    images = np.arange(3).reshape(3, 1, 1, 1).repeat(2, axis=1).repeat(2, axis=2).astype(np.uint8) + 1
    grid = image_grid(images, 2, 2)
    assert grid.shape == (4, 4, 1)
    assert grid[::2, ::2, 0].tolist() == [[1, 2], [3, 0]]
    assert image_grid(images, 3, 1, fill=9).tolist() == tile([list(images)]).tolist()
    assert image_grid(images, 2, 2, fill=9)[2:, 2:, 0].tolist() == [[9, 9], [9, 9]]
    with pytest.raises(ValueError, match="do not fit"):
        image_grid(images, 1, 2)
    with pytest.raises(ValueError, match="grid 0x2"):
        image_grid(images, 0, 2)


def _training_loop_save_grid(images: torch.Tensor, cols: int, size=None) -> bytes:
    """The PNG bytes training/loop.py's save_grid wrote before it used save_image_grid (kept as the reference)."""
    x = images.detach().float().cpu()
    if size is not None and x.shape[-1] != size:
        f = size // x.shape[-1]
        x = x.repeat_interleave(f, 2).repeat_interleave(f, 3)
    x = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    n, c, h, w = x.shape
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * h, cols * w, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(arr[..., 0] if c == 1 else arr).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_save_image_grid_writes_the_training_loops_png_bytes(tmp_path, channels):
    x = torch.rand(5, channels, 8, 8, generator=torch.Generator().manual_seed(channels)) * 2.4 - 1.2
    x[0, 0, 0, :3] = torch.tensor([-1.0, 1.0, -0.0039])  # the clamp and truncation edges
    save_image_grid(x, tmp_path / "plain.png", 3)
    assert (tmp_path / "plain.png").read_bytes() == _training_loop_save_grid(x, 3)
    save_image_grid(x, tmp_path / "up.png", 2, upscale_to=32)
    assert (tmp_path / "up.png").read_bytes() == _training_loop_save_grid(x, 2, size=32)
    with Image.open(tmp_path / "up.png") as im:
        assert im.mode == {1: "L", 3: "RGB", 4: "RGBA"}[channels] and im.size == (2 * 32, 3 * 32)
        pixels = np.asarray(im).reshape(3 * 32, 2 * 32, channels)
    # Cell (row 0, col 0) is image 0 repeated 4x4 per pixel; the empty last cell is black.
    assert np.array_equal(pixels[:32:4, :32:4], to_uint8(x[:1])[0])
    assert not pixels[64:, 32:].any()


def test_save_image_grid_rows_and_errors(tmp_path):
    x = torch.zeros(2, 3, 4, 4)
    save_image_grid(x, tmp_path / "g.png", 1, rows=3)
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (4, 12)
    for kwargs, text in (({"cols": 0}, "cols=0"), ({"cols": 1, "rows": 1}, "do not fit"),
                         ({"cols": 2, "upscale_to": 6}, "upscale_to=6"),
                         ({"cols": 2, "upscale_to": 2}, "upscale_to=2")):
        with pytest.raises(ValueError, match=text):
            save_image_grid(x, tmp_path / "bad.png", **kwargs)
    with pytest.raises(ValueError, match=r"\[2, 2, 4, 4\].*C in \(1, 3, 4\)"):
        save_image_grid(torch.zeros(2, 2, 4, 4), tmp_path / "bad.png", 2)
    assert not (tmp_path / "bad.png").exists()


def test_save_image_grid_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    path.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_image_grid(torch.zeros(1, 3, 4, 4), path, 1)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
