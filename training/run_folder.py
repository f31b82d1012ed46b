"""The run folder of `stylegan train`: one run per folder, one process per run, nothing of another run clobbered.

A fresh run refuses a folder that already holds a run (or a killed run's leftovers); `--resume` is the way to
continue one. While a run trains, it holds an exclusive `flock` on `<outdir>/.lock`: the kernel drops it when the
process dies, however it dies, so a killed run never leaves a stale lock, and a second process on the same folder
gets a one-line error naming the process that owns it.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import List, Optional

from .checkpoint import TMP_PREFIX, list_checkpoints

LOCK_NAME = ".lock"
RUN_FILES = ("config.json", "log.jsonl", "reals.png")  # what a run writes before its first checkpoint


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (holds another run, or is in use)."""


def run_contents(outdir: Path) -> List[str]:
    """Names of what a run left in `outdir`: its files, grids, checkpoints and checkpoint temp files."""
    if not outdir.is_dir():
        return []
    names = []
    for p in sorted(outdir.iterdir()):
        if p.name in RUN_FILES or p.name.endswith(".pt") and p.name.startswith("checkpoint-") \
                or p.name.startswith(TMP_PREFIX) or (p.name.startswith("fakes") and p.name.endswith(".png")):
            names.append(p.name)
    return names


def check_fresh(outdir: Path) -> None:
    """RunFolderError unless `outdir` holds no run: a fresh run must never overwrite or prune another one's files."""
    found = run_contents(outdir)
    if not found:
        return
    checkpoints = list_checkpoints(outdir)
    shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    if checkpoints:
        raise RunFolderError(f"{outdir} already holds a run ({len(checkpoints)} checkpoint(s), the newest "
                             f"{checkpoints[-1].name}): continue it with --resume latest, or pick another --outdir")
    raise RunFolderError(f"{outdir} holds the leftovers of a run that never wrote a checkpoint ({shown}): delete "
                         f"them to start over there, or pick another --outdir")


class RunLock:
    """An exclusive flock on `<outdir>/.lock` for a run's lifetime (a context manager; `release()` ends it)."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock (a no-op when this object holds it already); RunFolderError when another process has it."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(f"{self.path.parent} is in use by another stylegan train (process {owner}); wait "
                                 f"for it to finish or pick another --outdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
