"""`stylegan.load()`: one entry point for every network file we read, with the format detected from the content.

Formats: our own (`stylegan.save`, training checkpoints), the official NVlabs StyleGAN TensorFlow pickles (read
without TensorFlow by a restricted unpickler) and rosinality/style-based-gan-pytorch checkpoints (zip or legacy
torch serialization). Nothing in a file can run code: torch files are read with `weights_only=True`, pickles with
an allow-list; anything else raises `UnsafePickleError` naming the forbidden global, whatever the pickle protocol.
Sizes a file claims are checked against the bytes it holds before anything of that size is allocated, and a
network whose weights hold NaN/Inf loads with one warning naming the tensors (`nonfinite_tensors`).
"""
from __future__ import annotations

import io
import itertools
import os
import pickle
import pickletools
import warnings
from typing import Any, BinaryIO, Dict, List, Optional, Union

import torch

from .formats import Networks, native, nvlabs_tf, rosinality
from .formats.safe_pickle import UnsafePickleError, scan_pickle

ZIP_MAGIC = b"PK\x03\x04"
# Legacy (pre-zip) torch.save files start with a pickled magic number (in whatever protocol they were saved).
LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
NETWORK_KEYS = ("G", "D", "G_ema")


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


def _is_legacy_torch(data: bytes) -> bool:
    """True when the first pickle of `data` is torch's legacy magic number (protocols 0-5)."""
    try:
        ops = itertools.islice(pickletools.genops(io.BytesIO(data[:64])), 4)
        return any(arg == LEGACY_TORCH_MAGIC for _, arg, _ in ops)
    except ValueError:
        return False


def _is_pickle(data: bytes) -> bool:
    """True for a plain pickle of any protocol: a protocol 2+ header, or a stream pickletools reads (to its end or
    to a global: a truncated pickle that names code is still a pickle, and gets refused as one)."""
    if data[:1] == b"\x80":
        return True
    scan = scan_pickle(data)
    return scan.problem is None or bool(scan.globals)


def _torch_pickles(data: bytes) -> List[bytes]:
    """The pickle streams of a torch file: data.pkl of a zip file; the leading pickles of a legacy one."""
    import zipfile

    if data.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:  # torch stores entries uncompressed: a larger
                return [archive.read(i) for i in archive.infolist()  # one is not torch's, so it is not read
                        if i.filename.endswith("data.pkl") and i.file_size <= len(data)][:1]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return []
    streams, start = [], 0
    for _ in range(5):  # magic number, protocol version, system info, the object, the storage keys
        scan = scan_pickle(data, start)
        streams.append(data[start:scan.end])
        if scan.problem is not None:
            break
        start = scan.end
    return streams


# Globals a weights-only torch file legitimately references (tensor rebuilding, storages, containers).
_TORCH_FILE_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.slice",
                       "builtins.complex", "builtins.bytearray", "_codecs.encode", "numpy.core.multiarray.",
                       "numpy._core.multiarray.", "numpy.dtype", "numpy.ndarray")


def _forbidden_global(data: bytes, exc: BaseException) -> Optional[str]:
    """The global that made torch refuse a file: the first one a scan of the file's pickles finds outside what
    weights-only files use (in Python 3 spelling, which torch's message lacks), else the one torch names (None
    when the refusal was about something else)."""
    for stream in _torch_pickles(data):
        forbidden = [g for g in scan_pickle(stream).globals if not g.startswith(_TORCH_FILE_GLOBALS)]
        if forbidden:
            return forbidden[0]
    return native.refused_global(exc)


def _check_storage_claims(data: bytes, name: str) -> None:
    """A legacy torch file's pickle gives each storage's element count, which torch allocates before reading the
    data: refuse counts beyond the file's size (each element takes at least one byte) before torch sees them."""
    if data.startswith(ZIP_MAGIC):
        return  # zip files: a storage is a zip entry of its real size
    for stream in _torch_pickles(data):
        for claim in scan_pickle(stream).persistent_ints:
            if not 0 <= claim <= len(data):
                raise ValueError(f"{name}: a storage claims {claim:,} elements but the file holds {len(data):,} "
                                 f"bytes; expected a complete torch file")


def _check_tensor_sizes(payload: Any, name: str, limit: int, where: str = "") -> None:
    """Every tensor must fit in the file (`limit` bytes): a tensor expanded to a claimed size would otherwise turn
    into a real allocation of that size at the first conversion."""
    if isinstance(payload, torch.Tensor):
        claimed = payload.numel() * payload.element_size()
        if claimed > limit:
            raise ValueError(f"{name}: tensor {where or '<top level>'} of shape {list(payload.shape)} claims "
                             f"{claimed:,} bytes but the file holds {limit:,}; expected a network file")
    elif isinstance(payload, dict):
        for key, value in payload.items():
            _check_tensor_sizes(value, name, limit, f"{where}.{key}" if where else str(key))
    elif isinstance(payload, (list, tuple)):
        for i, value in enumerate(payload):
            _check_tensor_sizes(value, name, limit, f"{where}[{i}]")


def _torch_load(data: bytes, name: str) -> Any:
    """torch.load(weights_only=True), turning torch's refusals into UnsafePickleError naming the global and its
    other errors into ValueError naming the file (never relaying torch's advice to load unsafely)."""
    _check_storage_claims(data, name)
    try:
        payload = native.read_payload(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - torch raises many types (even IndexError) for damaged files
        refused = _forbidden_global(data, exc)
        if refused is not None:
            raise UnsafePickleError(f"{name}: refusing to load: the file references the forbidden global "
                                    f"{refused!r} (loading never executes code from a file)") from None
        what = "not a readable" if isinstance(exc, pickle.UnpicklingError) else "a corrupt or truncated"
        raise ValueError(f"{name}: {what} torch file ({native.torch_failure_reason(exc)}); expected a stylegan, "
                         f"NVlabs TF or rosinality network file") from None
    _check_tensor_sizes(payload, name, len(data))
    return payload


def read_torch_file(path: Union[str, os.PathLike]) -> Any:
    """The payload of a torch file, read as `load` reads one: weights only, claimed sizes checked first, errors a
    ValueError / UnsafePickleError naming the file (never torch's advice to load unsafely). For training code
    that needs the raw checkpoint dict."""
    data, name = _read_all(path)
    if not (data.startswith(ZIP_MAGIC) or _is_legacy_torch(data)):
        raise ValueError(f"{name}: not a torch file (starts with {data[:8]!r}); expected a stylegan file")
    return _torch_load(data, name)


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
    if data.startswith(ZIP_MAGIC) or _is_legacy_torch(data):
        nets = _from_torch_payload(_torch_load(data, name), name, device)
    elif _is_pickle(data):  # a plain pickle: the official NVlabs TensorFlow format
        nets = nvlabs_tf.networks_from_pickle(data, name, device)
    else:
        raise ValueError(f"{name}: unknown file format (starts with {data[:8]!r}); expected a stylegan file, an "
                         f"NVlabs StyleGAN .pkl or a rosinality .model checkpoint")
    bad = [f"{key}.{tensor}" for key in NETWORK_KEYS if getattr(nets, key) is not None
           for tensor in nonfinite_tensors(getattr(nets, key))]
    if bad:
        warnings.warn(f"{name}: the weights hold NaN or Inf in {len(bad)} tensor(s): {', '.join(bad[:10])}"
                      f"{', ...' if len(bad) > 10 else ''}; images from this network will be wrong",
                      NonFiniteWeightsWarning, stacklevel=2)
    return nets


class NonFiniteWeightsWarning(RuntimeWarning):
    """`load` read a network whose weights hold NaN or Inf (the message names the tensors)."""


def nonfinite_tensors(module_or_state_dict: Union[torch.nn.Module, Dict[str, Any]]) -> List[str]:
    """Names of the parameters and buffers (or state dict entries) holding NaN or Inf, in their order.

    Why: such a network loads and runs but renders black or garbage; callers warn or refuse (train --resume).
    """
    if isinstance(module_or_state_dict, torch.nn.Module):
        items = module_or_state_dict.state_dict().items()
    elif isinstance(module_or_state_dict, dict):
        items = module_or_state_dict.items()
    else:
        raise TypeError(f"nonfinite_tensors: expected a module or a state dict, got "
                        f"{type(module_or_state_dict).__name__}")
    return [str(key) for key, value in items if isinstance(value, torch.Tensor) and value.is_floating_point()
            and not bool(torch.isfinite(value.detach()).all())]


def save(path: Union[str, os.PathLike], G=None, D=None, G_ema=None, extra: Optional[Dict[str, Any]] = None) -> None:
    """Saves networks in our format (atomic write; loadable with torch.load(weights_only=True) and stylegan.load)."""
    native.save(path, G=G, D=D, G_ema=G_ema, extra=extra)
