"""Issue 20, the dataset side: --glyphs, --resolution and dataset.json labels are checked against what they cost
before any work, a failed preparation leaves no temp file, a read-only --cache-dir is a clear error, and --strict
re-checks a cache that a non-strict run built.

The read-only filesystem is real where the tests run as root (a tmpfs mounted read-only) and skipped otherwise;
the other write failures are made by monkeypatching the writer to raise the errno.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylegan.cli.train import train
from stylegan.training import dataset as dataset_module
from stylegan.training.dataset import MAX_CLASSES, ImageDataset, cache_bytes
from stylegan.training.image_reader import SkippedImage
from stylegan.training.glyphs import MAX_GLYPH_RESOLUTION, MAX_GLYPHS

from test_reliability_resources import assert_one_line_error, run_cli_under_memory_ceiling, run_under_memory_ceiling


def _files(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() \
        else []


def _images(folder: Path, n: int = 2, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), (10 * i, 20, 30)).save(folder / f"{i}.png")
    return folder


# ----------------------------------------------------------------------------------------------------------------
# Sizes checked before any work


def test_cache_bytes_is_the_images_array_plus_its_header(tmp_path):
    ds = ImageDataset(str(_images(tmp_path / "d", 3)), 8, cache_dir=tmp_path / "c")
    assert (ds.cache_path / "images.npy").stat().st_size == cache_bytes(3, 8, 3)


def test_train_huge_glyphs_is_a_one_line_error_without_a_file(tmp_path, tiny_cli):
    cache = tmp_path / "cache"
    args = tiny_cli + ["--outdir", str(tmp_path / "run"), "--cache-dir", str(cache), "--glyphs", "100000000"]
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 2, result.output
    assert "--glyphs 100000000 is above the limit of 1000000" in result.output and "GiB" in result.output
    assert _files(cache) == []


def test_train_huge_glyphs_fails_fast_under_memory_ceiling(tmp_path, tiny_cli):
    cache = tmp_path / "cache"
    proc = run_cli_under_memory_ceiling(["train"] + tiny_cli + ["--outdir", "run", "--cache-dir", str(cache),
                                                                "--glyphs", "100000000"], tmp_path)
    assert_one_line_error(proc, "--glyphs", f"limit of {MAX_GLYPHS}")
    assert _files(cache) == []


def test_glyphs_resolution_beyond_the_drawing_limit(tmp_path):
    with pytest.raises(ValueError, match=f"--resolution 2048 is above the limit of {MAX_GLYPH_RESOLUTION} px.*GiB"):
        ImageDataset("builtin:glyphs", 2048, cache_dir=tmp_path / "c", glyphs_count=4)
    assert _files(tmp_path / "c") == []


def test_folder_resolution_beyond_the_disk_fails_fast_under_memory_ceiling(tmp_path):
    """1048576 px: 3 TiB per image; it crashed in the memmap before."""
    data, cache = _images(tmp_path / "d"), tmp_path / "cache"
    proc = run_under_memory_ceiling(
        "from stylegan.training.dataset import ImageDataset\n"
        "try:\n"
        f"    ImageDataset({str(data)!r}, 1048576, cache_dir={str(cache)!r})\n"
        "except ValueError as e:\n"
        "    print('ValueError:', e)\n", tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "ValueError: dataset" in proc.stdout and "1048576x1048576x3" in proc.stdout, proc.stdout
    assert "--resolution" in proc.stdout and "--cache-dir" in proc.stdout and "free in" in proc.stdout
    assert _files(cache) == []


def test_dataset_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    data = _images(tmp_path / "d", 4)
    real = dataset_module.shutil.disk_usage
    free = cache_bytes(4, 16, 3) - 1  # one byte short

    monkeypatch.setattr(dataset_module.shutil, "disk_usage", lambda p: real(p)._replace(free=free))
    with pytest.raises(ValueError, match=r"4 images of 16x16x3 pixels needs 3\.1 KiB, more than the 3\.1 KiB free"):
        ImageDataset(str(data), 16, cache_dir=tmp_path / "c")
    assert _files(tmp_path / "c") == []
    monkeypatch.setattr(dataset_module.shutil, "disk_usage", lambda p: real(p)._replace(free=free + 1))
    assert len(ImageDataset(str(data), 16, cache_dir=tmp_path / "c")) == 4


def _labelled(folder: Path, label: int) -> Path:
    _images(folder, 2)
    (folder / "dataset.json").write_text(json.dumps({"labels": [["0.png", 0], ["1.png", label]]}))
    return folder


def test_label_implying_a_huge_label_space_is_refused_before_decoding(tmp_path, monkeypatch):
    decoded = []
    monkeypatch.setattr(dataset_module, "read_pixels", lambda *a: decoded.append(a))
    with pytest.raises(ValueError, match=r"gives '1\.png' the label 1000000000000, which implies 1000000000001 "
                                         rf"classes, above the limit of {MAX_CLASSES}"):
        ImageDataset(str(_labelled(tmp_path / "d", 10 ** 12)), 16, cache_dir=tmp_path / "c")
    assert decoded == [] and _files(tmp_path / "c") == []
    monkeypatch.undo()
    ds = ImageDataset(str(_labelled(tmp_path / "ok", MAX_CLASSES - 1)), 16, cache_dir=tmp_path / "c2")
    assert ds.num_classes == MAX_CLASSES


def test_train_cond_with_a_huge_label_fails_fast_under_memory_ceiling(tmp_path, tiny_cli):
    data = _labelled(tmp_path / "d", 10 ** 12)
    proc = run_cli_under_memory_ceiling(["train"] + tiny_cli + ["--outdir", "run", "--cache-dir", "cache",
                                                                "--data", str(data), "--cond"], tmp_path)
    assert_one_line_error(proc, "1000000000001 classes", str(MAX_CLASSES))


# ----------------------------------------------------------------------------------------------------------------
# Temp files and write failures


def _no_leftovers(cache: Path) -> None:
    assert not any(".tmp" in name for name in _files(cache)), _files(cache)
    assert not any(p.is_dir() for p in cache.glob("*")), list(cache.glob("*"))  # no half-made cache entry


@pytest.mark.parametrize("data", sorted(dataset_module.BUILTIN_DATASETS))
def test_failed_glyph_preparation_removes_its_temp_file(tmp_path, monkeypatch, data):
    kind, params_class, real = dataset_module.BUILTIN_DATASETS[data]

    def crash_at_three(i, resolution, params):
        if i == 3:
            raise KeyboardInterrupt
        return real(i, resolution, params)

    monkeypatch.setitem(dataset_module.BUILTIN_DATASETS, data, (kind, params_class, crash_at_three))
    with pytest.raises(KeyboardInterrupt):
        ImageDataset(data, 8, cache_dir=tmp_path / "c", glyphs_count=8)
    _no_leftovers(tmp_path / "c")


def test_failed_folder_preparation_removes_its_temp_file(tmp_path, monkeypatch):
    def crash(*args):
        raise SkippedImage("unreadable", "decoder crashed")

    monkeypatch.setattr(dataset_module, "read_pixels", crash)
    with pytest.raises(ValueError, match="none of its 2 image file"):
        ImageDataset(str(_images(tmp_path / "d")), 16, cache_dir=tmp_path / "c")
    _no_leftovers(tmp_path / "c")


def test_disk_full_during_preparation_is_a_clear_error_without_leftovers(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset_module, "_move_into_place", full)
    with pytest.raises(ValueError, match=r"cannot write the dataset cache in .* \(--cache-dir\): .*No space left"):
        ImageDataset("builtin:glyphs", 8, cache_dir=tmp_path / "c", glyphs_count=4)
    _no_leftovers(tmp_path / "c")


def test_unwritable_cache_dir_is_a_clear_error(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "c"))

    monkeypatch.setattr(np.lib.format, "open_memmap", read_only)
    with pytest.raises(ValueError, match=r"\(--cache-dir\): .*Read-only file system.*pass a writable --cache-dir"):
        ImageDataset(str(_images(tmp_path / "d")), 16, cache_dir=tmp_path / "c")
    _no_leftovers(tmp_path / "c")


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (root only); yields (mount point, remount(read_only))."""
    point = tmp_path / "fs"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")

    def remount(read_only: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(point)], check=True)

    try:
        yield point, remount
    finally:
        subprocess.run(["umount", "--lazy", str(point)], check=True)  # lazy: a failed test may still map a file


def test_read_only_cache_dir_on_a_real_read_only_filesystem(tmp_path, tmpfs):
    point, remount = tmpfs
    data = _images(tmp_path / "d")
    built = ImageDataset(str(data), 16, cache_dir=point / "cache")
    remount(True)
    assert len(ImageDataset(str(data), 16, cache_dir=point / "cache")) == len(built)  # a built cache still opens
    with pytest.raises(ValueError, match=r"\(--cache-dir\): .*Read-only file system"):
        ImageDataset(str(data), 8, cache_dir=point / "cache")  # a new entry cannot be written
    with pytest.raises(ValueError, match=r"\(--cache-dir\): .*Read-only file system"):
        ImageDataset(str(data), 16, cache_dir=point / "other")


def test_train_read_only_cache_dir_is_a_one_line_error(tmp_path, tmpfs, tiny_cli):
    point, remount = tmpfs
    remount(True)
    result = CliRunner().invoke(train, tiny_cli + ["--outdir", str(tmp_path / "run"), "--cache-dir", str(point)])
    assert result.exit_code == 2, result.output
    assert "--cache-dir" in result.output and "Read-only file system" in result.output


# ----------------------------------------------------------------------------------------------------------------
# --strict after a non-strict build


def test_strict_rechecks_a_cache_built_without_it(tmp_path):
    data = _images(tmp_path / "d", 2)
    (data / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        lax = ImageDataset(str(data), 16, cache_dir=tmp_path / "c")
    assert lax.meta["strict"] is False and lax.meta["unreadable"] == ["broken.png"]
    with pytest.raises(ValueError, match="1 unreadable image.*broken.png"):
        ImageDataset(str(data), 16, cache_dir=tmp_path / "c", strict=True)
    (data / "broken.png").unlink()  # fixed data: a new fingerprint, a clean cache that --strict accepts
    assert len(ImageDataset(str(data), 16, cache_dir=tmp_path / "c", strict=True)) == 2


def test_strict_accepts_a_clean_cache_built_without_it(tmp_path):
    data = _images(tmp_path / "d", 2)
    lax = ImageDataset(str(data), 16, cache_dir=tmp_path / "c")
    stamp = (lax.cache_path / "images.npy").stat().st_mtime_ns
    strict = ImageDataset(str(data), 16, cache_dir=tmp_path / "c", strict=True)
    assert strict.cache_path == lax.cache_path and (strict.cache_path / "images.npy").stat().st_mtime_ns == stamp
