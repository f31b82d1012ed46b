"""Device names -> torch devices, checked against what this machine has (the one rule for every command)."""
from __future__ import annotations

import re
from typing import List, Union

import torch

DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?")


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu' (what 'auto' means)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: Union[str, torch.device]) -> torch.device:
    """torch.device for 'auto', 'cpu', 'cuda' or 'cuda:N'; ValueError naming the value when it is malformed or
    the device does not exist here (so a run fails before any work, not in the first forward)."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        text = default_device()
    if not DEVICE_NAME.fullmatch(text):
        raise ValueError(f"device {name!r} is invalid: expected auto, cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here (use cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    return device


def rng_devices(device: Union[str, torch.device]) -> List[int]:
    """The CUDA device indices whose RNG `torch.random.fork_rng` must save for work on `device` ([] on the CPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
