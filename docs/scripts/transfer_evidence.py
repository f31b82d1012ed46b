"""Figures and tables of docs/TRANSFER.md §3 from the run folders' log.jsonl files.

Usage: python docs/scripts/transfer_evidence.py RUNS_DIR [IMAGES_DIR]
RUNS_DIR holds the run folders named below (the commands are in docs/TRANSFER.md §3); missing runs are skipped.
Writes the curve plots into IMAGES_DIR (default docs/images) and prints the markdown tables (snapshot values per
kimg) and, for the transfer runs, the first kimg at which the fine-tuned run reaches the from-scratch run's final
glyph_acc and SWD.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from stylegan.atomic_write import atomic_write_bytes
from stylegan.plot import plot_runs, read_jsonl

SMALL_DATA = [("1k none", "t15_1k_none"), ("1k ada", "t15_1k_ada"), ("1k diffaug", "t15_1k_diffaug"),
              ("300 none", "t15_300_none"), ("300 ada", "t15_300_ada"), ("300 diffaug", "t15_300_diffaug")]
TRANSFER = [("scratch", "t15_outline_scratch"), ("fine-tune", "t15_outline_finetune"),
            ("fine-tune ada fd1", "t15_outline_finetune_ada_fd1")]
KEYS = ("glyph_acc", "swd_avg", "ada_rt", "augment_p", "loss_D")


def load(runs_dir: Path, names: Sequence[Tuple[str, str]]) -> List[Tuple[str, List[Dict[str, object]]]]:
    out = []
    for label, folder in names:
        log = runs_dir / folder / "log.jsonl"
        if log.is_file() and log.stat().st_size > 0:
            out.append((label, read_jsonl(log)))
    return out


def save_plot(runs, keys, path: Path, width: int = 1100) -> None:
    image = plot_runs(runs, [k for k in keys if any(k in r for _, recs in runs for r in recs)], width=width,
                      panel_height=190)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    print(f"wrote {path}")


def save_strip(runs_dir: Path, grids_of: Sequence[Tuple[str, str]], path: Path) -> None:
    """Sample grids (run folder, grid file, e.g. fakes000036.png) side by side, 10 px apart, in the given order."""
    from PIL import Image

    files = [runs_dir / folder / name for folder, name in grids_of]
    grids = [Image.open(f).convert("RGB") for f in files if f.is_file()]
    if not grids:
        return
    strip = Image.new("RGB", (sum(g.width for g in grids) + 10 * (len(grids) - 1), max(g.height for g in grids)),
                      "white")
    x = 0
    for g in grids:
        strip.paste(g, (x, 0))
        x += g.width + 10
    buffer = io.BytesIO()
    strip.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    print(f"wrote {path}")


def _fmt(v: Optional[object], digits: int) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


def snapshot_table(runs) -> str:
    """Rows 'run: key' (glyph_acc, SWD, r_t, p when logged), one column per snapshot kimg (records with a
    glyph_acc); the resolution heads the table (SWD has one pyramid level more from 32 px, so its values jump)."""
    snaps = {float(r["kimg"]): r for _, recs in runs for r in recs if "glyph_acc" in r}
    kimgs = sorted(snaps)
    lines = ["| kimg | " + " | ".join(f"{k:g}" for k in kimgs) + " |", "|---|" + "---|" * len(kimgs)]

    def where(by_kimg) -> List[str]:
        return [f"{by_kimg[k]['resolution']} ({by_kimg[k]['lod']:.2g})" if k in by_kimg else "" for k in kimgs]

    schedules = {tuple(where({float(r["kimg"]): r for r in recs if "glyph_acc" in r})) for _, recs in runs}
    if len(schedules) == 1:  # one schedule for all runs: one row
        lines.append("| px (lod) | " + " | ".join(where(snaps)) + " |")
    for label, recs in runs:
        by_kimg = {float(r["kimg"]): r for r in recs if "glyph_acc" in r}
        if len(schedules) > 1:
            lines.append(f"| {label}: px (lod) | " + " | ".join(where(by_kimg)) + " |")
        for key, name, digits in (("glyph_acc", "glyph_acc", 3), ("swd_avg", "SWD", 1), ("ada_rt", "r_t", 2),
                                  ("augment_p", "p", 3)):
            if not any(key in r for r in by_kimg.values()):
                continue
            cells = [_fmt(by_kimg[k].get(key), digits) if k in by_kimg else "" for k in kimgs]
            lines.append(f"| {label}: {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def first_reaching(recs, key: str, target: float, higher_is_better: bool) -> Optional[float]:
    for r in recs:
        v = r.get(key)
        if v is not None and (v >= target if higher_is_better else v <= target):
            return float(r["kimg"])
    return None


def main(argv: Sequence[str]) -> None:
    runs_dir = Path(argv[1])
    images = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parents[1] / "images"
    small = load(runs_dir, SMALL_DATA)
    if small:
        save_plot(small, KEYS, images / "transfer_1k_36kimg_curves.png")
        save_strip(runs_dir, [(f, "fakes000036.png") for _, f in SMALL_DATA[:3]], images / "transfer_1k_fakes36.png")
        print("\nSmall data (at each snapshot):\n")
        print(snapshot_table(small))
    transfer = load(runs_dir, TRANSFER)
    if transfer:
        save_plot(transfer, KEYS, images / "transfer_outline_finetune_curves.png", width=900)
        grids = [("t15_outline_scratch", "fakes000036.png"), ("t15_outline_finetune", "fakes000012.png"),
                 ("t15_outline_finetune_ada_fd1", "fakes000012.png")]
        save_strip(runs_dir, grids, images / "transfer_outline_fakes.png")
        print("\nTransfer onto outline glyphs (at each snapshot):\n")
        print(snapshot_table(transfer))
        runs = dict(transfer)
        tuned = [name for name in runs if name.startswith("fine-tune")]
        if "scratch" not in runs:
            tuned = []
        for name in tuned:
            final = [r for r in runs["scratch"] if "glyph_acc" in r][-1]
            for key, better_high in (("glyph_acc", True), ("swd_avg", False)):
                target = final.get(key)
                if target is None:
                    continue
                # SWD has one pyramid level per resolution from 16 px: compare at the final resolution only
                best = (max if better_high else min)(r[key] for r in runs["scratch"] if r.get(key) is not None
                                                     and r["resolution"] == final["resolution"])
                hit = first_reaching(runs[name], key, target, better_high)
                hit_best = first_reaching(runs[name], key, best, better_high)
                tuned_best = (max if better_high else min)(r[key] for r in runs[name] if r.get(key) is not None)
                scratch_hit = first_reaching([r for r in runs["scratch"] if r["resolution"] == final["resolution"]],
                                             key, tuned_best, better_high)
                print(f"\n{key}: {name} best {tuned_best:.4g}; scratch (at {final['resolution']} px) reaches it at "
                      f"{scratch_hit} kimg")
                print(f"{key}: scratch final {target:.4g} at {final['kimg']:g} kimg (best {best:.4g}); {name} "
                      f"reaches the final value at {hit} kimg, the best at {hit_best} kimg (None: not within its run)")


if __name__ == "__main__":
    main(sys.argv)
