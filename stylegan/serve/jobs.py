"""Background projection jobs: `POST /api/project` makes one, the worker runs it (one optimisation step at a time,
answering the queued image requests between steps), the page polls its state and shows its current image, and a
DELETE cancels it. The files it answers are the ones `stylegan project` writes: target.png, proj.png and
projected.npz (same arrays and meta; the zip's member timestamps are the moment it was made).
"""
from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..images import to_uint8
from ..precision import FP32, Precision
from .state import ServedNetwork
from .worker import Busy, Worker

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
MAX_JOBS_KEPT = 16   # finished jobs are forgotten oldest first beyond this; unfinished ones are never dropped


class Cancelled(Exception):
    """Raised from the step callback when the job's cancellation was asked for."""


@dataclass
class ProjectJob:
    """One projection of one uploaded target (uint8 [C, R, R]) with `stylegan project`'s options."""

    id: str
    served: ServedNetwork
    target_name: str
    target: torch.Tensor
    space: str
    steps: int
    noise_steps: int
    seed: int
    loss_kind: str
    class_idx: Optional[int]
    vgg16: Optional[Path] = None               # the server's --vgg16 file (None: the cached official one)
    precision: Precision = FP32                # the server's --precision: the optimisation steps' arithmetic
    state: str = "queued"
    step: int = 0
    total_steps: int = 0
    psnr: Optional[float] = None
    loss: Optional[float] = None
    error: Optional[str] = None
    note: Optional[str] = None
    current: Optional[np.ndarray] = None       # uint8 HWC of the latest step (then the final rendering)
    target_png: bytes = b""                    # target.png of `stylegan project`, made with the upload
    npz: Optional[bytes] = None
    ws: Optional[torch.Tensor] = None          # [1, num_layers, D] and the noise maps, for /api/edit?job=
    noise: Optional[list] = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def status(self) -> Dict[str, Any]:
        return {"state": self.state, "step": self.step, "steps": self.total_steps, "psnr": self.psnr,
                "loss": self.loss, "error": self.error, "note": self.note}

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def run(self, worker: Worker) -> None:
        """On the worker thread: the projection of cli/project.py, step by step."""
        from ..cli.project import network_file_sha256, projection_meta
        from ..cli.project import project as project_command
        from ..projection import ProjectionConfig, make_loss, project
        from ..ws_file import ws_file_bytes
        from .params import cli_default

        if self.cancel_requested.is_set():
            self.state = "cancelled"
            return
        self.state = "running"
        G, device = self.served.G, next(self.served.G.parameters()).device
        try:
            pixels = self.target[None]
            loss, self.note = make_loss(self.loss_kind, pixels, self.vgg16, device, 0.0)
            cfg = ProjectionConfig(space=self.space, num_steps=self.steps, noise_steps=self.noise_steps,
                                   initial_learning_rate=cli_default(project_command, "lr"))

            def on_step(step: int, total: int, record: Dict[str, Any], images: torch.Tensor) -> None:
                self.step, self.total_steps = step, total
                self.psnr, self.loss = float(record["psnr"][0]), float(record["loss"][0])
                self.current = to_uint8(images)[0]
                worker.run_pending()
                if self.cancel_requested.is_set():
                    raise Cancelled()

            result = project(G, pixels.to(device), cfg, loss=loss, class_idx=self.class_idx, seed=self.seed,
                             progress=False, frame_every=self.steps + self.noise_steps + 1, on_step=on_step,
                             precision=self.precision)
        except Cancelled:
            self.state = "cancelled"
            return
        except Exception as exc:  # a loss that cannot be made, a degenerate mapping network: shown on the page
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        if self.served.file_sha256 is None:
            self.served.file_sha256 = network_file_sha256(self.served.spec)
        self.ws, self.noise = result.ws, result.noise
        self.npz = ws_file_bytes(result.ws, G, result.noise, self.served.file_sha256,
                                 projection_meta(self.target_name, loss.name, self.seed, self.class_idx, cfg, result,
                                                 0, precision=self.precision.name), G_sha256=self.served.digest)
        self.current = result.images[0]
        self.psnr = float(result.psnr[0])
        self.state = "done"


class JobStore:
    """The jobs by id, at most MAX_JOBS_KEPT (the oldest finished ones are forgotten first)."""

    def __init__(self, worker: Worker, max_kept: int = MAX_JOBS_KEPT) -> None:
        self.worker, self.max_kept = worker, max_kept
        self._jobs: "collections.OrderedDict[str, ProjectJob]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def start(self, **kwargs: Any) -> ProjectJob:
        """A new job queued on the worker; Busy when MAX_JOBS_KEPT jobs are unfinished or the job queue is full."""
        with self._lock:
            while len(self._jobs) >= self.max_kept:
                finished = next((k for k, j in self._jobs.items() if j.finished), None)
                if finished is None:
                    raise Busy()
                del self._jobs[finished]
            job = ProjectJob(id=secrets.token_hex(8), **kwargs)
            future = self.worker.submit_job(lambda: job.run(self.worker))
            self._jobs[job.id] = job
        future.add_done_callback(lambda f: self._cancelled_in_queue(job, f))
        return job

    @staticmethod
    def _cancelled_in_queue(job: ProjectJob, future) -> None:
        if future.cancelled():
            job.state = "cancelled"

    def get(self, job_id: str) -> Optional[ProjectJob]:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            self.cancel(job)

    def cancel(self, job: ProjectJob) -> None:
        job.cancel_requested.set()
        if job.state == "queued":  # not started: it ends as soon as the worker reaches it
            job.state = "cancelled"


__all__ = ["ProjectJob", "JobStore", "Cancelled", "JOB_STATES", "MAX_JOBS_KEPT"]
