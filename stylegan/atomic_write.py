"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the complete new one, never half.

Why one function: networks, checkpoints, logs, grids, dataset caches and metric results all promise this, and a
temp file in the same folder + fsync + rename (+ directory fsync) is easy to get subtly wrong when repeated.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional, Union


def _umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it, racing threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_output(path: Union[str, os.PathLike], tmp_prefix: Optional[str] = None,
                  before_replace: Optional[Callable[[str], None]] = None) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces `path` when the block ends without an exception: temp file in
    the same folder, fsync, rename, directory fsync. On an exception the temp file is removed and `path` is
    untouched. For writers that stream (a zip of images); `atomic_write_bytes` is the one-call form.

    tmp_prefix names the temp file (default '.<name>.'); before_replace(tmp) runs just before the rename (tests
    inject crashes there).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the mode open() would
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Union[str, os.PathLike]) -> None:
    """Make a rename in `folder` durable (best effort: some filesystems refuse to fsync a directory)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_bytes(path: Union[str, os.PathLike], data: Union[bytes, memoryview], tmp_prefix: Optional[str] = None,
                       before_replace: Optional[Callable[[str], None]] = None) -> None:
    """Writes `data` to `path` so that a reader never sees a partial file: temp file, fsync, rename.

    tmp_prefix names the temp file (default '.<name>.'); before_replace(tmp) runs just before the rename (tests
    inject crashes there).
    """
    with atomic_output(path, tmp_prefix, before_replace) as f:
        f.write(data)
