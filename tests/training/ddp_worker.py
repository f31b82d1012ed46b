"""A tiny training run for tests/training/test_distributed.py, launched under torchrun (several ranks) or alone.

argv[1] is a JSON spec: {"config": TrainConfig fields, "dump": folder, "resume": optional, "stop_at": optional
images, "float64": bool, "ada_target": optional ADA controller target (outside the config's (0, 1), so that p
moves in a tiny run)}. Every rank writes rank<R>.pt to "dump" with its final weights, optimizer states and
trajectory, so the test can compare ranks with each other and with a single-process run.
"""
import json
import sys
from pathlib import Path

import torch

from stylegan.training import distributed
from stylegan.training.config import TrainConfig
from stylegan.training.loop import Trainer


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    if spec.get("float64"):
        torch.set_default_dtype(torch.float64)  # equivalence to ~1e-12 instead of float32 round-off
    ctx, device = distributed.init_from_env("cpu")
    try:
        trainer = Trainer(TrainConfig(**spec["config"]), resume=spec.get("resume"), impl="ref", progress=False,
                          dist=ctx, device=device)
        if spec.get("ada_target") is not None:
            trainer.ada.target = spec["ada_target"]
        result = trainer.run(stop_at_images=spec.get("stop_at"))
        Path(spec["dump"]).mkdir(parents=True, exist_ok=True)
        torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.G_ema.state_dict(),
                    "opt_G": trainer.opt_G.state_dict(), "opt_D": trainer.opt_D.state_dict(),
                    "trajectory": result.trajectory, "images_shown": result.images_shown, "lod": result.lod,
                    "world_size": ctx.world_size, "last_log": result.last_log,
                    "augment_p": getattr(trainer.augment, "p", None)},
                   Path(spec["dump"]) / f"rank{ctx.rank}.pt")
        ctx.barrier()  # as the CLI does: no rank tears down its process group while another still communicates
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
