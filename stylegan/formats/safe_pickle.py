"""A restricted unpickler for official NVlabs TF pickles: numbers and arrays only, never code.

Why: an official pickle references `dnnlib.tflib.network.Network`, whose real `__setstate__` execs the embedded
`build_module_src`. This unpickler resolves ONLY an allow-list of globals (docs/FORMATS.md §1.1): the Network class
becomes `NetworkStub`, which just keeps the state dict; numpy array/scalar reconstruction. Nothing else
(the official state dicts are plain dicts, lists and tuples, which need no global).
Any other global - and so any `__reduce__` trick, which always needs one - raises `UnsafePickleError` naming it.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, BinaryIO, Callable, Dict, List, Tuple, Union

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list (the message names it as "module.name")."""


class NetworkStub:
    """Inert stand-in for `dnnlib.tflib.network.Network`: holds the pickled state, never imports TF or dnnlib.

    Attributes (state versions 2 and 3, docs/FORMATS.md §1.2): version, name, static_kwargs (dict), components
    (dict of stubs), build_func_name, build_module_src (kept as text, never executed), variables (list of
    (name, ndarray)).
    """

    def __init__(self) -> None:
        self.version: int = 0
        self.name: str = ""
        self.static_kwargs: Dict[str, Any] = {}
        self.components: Dict[str, "NetworkStub"] = {}
        self.build_func_name: str = ""
        self.build_module_src: str = ""
        self.variables: List[Tuple[str, np.ndarray]] = []

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"Network state must be a dict, got {type(state).__name__}")
        version = state.get("version")
        if version not in (2, 3):
            raise pickle.UnpicklingError(f"unsupported Network state version {version!r} (expected 2 or 3)")
        missing = [k for k in ("name", "static_kwargs", "build_func_name", "variables") if k not in state]
        if missing:
            raise pickle.UnpicklingError(f"Network state lacks {missing}")
        self.version = version
        self.name = str(state["name"])
        self.static_kwargs = dict(state["static_kwargs"])
        self.components = dict(state.get("components", {}))
        self.build_func_name = str(state["build_func_name"])
        self.build_module_src = str(state.get("build_module_src", ""))
        self.variables = [(str(k), v) for k, v in state["variables"]]

    @property
    def vars(self) -> Dict[str, np.ndarray]:
        """Own variables by local name."""
        return dict(self.variables)

    def __repr__(self) -> str:
        return (f"NetworkStub(name={self.name!r}, func={self.build_func_name!r}, "
                f"components={sorted(self.components)}, {len(self.variables)} variables)")


def _numpy_reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_scalar() -> Callable:
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    reconstruct, scalar = _numpy_reconstruct(), _numpy_scalar()
    allowed: Dict[Tuple[str, str], Any] = {("dnnlib.tflib.network", "Network"): NetworkStub}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = reconstruct
        allowed[(mod, "scalar")] = scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class resolves only the allow-list above."""

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global '{module}.{name}': not in the allow-list of "
                                    f"stylegan.formats.safe_pickle (official StyleGAN pickles only need "
                                    f"dnnlib.tflib.network.Network and numpy arrays)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r}: official StyleGAN pickles have none")


def safe_load(path_or_file: Union[str, os.PathLike, BinaryIO, bytes]) -> Any:
    """Unpickles with the allow-list (encoding='latin1' for the Python 2/3.6-era numpy payloads)."""
    if isinstance(path_or_file, (bytes, bytearray)):
        return SafeUnpickler(io.BytesIO(path_or_file), encoding="latin1").load()
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as f:
            return SafeUnpickler(f, encoding="latin1").load()
    return SafeUnpickler(path_or_file, encoding="latin1").load()


__all__ = ["NetworkStub", "SafeUnpickler", "UnsafePickleError", "safe_load"]
