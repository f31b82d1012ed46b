"""stylegan.precision: parsing, the `auto` rule for every CPU-flag / CUDA-capability case (injected), bad input,
and the autocast region (float32 out, nothing at all for fp32)."""
from __future__ import annotations

import warnings

import pytest
import torch

from stylegan import precision as P

CPU = torch.device("cpu")


@pytest.mark.parametrize("text, want", [("auto", "auto"), ("fp32", "fp32"), ("BF16", "bf16"), (" fp16 ", "fp16")])
def test_parse_accepts_the_four_names(text, want):
    assert P.parse_precision(text) == want


@pytest.mark.parametrize("bad", ["float16", "bf", "", None, 16])
def test_parse_rejects_anything_else_naming_it(bad):
    with pytest.raises(ValueError, match=r"precision .* is invalid: expected one of auto, fp32, bf16, fp16"):
        P.parse_precision(bad)


@pytest.mark.parametrize("flags, want, why", [
    (["sse2", "avx512f", "avx512_bf16"], "bf16", "avx512_bf16"),  # AMD Zen 4 / Intel Cooper Lake
    (["amx_tile", "amx_bf16", "avx512f"], "bf16", "amx_bf16"),     # Intel Sapphire Rapids
    (["sse2", "avx2", "avx512f"], "fp32", "no native bf16"),       # AVX-512 without its bf16 extension
    ([], "fp32", "no native bf16"),
])
def test_auto_on_a_cpu_follows_its_flags(flags, want, why):
    got = P.resolve_precision("auto", CPU, flags=flags)
    assert got.name == want and got.requested == "auto" and why in got.reason
    assert got.describe().startswith(f"precision {want} (auto: ")


def test_explicit_bf16_on_a_cpu_without_native_bf16_runs_with_one_warning():
    with pytest.warns(P.SlowPrecisionWarning, match="no native bf16 .* slower than fp32"):
        got = P.resolve_precision("bf16", CPU, flags=["avx2"])
    assert got.name == "bf16" and "slow" in got.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16", CPU, flags=["avx512_bf16"]).name == "bf16"  # native: no warning
        assert P.resolve_precision("bf16", CPU, flags=["avx2"], warn=False).name == "bf16"


def test_fp16_on_a_cpu_is_a_clear_error():
    for flags in (["avx512_bf16"], []):
        with pytest.raises(ValueError, match="'fp16' is for CUDA devices only.*use bf16.*or fp32"):
            P.resolve_precision("fp16", CPU, flags=flags)


@pytest.mark.parametrize("capability, want", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"), ((6, 1), "fp16")])
def test_auto_on_cuda_follows_the_compute_capability(capability, want):
    got = P.resolve_precision("auto", torch.device("cuda"), cuda_capability=capability)
    assert got.name == want and got.device_type == "cuda"
    assert f"sm{capability[0]}{capability[1]}" in got.reason


def test_cuda_bf16_needs_sm80_and_fp16_is_the_recipe_with_its_resolutions():
    cuda = torch.device("cuda")
    assert P.resolve_precision("bf16", cuda, cuda_capability=(8, 6)).name == "bf16"
    with pytest.raises(ValueError, match="'bf16' needs a CUDA device of compute capability >= 8.0.*sm75"):
        P.resolve_precision("bf16", cuda, cuda_capability=(7, 5))
    got = P.resolve_precision("fp16", cuda, cuda_capability=(8, 0), num_fp16_res=2)
    assert (got.name, got.dtype, got.num_fp16_res) == ("fp16", torch.float16, 2)
    assert got.describe() == "precision fp16 (requested), float16 in the 2 highest resolutions"
    auto = P.resolve_precision("auto", cuda, cuda_capability=(7, 0))
    assert auto.num_fp16_res == 4 and "the fp16 recipe" in auto.reason
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=r"num_fp16_res=.* is invalid: expected an int >= 0"):
            P.resolve_precision("fp16", cuda, cuda_capability=(8, 0), num_fp16_res=bad)


def test_fp32_is_fp32_everywhere_and_opens_no_autocast_region():
    for device, cap in ((CPU, None), (torch.device("cuda"), (7, 0))):
        got = P.resolve_precision("fp32", device, flags=["avx512_bf16"], cuda_capability=cap)
        assert got.name == "fp32" and not got.mixed
    x = torch.randn(3, 4)
    seen = []
    out = P.FP32.run(lambda t: seen.append(torch.is_autocast_enabled("cpu")) or t, x)
    assert out is x and seen == [False]  # the very same call: the exact path is untouched


def test_mixed_run_is_autocast_inside_and_float32_outside():
    bf16 = P.resolve_precision("bf16", CPU, flags=["avx512_bf16"])
    w = torch.randn(8, 4)
    seen = {}

    def net(x):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        y = x @ w  # an autocast op: runs in bfloat16
        seen["dtype"] = y.dtype
        return y

    out = bf16.run(net, torch.randn(2, 8))
    assert seen == {"autocast": True, "dtype": torch.bfloat16} and out.dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")


def test_this_machines_flags_are_the_ones_proc_cpuinfo_lists():
    flags = P.cpu_flags()
    try:
        with open("/proc/cpuinfo") as f:
            listed = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        listed = None
    if listed is None:
        pytest.skip("no /proc/cpuinfo flags line on this platform")
    assert set(flags) == set(listed)
    assert P.native_bf16_flag(flags) == next((f for f in P.NATIVE_BF16_CPU_FLAGS if f in listed), None)
