"""docs/images/precision_main_job_curves.png: the README main job in fp32 and in bf16 on one plot (docs/PERFORMANCE.md
§8.6). Usage: python docs/scripts/precision_evidence.py FP32_RUN_DIR BF16_RUN_DIR [OUT.png]

The fp32 run's log.jsonl predates `--metrics glyph_acc` in the main command, so its glyph_acc points are the ones
measured on its checkpoints with `stylegan metrics --metrics glyph_acc` (docs/MAIN_JOB.md §1.5, and 32 / 48 kimg
re-measured for this comparison); the bf16 run logs glyph_acc at its snapshots (the same protocol: 3,600 samples,
psi 1, seed 0, float32 synthesis of G_ema).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from stylegan.atomic_write import atomic_write_bytes
from stylegan.plot import plot_runs, read_jsonl

FP32_GLYPH_ACC = {8: 0.032, 24: 0.041, 32: 0.045, 40: 0.067, 48: 0.0586, 56: 0.093, 64: 0.191, 72: 0.302,
                  80: 0.381, 88: 0.476, 96: 0.494, 104: 0.563, 112: 0.582, 120: 0.674}
KEYS = ("glyph_acc", "loss_G", "loss_D", "penalty", "swd_avg")


def main(fp32_dir: str, bf16_dir: str, out: str = "docs/images/precision_main_job_curves.png") -> None:
    fp32 = [r for r in read_jsonl(Path(fp32_dir) / "log.jsonl")]
    fp32 += [{"kimg": float(k), "glyph_acc": v} for k, v in FP32_GLYPH_ACC.items()]
    fp32.sort(key=lambda r: r["kimg"])
    bf16 = read_jsonl(Path(bf16_dir) / "log.jsonl")
    image = plot_runs([("fp32", fp32), ("bf16", bf16)], KEYS, width=800, panel_height=170)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(Path(out), buffer.getvalue())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
