"""A restricted unpickler for official NVlabs TF pickles: numbers and arrays only, never code.

Why: an official pickle references `dnnlib.tflib.network.Network`, whose real `__setstate__` execs the embedded
`build_module_src`. This unpickler resolves ONLY an allow-list of globals (docs/FORMATS.md §1.1): the Network class
becomes `NetworkStub`, which just keeps the state dict; numpy array/scalar reconstruction; and, for pickles of
protocols 0-2 and 5, the helpers those protocols use for objects, bytes and arrays, each checked to do only that.
Nothing else (the official state dicts are plain dicts, lists and tuples, which need no global).
Any other global - and so any `__reduce__` trick, which always needs one - raises `UnsafePickleError` naming it.

Before unpickling, `scan_pickle` walks the opcodes with pickletools: every length the stream claims is read against
the bytes really present, so a header promising a terabyte is refused instead of allocated by the unpickler.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
from typing import Any, BinaryIO, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

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
        self.variables = [(str(k), np.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in state["variables"]]

    @property
    def vars(self) -> Dict[str, np.ndarray]:
        """Own variables by local name."""
        return dict(self.variables)

    def __repr__(self) -> str:
        return (f"NetworkStub(name={self.name!r}, func={self.build_func_name!r}, "
                f"components={sorted(self.components)}, {len(self.variables)} variables)")


class PickleScan(NamedTuple):
    """What `scan_pickle` read of one pickle: the globals it references ('module.name', Python 3 spelling), the
    offset just past it, the last integer of each persistent id (a legacy torch file's storage sizes) and, when the
    stream is malformed or truncated, why (None for a complete pickle)."""

    globals: List[str]
    end: int
    persistent_ints: List[int]
    problem: Optional[str]


_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                         "BINUNICODE8"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _python3_name(module: str, name: str) -> str:
    import _compat_pickle

    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def scan_pickle(data: Union[bytes, memoryview], start: int = 0) -> PickleScan:
    """Reads the opcodes of the pickle at `data[start:]` without unpickling anything.

    Why: the names of the globals are known before anything runs (torch's refusal does not always name them),
    and pickletools checks each claimed length against the bytes present, so no claim causes an allocation.
    STACK_GLOBAL's names are the last two strings pushed (or fetched from the memo), which is how pickle writes them.
    """
    stream = io.BytesIO(data)
    stream.seek(start)
    found: List[str] = []
    persistent_ints: List[int] = []
    strings: List[str] = []
    memo: Dict[int, Any] = {}
    last: Any = None  # the value the latest opcode pushed, as far as a scan can tell
    last_int: Optional[int] = None
    problem = None
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            op, pushed = opcode.name, None
            if op in ("GLOBAL", "INST"):
                found.append(_python3_name(*arg.split(" ", 1)))
            elif op == "STACK_GLOBAL":
                found.append(_python3_name(*strings[-2:]) if len(strings) >= 2 else "<unnamed global>")
            elif op in _STRING_OPS:
                pushed = arg if isinstance(arg, str) else arg.decode("latin1")
                strings.append(pushed)
            elif op in _GET_OPS:
                pushed = memo.get(arg)
                if isinstance(pushed, str):
                    strings.append(pushed)
            elif op in _PUT_OPS or op == "MEMOIZE":
                memo[arg if op != "MEMOIZE" else len(memo)] = last
                pushed = last
            elif op in ("PERSID", "BINPERSID"):
                persistent_ints.append(last_int if last_int is not None else 0)
            elif isinstance(arg, int) and not isinstance(arg, bool) and op not in ("PROTO", "FRAME"):
                last_int = arg
            last = pushed
            if op == "STOP":
                break
        else:
            problem = "the stream ends before its STOP opcode"
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        problem = str(exc)
    return PickleScan(found, stream.tell(), persistent_ints, problem)


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


class _CheckedArray(np.ndarray):
    """The arrays an official pickle rebuilds: the state's data must hold exactly what its shape and dtype claim
    (checked before numpy allocates anything), and object arrays, which no official pickle holds, are refused."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError(f"numpy array state must be a 4- or 5-tuple, got {type(state).__name__}")
        shape, dtype, _, raw = state[-4:]
        _check_array_claim(shape, dtype, len(raw) if isinstance(raw, (bytes, bytearray, str)) else None)
        super().__setstate__(state)


def _check_array_claim(shape: Any, dtype: Any, present: Optional[int]) -> None:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"numpy array of dtype {dtype} refused: expected numbers (official pickles "
                                     f"hold no object arrays)")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"numpy array shape {shape!r} is invalid: expected a tuple of ints >= 0")
    claimed = math.prod(shape) * dtype.itemsize
    if present != claimed:
        raise pickle.UnpicklingError(f"numpy array of shape {list(shape)} and dtype {dtype} claims {claimed:,} "
                                     f"bytes but its data holds {'none' if present is None else f'{present:,}'}")


def _array_placeholder(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's _reconstruct as pickles call it: an empty array (its real content comes from __setstate__)."""
    if subtype is not np.ndarray or not isinstance(shape, tuple) or math.prod(shape) != 0:
        raise pickle.UnpicklingError(f"numpy _reconstruct({subtype!r}, {shape!r}, ...) refused: pickles call it "
                                     f"with numpy.ndarray and an empty shape")
    return _numpy_reconstruct()(_CheckedArray, shape, dtype)


def _array_from_buffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """numpy's protocol-5 array reader: a view of the in-band bytes, their size checked against the shape."""
    _check_array_claim(tuple(shape), dtype, memoryview(buffer).nbytes)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _checked_scalar(dtype: Any, *data: Any) -> Any:
    """numpy's scalar reader, for number dtypes only, its data exactly one item long."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or len(data) != 1 or not isinstance(data[0], (bytes, str)) \
            or len(data[0]) != dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} refused: expected a number and its "
                                     f"{getattr(dtype, 'itemsize', '?')} bytes")
    return _numpy_scalar()(dtype, *data)


def _latin1_bytes(text: Any, encoding: str) -> bytes:
    """How protocols 0-2 spell a bytes object: _codecs.encode(text, 'latin1'); no other codec is looked up."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode(..., {encoding!r}) refused: pickles only use 'latin1'")
    return text.encode("latin1")


def _new_network(cls: Any, base: Any, state: Any) -> NetworkStub:
    """copyreg._reconstructor as protocols 0-1 call it for a Network: an empty stub, filled by __setstate__."""
    if cls is not NetworkStub or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copyreg._reconstructor({cls!r}, {base!r}, ...) refused: only a Network "
                                     f"can be rebuilt")
    return NetworkStub()


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    allowed: Dict[Tuple[str, str], Any] = {("dnnlib.tflib.network", "Network"): NetworkStub,
                                           ("_codecs", "encode"): _latin1_bytes,
                                           ("copyreg", "_reconstructor"): _new_network,
                                           ("builtins", "object"): object}  # the base _new_network expects
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _array_placeholder
        allowed[(mod, "scalar")] = _checked_scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _array_from_buffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


def allowed_global_names() -> List[str]:
    """'module.name' of every global the restricted unpickler resolves (Python 3 spelling)."""
    return sorted({_python3_name(module, name) for module, name in SafeUnpickler._ALLOWED})


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class resolves only the allow-list above."""

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name).rsplit(".", 1)  # protocols 0-2 may use Python 2 names
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global '{module}.{name}': not in the allow-list of "
                                    f"stylegan.formats.safe_pickle (official StyleGAN pickles only need "
                                    f"dnnlib.tflib.network.Network and numpy arrays)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r}: official StyleGAN pickles have none")


def check_pickle(data: Union[bytes, memoryview]) -> None:
    """Refuses a pickle before unpickling: UnsafePickleError for a global outside the allow-list (even in a
    truncated stream), pickle.UnpicklingError for a malformed stream or a length beyond the end of the data."""
    scan = scan_pickle(data)
    allowed = set(allowed_global_names())
    forbidden = [name for name in scan.globals if name not in allowed]
    if forbidden:
        raise UnsafePickleError(f"refusing to load global '{forbidden[0]}': not in the allow-list of "
                                f"stylegan.formats.safe_pickle (official StyleGAN pickles only need "
                                f"dnnlib.tflib.network.Network and numpy arrays)")
    if scan.problem is not None:
        raise pickle.UnpicklingError(scan.problem)


def safe_load(path_or_file: Union[str, os.PathLike, BinaryIO, bytes]) -> Any:
    """Checks (check_pickle), then unpickles with the allow-list (encoding='latin1' for the Python 2/3.6-era numpy
    payloads)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as f:
            data = f.read()
    elif isinstance(path_or_file, (bytes, bytearray)):
        data = bytes(path_or_file)
    else:
        data = path_or_file.read()
    check_pickle(data)
    return SafeUnpickler(io.BytesIO(data), encoding="latin1").load()


__all__ = ["NetworkStub", "SafeUnpickler", "UnsafePickleError", "safe_load", "check_pickle", "scan_pickle",
           "PickleScan", "allowed_global_names"]
