"""The JIT build cache: no rebuild when nothing changed, concurrent builders, clear failure and fallback.

These tests build a tiny pybind-only extension from a temporary source folder (a few seconds to compile), so they
exercise ops/build.py without depending on the real kernels' compile time.
"""
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from stylegan.ops import build

GOOD_SOURCE = textwrap.dedent("""
    #include <pybind11/pybind11.h>
    int answer() { return 42; }
    PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("answer", &answer); }
""")
BROKEN_SOURCE = "this is not C++;\n"


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A private source folder and cache dir, with the in-process build cache cleared before and after."""
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.setattr(build, "source_dir", lambda: src)
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(build.OPS_ENV, raising=False)
    build.clear_cache()
    yield src, tmp_path / "cache" / "ops"
    build.clear_cache()


def test_builds_once_and_reuses_the_cached_binary(sandbox, capfd):
    src, cache = sandbox
    (src / "dummy.cpp").write_text(GOOD_SOURCE)
    first = build.get_extension("dummy", "cpu")
    assert first.module is not None and first.module.answer() == 42
    assert "building the CPU kernel for dummy" in capfd.readouterr().err
    built = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert len(built) == 1 and not built[0].startswith(".")  # temp build folder renamed into place

    build.clear_cache()  # a new process would start like this
    second = build.get_extension("dummy", "cpu")
    assert second.module.answer() == 42
    assert "building" not in capfd.readouterr().err  # loaded from the cache, no rebuild


def test_a_source_change_gives_a_new_cache_key(sandbox):
    src, _ = sandbox
    (src / "dummy.cpp").write_text(GOOD_SOURCE)
    key1 = build._build_key("dummy", "cpu")
    (src / "dummy.cpp").write_text(GOOD_SOURCE.replace("42", "43"))
    assert build._build_key("dummy", "cpu") != key1
    key2 = build._build_key("dummy", "cpu")
    (src / "dummy.h").write_text("// the op's header matters\n")
    key3 = build._build_key("dummy", "cpu")
    (src / "common.h").write_text("// so does the shared header\n")
    key4 = build._build_key("dummy", "cpu")
    (src / "other_op.cpp").write_text("// another op's source does not\n")
    assert len({key1, key2, key3, key4}) == 4 and build._build_key("dummy", "cpu") == key4


def test_failed_build_warns_once_and_falls_back_under_auto(sandbox):
    src, cache = sandbox
    (src / "dummy.cpp").write_text(BROKEN_SOURCE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert build.resolve_impl("dummy", "auto", torch.device("cpu")) == ("ref", None)
        assert build.resolve_impl("dummy", "auto", torch.device("cpu")) == ("ref", None)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "build log" in messages[0] and "stylegan doctor" in messages[0]
    log = next(cache.glob("*.log"))
    assert "failed" in log.read_text()


def test_failed_build_raises_with_the_log_path_under_explicit_impl(sandbox):
    src, cache = sandbox
    (src / "dummy.cpp").write_text(BROKEN_SOURCE)
    with pytest.raises(build.OpBuildError, match=r"build log: .*\.log"):
        build.resolve_impl("dummy", "cpu", torch.device("cpu"))


def test_stylegan_ops_ref_forces_the_reference(sandbox, monkeypatch):
    src, _ = sandbox
    (src / "dummy.cpp").write_text(BROKEN_SOURCE)
    monkeypatch.setenv(build.OPS_ENV, "ref")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no build attempted, so no warning either
        assert build.resolve_impl("dummy", "cpu", torch.device("cpu")) == ("ref", None)


def test_bad_impl_and_device_mismatch_are_clear_errors():
    with pytest.raises(ValueError, match="impl must be one of"):
        build.resolve_impl("bias_act", "fast", torch.device("cpu"))
    with pytest.raises(ValueError, match="impl='cuda' was requested but the tensors are on 'cpu'"):
        build.resolve_impl("bias_act", "cuda", torch.device("cpu"))


WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from stylegan.ops import build
    build.source_dir = lambda: Path(sys.argv[1])
    result = build.get_extension("dummy", "cpu")
    print(result.module.answer() if result.module else result.error)
""")


def test_two_processes_building_at_once_both_succeed_and_only_one_compiles(sandbox, tmp_path):
    src, cache = sandbox
    (src / "dummy.cpp").write_text(GOOD_SOURCE)
    env = {**__import__("os").environ, build.CACHE_ENV: str(cache.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(src)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["42", "42"]
    assert sum("building the CPU kernel" in o[1] for o in outs) == 1  # the lock holder built, the other waited
    assert not [p for p in Path(cache).iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_the_cpu_build_key_names_the_cpus_instruction_set(monkeypatch):
    """-march=native binaries are CPU-specific: another CPU identity must never reuse this one's build."""
    from stylegan.ops import build

    here = build._build_key("bias_act", "cpu")
    assert build.cpu_identity() and build._build_key("bias_act", "cpu") == here  # stable on one machine
    monkeypatch.setattr(build, "cpu_identity", lambda: "fpu sse sse2")  # a CPU without AVX
    assert build._build_key("bias_act", "cpu") != here


def test_an_unwritable_cache_builds_into_a_private_folder(tmp_path, monkeypatch, capsys):
    """STYLEGAN_CACHE_DIR below a plain file cannot be created, even by root (ENOTDIR), like a read-only cache."""
    from stylegan.ops import build

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(build.CACHE_ENV, str(blocker / "cache"))
    built = object()

    def fake_compile(op, device_type, name, build_dir):
        (build_dir / f"{name}.so").write_bytes(b"")
        return built

    monkeypatch.setattr(build, "_compile", fake_compile)
    result = build._build("bias_act", "cpu")
    assert result.module is built and result.error is None
    err = capsys.readouterr().err
    assert "is not writable" in err and "for this process only" in err and build.CACHE_ENV in err
