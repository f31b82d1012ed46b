"""The seed statistics of docs/PERFORMANCE.md §8.8.2: glyph_acc at one kimg for groups of README main-job runs.

Usage: python docs/scripts/precision_seeds.py KIMG[,KIMG...] GROUP:SEED=RUN_DIR [GROUP:SEED=RUN_DIR ...]
e.g.   ... 120 fp32:0=runs/fp32_s0 bf16:0=runs/bf16_s0 fp32-ref:0=runs/ref_s0 ...
With several KIMG, a run's value is its mean glyph_acc over those snapshots (less snapshot-to-snapshot noise).

Prints each run's value, each group's mean and standard deviation, the same-seed differences of every group from
the first one, and for every other group the difference of means with an exact two-sided permutation p-value (all
ways to relabel the pooled runs; no distribution assumed).
"""
from __future__ import annotations

import itertools
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from stylegan.plot import read_jsonl


def value_at(run_dir: str, kimg: float) -> float:
    """glyph_acc logged at `kimg` in RUN_DIR/log.jsonl."""
    for row in read_jsonl(Path(run_dir) / "log.jsonl"):
        if abs(float(row.get("kimg", -1)) - kimg) < 1e-6 and row.get("glyph_acc") is not None:
            return float(row["glyph_acc"])
    raise SystemExit(f"{run_dir}: no glyph_acc at {kimg:g} kimg in log.jsonl")


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Share of relabellings of a+b whose |mean difference| is at least the observed one."""
    pooled, n = list(a) + list(b), len(a)
    observed = abs(statistics.mean(a) - statistics.mean(b))
    hits = total = 0
    for picked in itertools.combinations(range(len(pooled)), n):
        chosen = set(picked)
        first = [pooled[i] for i in chosen]
        second = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += abs(statistics.mean(first) - statistics.mean(second)) >= observed - 1e-12
        total += 1
    return hits / total


def main(kimg_text: str, *items: str) -> None:
    kimgs = [float(k) for k in kimg_text.split(",")]
    groups: Dict[str, Dict[str, float]] = {}
    for item in items:
        label, sep, folder = item.partition("=")
        group, colon, seed = label.partition(":")
        if not sep or not colon or not group or not seed or not folder:
            raise SystemExit(f"{item!r}: expected GROUP:SEED=RUN_DIR")
        groups.setdefault(group, {})[seed] = statistics.mean(value_at(folder, k) for k in kimgs)
    if len(groups) < 2:
        raise SystemExit(__doc__)
    names = list(groups)
    base = names[0]
    print(f"glyph_acc at {' and '.join(f'{k:g}' for k in kimgs)} kimg" + (" (mean)" if len(kimgs) > 1 else ""))
    for name in names:
        values = groups[name]
        spread = statistics.stdev(values.values()) if len(values) > 1 else float("nan")
        runs = ", ".join(f"s{seed} {v:.3f}" for seed, v in values.items())
        print(f"{name:>10}: mean {statistics.mean(values.values()):.3f}, sd {spread:.3f}, n {len(values)} ({runs})")
    for name in names[1:]:
        pairs: List[Tuple[str, float]] = [(s, groups[name][s] - groups[base][s]) for s in groups[name]
                                          if s in groups[base]]
        same_seed = ", ".join(f"s{s} {100 * d:+.1f}" for s, d in pairs)
        diff = statistics.mean(groups[name].values()) - statistics.mean(groups[base].values())
        p = permutation_p(list(groups[name].values()), list(groups[base].values()))
        print(f"{name} minus {base}: same seed (points) {same_seed}; difference of means {100 * diff:+.1f} points, "
              f"permutation p = {p:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
