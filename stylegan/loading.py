"""`stylegan.load()`: one entry point for every network file we read, with the format detected from the content.

Formats: our own (`stylegan.save`, training checkpoints), the official NVlabs StyleGAN TensorFlow pickles (read
without TensorFlow by a restricted unpickler) and rosinality/style-based-gan-pytorch checkpoints (zip or legacy
torch serialization). Nothing in a file can run code: torch files are read with `weights_only=True`, pickles with
an allow-list; anything else raises `UnsafePickleError` naming the forbidden global.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, BinaryIO, Dict, Optional, Union

import torch

from .formats import Networks, native, nvlabs_tf, rosinality
from .formats.safe_pickle import UnsafePickleError

ZIP_MAGIC = b"PK\x03\x04"
# Legacy (pre-zip) torch.save files start with a pickled magic number: protocol 2, LONG1 of 10 bytes.
LEGACY_TORCH_PREFIX = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _read_all(path_or_fileobj: Union[str, os.PathLike, BinaryIO]) -> tuple:
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        name = os.fspath(path_or_fileobj)
        if not os.path.exists(name):
            raise FileNotFoundError(f"network file not found: {name}")
        if os.path.isdir(name):
            raise ValueError(f"{name} is a directory; expected a network file")
        with open(name, "rb") as f:
            return f.read(), name
    if hasattr(path_or_fileobj, "read"):
        return path_or_fileobj.read(), getattr(path_or_fileobj, "name", "<file object>")
    raise TypeError(f"load: expected a path or a binary file object, got {type(path_or_fileobj).__name__}")


def _pickle_globals(data: bytes) -> list:
    """'module.name' of every global a torch file's pickle references, read with pickletools (nothing runs).

    Protocol-2 streams spell Python 3 names the Python 2 way (`__builtin__.eval`); they are mapped back.
    """
    import _compat_pickle
    import pickletools
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            stream = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    except Exception:
        stream = data  # legacy serialization: a sequence of plain pickles
    found, strings = [], []
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name == "GLOBAL":
                found.append(tuple(arg.split(" ", 1)))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append((strings[-2], strings[-1]))
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:
        pass  # a truncated stream: report what was read
    names = []
    for module, name in found:
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        names.append(f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}")
    return names


# Globals a weights-only torch file legitimately references (tensor rebuilding, storages, containers).
_TORCH_FILE_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.slice",
                       "builtins.complex", "builtins.bytearray", "numpy.core.multiarray._reconstruct")


def _torch_load(data: bytes, name: str) -> Any:
    """torch.load(weights_only=True), turning torch's refusals into UnsafePickleError naming the global."""
    try:
        return native.read_payload(io.BytesIO(data))
    except pickle.UnpicklingError as exc:
        forbidden = [g for g in _pickle_globals(data) if not g.startswith(_TORCH_FILE_GLOBALS)]
        if forbidden:
            raise UnsafePickleError(f"{name}: refusing to load: the file references the forbidden global "
                                    f"{forbidden[0]!r} (loading never executes code from a file)") from None
        raise ValueError(f"{name}: not a readable torch file ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{name}: corrupt or truncated torch file ({str(exc).splitlines()[0][:200]}); expected a "
                         f"stylegan, NVlabs TF or rosinality network file") from None


def _from_torch_payload(payload: Any, name: str, device) -> Networks:
    if native.is_native(payload):
        return native.networks_from_payload(payload, name, device)
    if rosinality.is_rosinality(payload):
        return rosinality.networks_from_checkpoint(payload, name, device)
    keys = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
    raise ValueError(f"{name}: a torch file, but not a known network format (top-level keys: {keys}); expected "
                     f"a stylegan file or a rosinality checkpoint")


def load(path_or_fileobj: Union[str, os.PathLike, BinaryIO], device: Union[str, torch.device] = "cpu") -> Networks:
    """Returns the networks stored in a file of any supported format, detected from its content.

    Raises ValueError naming the file for empty, truncated, corrupt or unknown files, and UnsafePickleError when a
    file references code (it is never executed).
    """
    data, name = _read_all(path_or_fileobj)
    if not data:
        raise ValueError(f"{name}: the file is empty; expected a network file")
    if data.startswith(ZIP_MAGIC) or data.startswith(LEGACY_TORCH_PREFIX):
        return _from_torch_payload(_torch_load(data, name), name, device)
    if data[:1] == b"\x80":  # a plain pickle: the official NVlabs TensorFlow format
        return nvlabs_tf.networks_from_pickle(data, name, device)
    raise ValueError(f"{name}: unknown file format (starts with {data[:8]!r}); expected a stylegan file, an NVlabs "
                     f"StyleGAN .pkl or a rosinality .model checkpoint")


def save(path: Union[str, os.PathLike], G=None, D=None, G_ema=None, extra: Optional[Dict[str, Any]] = None) -> None:
    """Saves networks in our format (atomic write; loadable with torch.load(weights_only=True) and stylegan.load)."""
    native.save(path, G=G, D=D, G_ema=G_ema, extra=extra)
