"""Multi-process training through torchrun + DistributedDataParallel: who am I, and the few collectives we need.

`torchrun --nproc_per_node=K -m stylegan train ...` starts K processes with RANK / WORLD_SIZE / LOCAL_RANK (and
MASTER_ADDR / MASTER_PORT) in their environment; `init_from_env` turns that into a process group (nccl on CUDA,
gloo on CPU) and a `DistContext`. A single process (no torchrun) gets `DistContext()` and every helper below is a
no-op, so the training loop has one code path.

How ranks stay equivalent to one process with the same global batch (what the tests check):
- Every random draw of a step (latents, noise maps, mirror flips, gradient-penalty mixing weights, labels,
  crossover points) is drawn for the GLOBAL batch on every rank, from the same seed, and each rank keeps its rows
  `rank::world_size` (`DistContext.rows`). The RNG streams therefore stay identical on all ranks, and a resumed run
  may use a different number of ranks.
- The data sampler hands rank r the global sample positions r, r + W, r + 2W, ... of each minibatch, i.e. the same
  strided rows. Strided rows also keep D's minibatch-stddev groups: with group size 4 the official layer groups
  rows m, m + M, m + 2M, m + 3M (M = N / 4); rank r's local groups are exactly global groups m with m % W == r
  (needs the per-rank batch to be a multiple of 4).
- Gradients are averaged by DDP (mean of per-rank means = global mean for equal per-rank batches); the w_avg update
  uses the all-reduced batch mean; G_ema follows from identical weights. Only rank 0 writes files.
"""
from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Dict, Iterable, Tuple

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; the default is a single process (every collective is a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, writes samples and checkpoints."""
        return self.rank == 0

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor drawn for the global batch (rows rank, rank + W, ...)."""
        return x[self.rank::self.world_size] if self.enabled else x

    def all_reduce_mean_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place mean over ranks (for equal per-rank batches: the global mean)."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t.div_(self.world_size)
        return t

    def mean_of(self, values: Dict[str, float], device: torch.device) -> Dict[str, float]:
        """Rank-average of a dict of logged scalars (same keys on every rank)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        self.all_reduce_mean_(t)
        return dict(zip(keys, t.tolist()))

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is True on at least one (e.g. a signal that reached only some ranks)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """DistributedDataParallel around `module` (the module itself with one process).

        find_unused_parameters: the layers above the current level of detail do not run. broadcast_buffers=False:
        the only buffers that change (w_avg) are kept identical by an all-reduce, the rest never change.
        """
        if not self.enabled:
            return module
        ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        # torch >= 2.13 renamed broadcast_buffers (deprecated) to forward_sync_buffers.
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters \
            else "broadcast_buffers"
        return ddp(module, device_ids=ids, find_unused_parameters=True, **{no_sync: False})

    def check_in_sync(self, modules: Dict[str, nn.Module], device: torch.device) -> None:
        """Raise RuntimeError if any rank's weights differ from rank 0's (cheap float64 checksums, exact)."""
        if not self.enabled:
            return
        sums = []
        for net in modules.values():
            for t in list(net.parameters()) + list(net.buffers()):
                sums.append(t.detach().double().sum())
                sums.append(t.detach().double().square().sum())
        mine = torch.stack(sums).to(device)
        theirs = mine.clone()
        dist.broadcast(theirs, src=0)
        if not torch.equal(mine, theirs):
            raise RuntimeError(f"rank {self.rank}: network weights differ from rank 0's; the ranks went out of sync")


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from None


def init_from_env(device: str = "auto", timeout_min: float = 30.0) -> Tuple[DistContext, str]:
    """Join the torchrun job described by the environment; returns (context, device string for this rank).

    One process: (DistContext(), device) unchanged. Several: one process per GPU (cuda:LOCAL_RANK, backend nccl)
    or CPU processes (backend gloo). `device` is the --device option: 'auto', 'cpu', 'cuda' (cuda:N is refused:
    with several processes each one takes its own GPU).
    """
    world = env_world_size()
    if world <= 1:
        return DistContext(), device
    missing = [v for v in ENV_VARS + ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
                         f"(torchrun --nproc_per_node=K -m stylegan train ...)")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda:"):
        raise ValueError(f"--device {device}: with several processes each rank uses cuda:LOCAL_RANK; "
                         f"pass --device cuda (or auto)")
    if resolve_device(device).type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible")
        torch.cuda.set_device(local_rank)
        rank_device, backend = f"cuda:{local_rank}", "nccl"
    else:
        rank_device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_min))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank), rank_device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def build_ops_first(ctx: DistContext, impl: str, device: torch.device, ops: Iterable[str] = ("bias_act",
                                                                                           "upfirdn2d")) -> None:
    """Build the op extensions on rank 0 while the other ranks wait, then let them load the cached result.

    Why: K ranks compiling the same kernels at once would serialise on the build lock anyway and print K warnings
    on failure; this way one process compiles and the rest import the finished library.
    """
    from ..ops import build

    def build_all() -> None:
        for op in ops:  # resolve_impl builds the kernel, and refuses an impl the device cannot run (ValueError)
            build.resolve_impl(op, impl, device)

    if ctx.is_main:
        build_all()
    ctx.barrier()
    if not ctx.is_main:
        build_all()


__all__ = ["DistContext", "init_from_env", "shutdown", "build_ops_first", "env_world_size"]

