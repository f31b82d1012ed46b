"""Training checkpoints: atomic writes, the last K kept, and everything needed for an exact resume.

Layout (a torch zip file readable with `torch.load(weights_only=True)` and by `stylegan.load()`): the native network
format of `stylegan/formats/native.py` -- {'format_version': 1, 'G', 'D', 'G_ema': state dicts, 'G_config',
'D_config', 'G_ema_config': JSON strings} -- plus 'training': {optimizer states, images_shown, lod, RNG states
(torch, numpy, python), data sampler position, tick counters, train config JSON, dataset fingerprint}.
Only tensors, dicts, lists, tuples, numbers and strings are stored, so loading can never run code.

Why atomic: a run killed while writing (SIGKILL, power loss, full disk) must leave the previous checkpoint intact,
so the bytes go to a temp file in the same folder, are flushed and fsynced, then os.replace()d over the final
name (a rename within one filesystem is atomic), and the directory is fsynced.
"""
from __future__ import annotations

import dataclasses
import errno
import io
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from .config import TrainConfig

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d{10})\.pt$")
TMP_PREFIX = ".checkpoint-"


def checkpoint_name(images_shown: int) -> str:
    """File name that sorts by training progress: checkpoint-<images_shown, 10 digits>.pt."""
    return f"checkpoint-{images_shown:010d}.pt"


# Test hook: called between the complete temp write and the rename (simulates a crash at the worst moment).
_before_replace: Optional[Callable[[str], None]] = None


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full): names the folder and the bytes it needed."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
RETRY_WAIT_S = 60.0  # a full disk gets one retry after this long (time to free space); tests set it to 0


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike], log: Callable[[str], None] = print) -> Path:
    """torch.save(obj) to `path` so a reader sees either the old file or the complete new one, never a mix.

    On a full disk the serialised bytes are kept in memory and written once more after RETRY_WAIT_S (the older
    checkpoints stay intact either way); a second failure raises CheckpointWriteError naming folder and size.
    """
    from ..atomic_write import atomic_write_bytes

    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    for attempt in (1, 2):
        try:
            atomic_write_bytes(path, buffer.getbuffer(), tmp_prefix=TMP_PREFIX, before_replace=_before_replace)
            return path
        except OSError as e:
            if e.errno not in DISK_FULL_ERRNOS:
                raise
            need = f"{buffer.getbuffer().nbytes / 2 ** 20:.1f} MiB"
            if attempt == 2:
                raise CheckpointWriteError(e.errno, f"cannot write checkpoint {path.name} to {path.parent}: "
                                                    f"{os.strerror(e.errno)} (it needs {need} free)") from None
            log(f"warning: no space for checkpoint {path.name} in {path.parent} (it needs {need} free); "
                f"retrying in {RETRY_WAIT_S:g} s")
            time.sleep(RETRY_WAIT_S)
    raise AssertionError("unreachable")


def load_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a checkpoint as `stylegan.load` reads torch files (weights only, claimed sizes checked first);
    ValueError naming the file if it is not one of ours."""
    from ..formats.safe_pickle import UnsafePickleError
    from ..loading import read_torch_file

    path = Path(path)
    try:
        payload = read_torch_file(path)
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except UnsafePickleError as e:
        raise ValueError(f"{path} is not a readable checkpoint: {e}") from None
    except ValueError as e:
        raise ValueError(f"{path} is not a readable checkpoint ({str(e).splitlines()[0][:300]})") from None
    if not isinstance(payload, dict) or "training" not in payload or "G" not in payload:
        raise ValueError(f"{path} is a torch file but not a stylegan training checkpoint (no 'training' entry)")
    return payload


def list_checkpoints(folder: Union[str, os.PathLike]) -> List[Path]:
    """Complete checkpoints in `folder`, oldest first (temp files of interrupted writes are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def find_checkpoint(spec: str, outdir: Union[str, os.PathLike]) -> Path:
    """Resolve `--resume FILE|DIR|latest` to a checkpoint file (latest = newest in outdir); ValueError if none."""
    if spec == "latest":
        folder = Path(outdir)
    else:
        p = Path(spec).expanduser()
        if p.is_file():
            return p
        if not p.is_dir():
            raise ValueError(f"--resume {spec}: no such file or folder")
        folder = p
    found = list_checkpoints(folder)
    if not found:
        raise ValueError(f"--resume {spec}: no checkpoint-*.pt in {folder}")
    return found[-1]


# Fields that fix the networks' architecture or the schedule's geometry: a resume must not change them.
ARCHITECTURE_FIELDS = ("resolution", "fmap_base", "fmap_max", "latent_size", "dlatent_size", "mapping_layers",
                       "mapping_fmaps", "cond", "lod_initial_resolution", "fused_scale")


@dataclass
class Checkpoint:
    """A checkpoint read once: where it came from and its payload (see the module docstring)."""

    path: Path
    payload: Dict[str, Any]

    @property
    def train_config(self) -> TrainConfig:
        """The config the checkpoint's run was trained with."""
        return TrainConfig.from_json(self.payload["training"]["train_config"])

    def network_configs(self) -> Tuple[Any, Any]:
        """(G's, D's) network config as saved (a --resume-from run's networks have the source file's configs)."""
        from ..config import DiscriminatorConfig, GeneratorConfig

        return (GeneratorConfig.from_json(self.payload["G_config"]),
                DiscriminatorConfig.from_json(self.payload["D_config"]))

    def check_compatible(self, cfg: TrainConfig) -> None:
        """ValueError naming the first architecture field in which `cfg` differs from the checkpoint's config."""
        saved = self.train_config
        for name in ARCHITECTURE_FIELDS:
            if getattr(saved, name) != getattr(cfg, name):
                raise ValueError(f"cannot resume from {self.path}: it was trained with {name}="
                                 f"{getattr(saved, name)!r}, this run has {name}={getattr(cfg, name)!r}")


def open_checkpoint(spec: str, outdir: Union[str, os.PathLike]) -> Checkpoint:
    """Find (`--resume FILE|DIR|latest`) and read a training checkpoint; ValueError naming the problem."""
    path = find_checkpoint(spec, outdir)
    return Checkpoint(path, load_checkpoint(path))


@dataclass
class TrainState:
    """A run's progress counters; with the weights, optimiser moments and RNG states they are all a resume needs.

    `sched_nimg`/`repeats_left`: where the schedule was last evaluated and how many minibatches it stays fixed
    (official minibatch_repeats); `consumed`: the global position in the data stream (all ranks together).
    """

    images_shown: int = 0
    consumed: int = 0
    prev_lod: Optional[float] = None
    cur_tick: int = 0
    sched_nimg: int = 0
    repeats_left: int = 0
    tick_start_nimg: int = 0

    def to_payload(self, networks: Dict[str, torch.nn.Module], optimizers: Dict[str, torch.optim.Optimizer],
                   cfg: TrainConfig, lod: float, device: torch.device, world_size: int,
                   dataset_fingerprint: str, num_channels: int, label_size: int) -> Dict[str, Any]:
        """The checkpoint payload: the native network format plus a 'training' entry holding everything else."""
        from ..formats import native

        payload = native.to_payload(networks["G"], networks["D"], networks["G_ema"])
        counters = dataclasses.asdict(self)
        counters["prev_lod"] = None if self.prev_lod is None else float(self.prev_lod)
        payload["training"] = {
            **counters,
            "lod": float(lod),
            **{f"opt_{name}": opt.state_dict() for name, opt in optimizers.items()},
            "w_avg": networks["G"].w_avg.detach().cpu().clone(),
            "rng": get_rng_states(device),
            "world_size": world_size,
            "train_config": cfg.to_json(),
            "dataset_fingerprint": dataset_fingerprint,
            "label_size": label_size,
            "num_channels": num_channels,
        }
        return payload

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "TrainState":
        """The counters of a checkpoint payload (the inverse of to_payload's counter fields)."""
        t = payload["training"]
        state = cls(**{f.name: t[f.name] for f in dataclasses.fields(cls)})
        for f in dataclasses.fields(cls):
            if f.name != "prev_lod":
                setattr(state, f.name, int(getattr(state, f.name)))
        return state


def prune_checkpoints(folder: Union[str, os.PathLike], keep: int, protect: Optional[Path] = None) -> List[Path]:
    """Delete all but the newest `keep` checkpoints and stale temp files; returns what was deleted.

    `protect` (the checkpoint the run has just written and reported) is never deleted, even when newer files
    exist (a run resumed from an older checkpoint)."""
    removed = []
    found = list_checkpoints(folder)
    for p in found[:-keep] if keep > 0 else found:
        if protect is not None and p.name == Path(protect).name:
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    for p in Path(folder).glob(TMP_PREFIX + "*.tmp"):
        # Only our own process writes here; a leftover temp file is from a killed run.
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


# ---------------------------------------------------------------------------------------------------------------
# RNG states as weights_only-safe values.

def get_rng_states(device: Optional[torch.device] = None) -> Dict[str, Any]:
    """torch, numpy and python global RNG states as tensors/lists/numbers (weights_only-loadable).

    With a CUDA `device`, also that device's generator (the one the run draws from; every rank's is identical,
    so rank 0's state is right for any rank and any number of ranks on resume)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    out: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }
    if device is not None and device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_states(states: Dict[str, Any], device: Optional[torch.device] = None) -> None:
    """Inverse of get_rng_states(); the saved CUDA state goes to `device` (this rank's GPU)."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in states and device is not None and device.type == "cuda":
        saved = states["cuda"]
        torch.cuda.set_rng_state(saved[0] if isinstance(saved, (list, tuple)) else saved, device)
