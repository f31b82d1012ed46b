"""Our own network format: a torch zip file of config JSON strings and state dicts.

Why: it loads with `torch.load(weights_only=True)` (no code can run), carries its configs as plain JSON so a reader
needs nothing but this package, and has a `format_version` so future layouts can be read or refused clearly.
Training checkpoints use the same layout plus a 'training' entry, so `stylegan.load` reads them too.
"""
from __future__ import annotations

import io
import os
import re
from typing import Any, BinaryIO, Dict, Optional, Union

import torch

from ..atomic_write import atomic_write_bytes
from . import Networks

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
NETWORK_KEYS = ("G", "D", "G_ema")


def to_payload(G=None, D=None, G_ema=None, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The dict stored on disk: format_version, '<name>_config' JSON strings and '<name>' state dicts."""
    payload: Dict[str, Any] = {"format_version": FORMAT_VERSION}
    for key, net in (("G", G), ("D", D), ("G_ema", G_ema)):
        if net is None:
            continue
        if not hasattr(net, "config") or not hasattr(net, "state_dict"):
            raise TypeError(f"save: {key} must be a stylegan Generator/Discriminator, got {type(net).__name__}")
        payload[f"{key}_config"] = net.config.to_json()
        payload[key] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if len(payload) == 1:
        raise ValueError("save: nothing to save; pass at least one of G, D, G_ema")
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"save: extra must be a dict, got {type(extra).__name__}")
        payload["extra"] = extra
    return payload


def save(path: Union[str, os.PathLike], G=None, D=None, G_ema=None, extra: Optional[Dict[str, Any]] = None) -> None:
    """Saves networks in our format, atomically; `extra` holds plain data (tensors, numbers, strings, dicts)."""
    buffer = io.BytesIO()
    torch.save(to_payload(G, D, G_ema, extra), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def is_native(payload: Any) -> bool:
    """True for a dict written by `save` or by training checkpoints."""
    return isinstance(payload, dict) and "format_version" in payload


def check_version(payload: Dict[str, Any], name: str) -> None:
    version = payload.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{name}: stylegan format_version {version!r} is not supported by this version of the "
                         f"package (it reads {list(SUPPORTED_VERSIONS)}); upgrade stylegan to read it")


def networks_from_payload(payload: Dict[str, Any], name: str, device: Union[str, torch.device] = "cpu") -> Networks:
    """Rebuilds the networks of a native payload (a training checkpoint's 'training' entry goes into extra),
    naming the file and entry on any mismatch."""
    from ..config import DiscriminatorConfig, GeneratorConfig
    from ..discriminator import Discriminator
    from ..generator import Generator

    check_version(payload, name)
    nets: Dict[str, Any] = {key: None for key in NETWORK_KEYS}
    for key in NETWORK_KEYS:
        if key not in payload:
            continue
        config_json = payload.get(f"{key}_config")
        if not isinstance(config_json, str):
            raise ValueError(f"{name}: entry {key!r} has no '{key}_config' JSON string")
        is_d = key == "D"
        config = (DiscriminatorConfig if is_d else GeneratorConfig).from_json(config_json)
        net = (Discriminator if is_d else Generator)(config)
        _load_state(net, payload[key], f"{name}: {key}")
        nets[key] = net.to(device).eval()
    if not any(nets.values()):
        raise ValueError(f"{name}: a stylegan file but it holds no network (expected one of {NETWORK_KEYS})")
    extra = dict(payload.get("extra") or {})
    if "training" in payload:
        extra["training"] = payload["training"]
    return Networks.from_modules(nets["G"], nets["D"], nets["G_ema"], "stylegan", extra)


def _load_state(net: torch.nn.Module, state: Any, where: str) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"{where}: expected a state dict, got {type(state).__name__}")
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{where}: state dict does not match the config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != own[key].shape:
            shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{where}: {key} has shape {shape}, expected {list(own[key].shape)}")
    net.load_state_dict(state)


def read_payload(fileobj: BinaryIO) -> Any:
    """torch.load with weights_only=True: only tensors and plain containers can come out; no code runs."""
    return torch.load(fileobj, map_location="cpu", weights_only=True)


def refused_global(exc: BaseException) -> Optional[str]:
    """The global torch.load(weights_only=True) refused, as torch names it in its error (None if it names none)."""
    match = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
    return match.group(1) if match else None


# Sentences of torch's errors that advise loading with weights_only=False or allow-listing a global: never shown,
# since following them would run code from the file.
_ADVICE = re.compile(r"weights_only|safe_globals|trust|can still be loaded|two options|Weights only load failed|"
                     r"file an issue|documentation of torch\.load", re.IGNORECASE)


def torch_failure_reason(exc: BaseException) -> str:
    """torch's own reason for failing to read a file, without its advice to load unsafely, on one line.

    Why: torch's weights-only errors suggest re-running with weights_only=False; relayed to a user, that is advice
    to execute whatever the file holds.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    kept = [s for s in sentences if not _ADVICE.search(s)]
    reason = " ".join(kept).removeprefix("WeightsUnpickler error:").strip()
    return (reason[:300] + "...") if len(reason) > 300 else (reason or type(exc).__name__)
