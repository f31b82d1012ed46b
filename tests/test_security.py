"""Loading never executes code from a file: crafted pickles and torch files raise UnsafePickleError, nothing runs."""
import os
import pickle
import subprocess

import pytest
import torch

import stylegan
from stylegan.formats.safe_pickle import UnsafePickleError

OFFICIAL_PICKLE = __import__("pathlib").Path(__file__).parent / "data" / "small.pkl"


class _Reduce:
    """Pickles as a call of `func(*args)` on load: the classic pickle exploit."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_command(marker):
    return f"touch {marker}"


def _payloads(marker):
    cmd = _marker_command(marker)
    return {
        "os.system": _Reduce(os.system, cmd),
        "builtins.eval": _Reduce(eval, f"__import__('os').system({cmd!r})"),
        "subprocess.Popen": _Reduce(subprocess.Popen, ["touch", str(marker)]),
        "builtins.exec": _Reduce(exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
@pytest.mark.parametrize("container", ["pickle", "pickle-inside-tuple", "torch-zip"])
def test_malicious_file_is_refused_and_nothing_runs(tmp_path, name, container):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[name]
    path = tmp_path / "evil.pkl"
    if container == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=4))
    elif container == "pickle-inside-tuple":
        path.write_bytes(pickle.dumps(({"version": 3}, payload, None), protocol=4))
    else:
        torch.save({"format_version": 1, "G": payload}, path)
    with pytest.raises(UnsafePickleError) as info:
        stylegan.load(path)
    forbidden = {"os.system": ("posix.system", "os.system"), "builtins.eval": ("builtins.eval",),
                 "subprocess.Popen": ("subprocess.Popen",), "builtins.exec": ("builtins.exec",)}[name]
    assert any(f in str(info.value) for f in forbidden), str(info.value)
    assert not marker.exists()


def test_posix_system_global_is_named(tmp_path):
    # A hand-written protocol-2 stream: GLOBAL 'posix system', then the call.
    marker = tmp_path / "pwned"
    data = b"\x80\x02cposix\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little") + \
        f"touch {marker}".encode() + b"\x85R."
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="posix.system"):
        stylegan.load(path)
    assert not marker.exists()


def test_unsafe_pickle_error_is_exported():
    assert stylegan.UnsafePickleError is UnsafePickleError
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"hello world, not a network", "unknown file format"),
    (b"\x80\x04\x95", "corrupt or truncated"),
    (b"PK\x03\x04garbage", "corrupt or truncated"),
])
def test_bad_files_name_the_file_and_what_was_expected(tmp_path, content, expected):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as info:
        stylegan.load(path)
    assert "bad.bin" in str(info.value)


def test_truncated_official_pickle_is_a_clear_error(tmp_path):
    data = OFFICIAL_PICKLE.read_bytes()
    path = tmp_path / "truncated.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pkl"):
        stylegan.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        stylegan.load(tmp_path / "nope.pkl")
    with pytest.raises(ValueError, match="is a directory"):
        stylegan.load(tmp_path)


def test_torch_file_of_unknown_layout(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"model": {"w": torch.zeros(3)}}, path)
    with pytest.raises(ValueError, match="not a known network format"):
        stylegan.load(path)


def test_unknown_format_version_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format_version": 99, "G": {}}, path)
    with pytest.raises(ValueError, match="format_version 99 is not supported"):
        stylegan.load(path)
