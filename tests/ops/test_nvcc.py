"""Compile-check every .cu for sm_75 and sm_90 with nvcc (the .cu files include no torch headers)."""
import shutil
import subprocess

import pytest

from stylegan.ops import build

NVCC = shutil.which("nvcc")
CU_FILES = sorted(build.source_dir().glob("*.cu"))


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH: CUDA sources not compile-checked")
@pytest.mark.parametrize("arch", ["sm_75", "sm_90"])
@pytest.mark.parametrize("cu", CU_FILES, ids=[p.name for p in CU_FILES])
def test_cu_file_compiles(cu, arch, tmp_path):
    cmd = [NVCC, "-std=c++17", "-c", str(cu), "-I", str(build.source_dir()), f"-arch={arch}",
           "-DSTYLEGAN_WITH_CUDA", "-o", str(tmp_path / "out.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"


def test_every_op_has_a_cuda_source():
    assert {p.stem for p in CU_FILES} >= {"bias_act", "upfirdn2d"}
