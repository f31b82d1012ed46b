"""docs/images/precision_main_job_curves.png: README main-job runs in fp32 and bf16 on one plot (docs/PERFORMANCE.md
§8.8). Usage: python docs/scripts/precision_evidence.py OUT.png NAME=RUN_DIR [NAME=RUN_DIR ...]

Each run's log.jsonl carries glyph_acc at its snapshots (`--metrics glyph_acc`: 3,600 samples, psi 1, seed 0,
float32 synthesis of G_ema), the tick losses and the snapshot SWD.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from stylegan.atomic_write import atomic_write_bytes
from stylegan.plot import plot_runs, read_jsonl

KEYS = ("glyph_acc", "loss_G", "loss_D", "penalty", "swd_avg")


def main(out: str, *named_runs: str) -> None:
    runs = []
    for item in named_runs:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"{item!r}: expected NAME=RUN_DIR")
        runs.append((name, read_jsonl(Path(folder) / "log.jsonl")))
    if not runs:
        raise SystemExit(__doc__)
    image = plot_runs(runs, KEYS, width=1000, panel_height=170)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(Path(out), buffer.getvalue())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
