"""Mutation runs: proof that the emulation tests fail when a CUDA kernel is wrong (results in docs/GPU.md).

Each mutation copies cuda/ into a scratch folder, changes one thing in a .cu file (a barrier removed, an index, a
tile bound, a stride), and runs `pytest -m cuda_emulation tests/ops` against that copy (STYLEGAN_EMULATE_CUDA_DIR).
A mutation that every test survives means the tests cannot see that kind of bug. Nothing in the tree is changed.

    python tests/ops/emulation/mutations.py [NAME ...]     (about 2-3 minutes per mutation on 2 cores)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# name -> (file, exact text, replacement, what it models)
MUTATIONS = {
    "upfirdn2d-no-barrier-after-load": (
        "upfirdn2d.cu", "        }\n        __syncthreads();\n\n", "        }\n\n",
        "tiled_kernel: the barrier between staging the patch in shared memory and reading it removed"),
    "upfirdn2d-no-barrier-before-load": (
        "upfirdn2d.cu", "        __syncthreads();  // the previous tile is done with s_in (and s_g is loaded)\n", "",
        "tiled_kernel: the barrier before overwriting shared memory with the next tile removed"),
    "upfirdn2d-tile-bound": (
        "upfirdn2d.cu", "((TILE - 1) * DOWN + kMaxTaps - 1) / UP + 2;", "((TILE - 1) * DOWN + kMaxTaps - 1) / UP + 0;",
        "tiled_kernel: the staged patch one input too small per axis (+2 -> +1 is an equivalent mutant: the "
        "bound has one entry to spare)"),
    "upfirdn2d-index-row": (
        "upfirdn2d.cu", "const int64_t iy = iy0 + r, ix = ix0 + col;", "const int64_t iy = iy0 + col, ix = ix0 + r;",
        "tiled_kernel: the patch loader transposes rows and columns (swapping r and col in `i / IN, i % IN` is an "
        "equivalent mutant, only the loading order; so is i / (IN + 1), which leaves just the spare last row)"),
    "upfirdn2d-stride-x": (
        "upfirdn2d.cu", "Load()(xp[iy * p.in_sy + ix * p.in_sx])", "Load()(xp[iy * p.in_sy + ix])",
        "tiled_kernel: the input's x stride assumed to be 1 (breaks channels-last and transposed inputs)"),
    "upfirdn2d-generic-index": (
        "upfirdn2d.cu", "        oy = idx % out_h;\n        idx /= out_h;\n        c = idx % channels;",
        "        oy = idx % out_w;\n        idx /= out_h;\n        c = idx % channels;",
        "generic_kernel (x fastest): output row taken modulo the width"),
    "upfirdn2d-channels-last-index": (
        "upfirdn2d.cu", "        idx /= channels;\n        ox = idx % out_w;", "        idx /= channels;\n        ox = idx % out_h;",
        "generic_kernel (channels fastest): output column taken modulo the height"),
    "bias_act-bias-index": (
        "bias_act.cu", "b[(i / inner) % bias_size]", "b[(i % inner) % bias_size]",
        "bias index from the position inside a run instead of the run"),
    "bias_act-grid-stride": (
        "bias_act.cu", "const I stride = (I)gridDim.x * blockDim.x;", "const I stride = (I)gridDim.x * blockDim.x + 1;",
        "grid-stride loop steps one element too far"),
    "bias_act-bound": (
        "bias_act.cu", "i < numel; i += stride", "i <= numel; i += stride",
        "loop bound one past the end (a write out of bounds)"),
}


def run(name: str) -> dict:
    file, old, new, what = MUTATIONS[name]
    with tempfile.TemporaryDirectory(prefix=f"mutant-{name}-") as tmp:
        cuda = Path(tmp) / "cuda"
        shutil.copytree(REPO / "cuda", cuda)
        text = (cuda / file).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{name}: the text to mutate occurs {text.count(old)} times in {file}, expected once")
        (cuda / file).write_text(text.replace(old, new))
        env = {**os.environ, "STYLEGAN_EMULATE_CUDA_DIR": str(cuda)}
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda_emulation", "-p", "no:cacheprovider",
                               "tests/ops"], cwd=REPO, env=env, capture_output=True, text=True)
        failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) tests/ops/\S+::(\S+)", proc.stdout, re.M)))
        return dict(name=name, what=what, rc=proc.returncode, failed=failed, seconds=time.time() - start,
                    tail=proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:])


def main(names) -> int:
    survivors = []
    for name in names or list(MUTATIONS):
        r = run(name)
        caught = r["rc"] != 0 and r["failed"]
        print(f"## {name}: {'CAUGHT' if caught else 'SURVIVED'} ({r['seconds']:.0f} s) - {r['what']}")
        print(f"   {r['tail']}")
        for test in r["failed"]:
            print(f"   failed: {test}")
        sys.stdout.flush()
        if not caught:
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
