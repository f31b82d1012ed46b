"""sha256 of a file: what results, configs and caches record to name the exact file they came from.

Remembered per (path, size, mtime), so hashing a large network or feature-network file again in one process is free.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Tuple, Union

_HASHES: Dict[Tuple[str, int, int], str] = {}


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """sha256 hex digest of the file's bytes (read in 1 MiB blocks)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
