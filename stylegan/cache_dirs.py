"""Where the package keeps files between runs: one root folder, one sub-folder per kind of file.

Root: $STYLEGAN_CACHE_DIR, else $XDG_CACHE_HOME/stylegan, else ~/.cache/stylegan. Kinds: `ops` (compiled kernels),
`datasets` (prepared images), `metrics` (real-image statistics), `downloads` (networks and feature networks).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

CACHE_ENV = "STYLEGAN_CACHE_DIR"
# The dataset cache's old variable: still honoured when CACHE_ENV is unset, with a warning naming the new one.
LEGACY_DATASET_ENV = "STYLEGAN_CACHE"


def cache_root() -> Path:
    """The root folder of every cache (see the module docstring for the lookup order)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get(LEGACY_DATASET_ENV):
        warnings.warn(f"${LEGACY_DATASET_ENV} is deprecated: set ${CACHE_ENV} instead (the same folder)",
                      DeprecationWarning, stacklevel=2)
        return Path(os.environ[LEGACY_DATASET_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylegan"


def cache_subdir(kind: str) -> Path:
    """The folder of one kind of cached file, e.g. cache_subdir("metrics")."""
    return cache_root() / kind
