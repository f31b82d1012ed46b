"""Latent files (`projected.npz`, the `--ws` of `stylegan generate` and `stylegan edit`): per-layer latents ws,
optionally the noise maps they were optimised with, and which generator they belong to.

Why a fingerprint of the weights: ws are only meaningful for the network that made them; rendering them with
another one gives a plausible but wrong image, so a file records the generator's weight digest, its config and
(when known) the network file's sha256, and reading it for another generator is an error naming both.
Format: numpy .npz without pickles: `ws` float32 [N, num_layers, dlatent_size]; `noise_0`..`noise_{K-1}` float32
[N, 1, H, W] (one per layer, or per block for noise_per_block networks), absent when not optimised;
`G_sha256`, `network_sha256`, `G_config` (JSON) strings; `meta` a JSON string of anything else (space, loss, ...).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from .atomic_write import atomic_write_bytes
from .synthesis import layer_resolution

NOISE_KEY = "noise_{}"


class WsFileError(ValueError):
    """A latent file cannot be read, or belongs to another network."""


def generator_digest(G: torch.nn.Module) -> str:
    """sha256 of G's state dict (names, dtypes, shapes, bytes in name order): equal iff the weights are equal."""
    digest = hashlib.sha256()
    for name, tensor in sorted(G.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{list(data.shape)}|".encode())
        digest.update(data.numpy().tobytes() if data.dtype != torch.bfloat16 else data.float().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class WsFile:
    """What a latent file holds; `noise` is None when the file has no noise maps."""

    ws: torch.Tensor
    noise: Optional[List[torch.Tensor]] = None
    G_sha256: str = ""
    network_sha256: str = ""
    G_config: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)


def save_ws_file(path: Union[str, os.PathLike], ws: torch.Tensor, G: torch.nn.Module,
                 noise: Optional[List[torch.Tensor]] = None, network_sha256: str = "",
                 meta: Optional[Dict[str, Any]] = None, G_sha256: Optional[str] = None) -> None:
    """Writes a latent file atomically (G_sha256: pass generator_digest(G) when already computed)."""
    atomic_write_bytes(path, ws_file_bytes(ws, G, noise, network_sha256, meta, G_sha256))


def ws_file_bytes(ws: torch.Tensor, G: torch.nn.Module, noise: Optional[List[torch.Tensor]] = None,
                  network_sha256: str = "", meta: Optional[Dict[str, Any]] = None,
                  G_sha256: Optional[str] = None) -> bytes:
    """The bytes of a latent file (what save_ws_file writes; `stylegan serve` answers them as a download)."""
    arrays: Dict[str, np.ndarray] = {"ws": ws.detach().cpu().to(torch.float32).numpy()}
    for i, n in enumerate(noise or []):
        arrays[NOISE_KEY.format(i)] = n.detach().cpu().to(torch.float32).numpy()
    arrays["G_sha256"] = np.array(G_sha256 or generator_digest(G))
    arrays["network_sha256"] = np.array(network_sha256)
    arrays["G_config"] = np.array(json.dumps(G.config.to_dict()))
    arrays["meta"] = np.array(json.dumps(meta or {}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _text(data: Any, key: str) -> str:
    return str(data[key][()]) if key in data.files else ""


def load_ws_file(path: Union[str, os.PathLike]) -> WsFile:
    """Reads a latent file; WsFileError for a missing file, not an npz, or a missing / malformed `ws`."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "ws" not in data.files:
                raise WsFileError(f"{path} has no 'ws' array (it holds {', '.join(data.files) or 'nothing'}): expected "
                                  f"a latent file such as stylegan project's projected.npz")
            ws = np.array(data["ws"])
            noise = []
            while NOISE_KEY.format(len(noise)) in data.files:
                noise.append(torch.from_numpy(np.array(data[NOISE_KEY.format(len(noise))], dtype=np.float32)))
            config_text, meta_text = _text(data, "G_config"), _text(data, "meta")
            result = WsFile(torch.from_numpy(ws.astype(np.float32)), noise or None, _text(data, "G_sha256"),
                            _text(data, "network_sha256"), json.loads(config_text) if config_text else {},
                            json.loads(meta_text) if meta_text else {})
    except WsFileError:
        raise
    except FileNotFoundError:
        raise WsFileError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:  # zipfile.BadZipFile is an OSError kind in numpy's wrapper
        raise WsFileError(f"{path} is not a latent .npz file ({type(exc).__name__}: {exc})") from None
    if ws.ndim != 3 or ws.shape[0] < 1 or not np.isfinite(ws).all():
        raise WsFileError(f"{path}: ws has shape {list(ws.shape)}"
                          f"{'' if np.isfinite(ws).all() else ' and non-finite values'}: expected finite "
                          f"[N >= 1, num_layers, dlatent_size]")
    return result


def check_ws_file_for(ws_file: WsFile, G: torch.nn.Module, G_sha256: str, path: str, network: str) -> None:
    """WsFileError unless `ws_file` fits G: its ws shape and noise shapes, and (when recorded) G's weight digest."""
    expected = [int(G.num_layers), int(G.config.dlatent_size)]
    if list(ws_file.ws.shape[1:]) != expected:
        raise WsFileError(f"{path} holds ws of shape {list(ws_file.ws.shape)}, but {network} needs [N, {expected[0]}, "
                          f"{expected[1]}] (num_layers, dlatent_size): it was made for another network")
    if ws_file.G_sha256 and ws_file.G_sha256 != G_sha256:
        made_for = ws_file.network_sha256[:12] or "unknown file"
        raise WsFileError(f"{path} was made for another network (weights sha256 {ws_file.G_sha256[:12]}, network "
                          f"file {made_for}) than {network} (weights sha256 {G_sha256[:12]})")
    if ws_file.noise is not None:
        check_noise_for(ws_file.noise, G, ws_file.ws.shape[0], path)


def check_noise_for(noise: List[torch.Tensor], G: torch.nn.Module, count: int, path: str) -> None:
    """WsFileError unless `noise` has one [count or 1, 1, H, W] map per layer (or per block) of G."""
    layers = int(G.num_layers)
    if len(noise) not in (layers, layers // 2):
        raise WsFileError(f"{path} holds {len(noise)} noise maps: expected {layers} (one per layer) or {layers // 2} "
                          f"(one per block)")
    per_block = len(noise) != layers
    for i, n in enumerate(noise):
        res = layer_resolution(2 * i if per_block else i)
        if n.ndim != 4 or n.shape[0] not in (1, count) or tuple(n.shape[1:]) != (1, res, res):
            raise WsFileError(f"{path}: noise_{i} has shape {list(n.shape)}: expected [{count}, 1, {res}, {res}]")


__all__ = ["WsFile", "WsFileError", "save_ws_file", "load_ws_file", "check_ws_file_for", "check_noise_for",
           "generator_digest"]
