"""Hostile and damaged network files: forbidden globals in every pickle protocol, sizes a file claims but does not
hold, NaN/Inf weights, torch's advice to load unsafely, and `convert` over its own source or a training checkpoint."""
from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import subprocess
import sys
import types
import warnings

import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.cli import main
from stylegan.formats import native
from stylegan.formats.safe_pickle import NetworkStub, UnsafePickleError, safe_load

from network_test_support import SMALL_PKL, TINY_GENERATOR

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class _Reduce:
    """Pickles as `func(*args)` (then `__setstate__(state)` when given): how a crafted file calls code."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _tiny_generator(seed: int = 0) -> stylegan.Generator:
    torch.manual_seed(seed)
    return stylegan.Generator(stylegan.GeneratorConfig(**TINY_GENERATOR), impl="ref")


# ---- every pickle protocol goes through the allow-list --------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_forbidden_global_is_refused_in_every_pickle_protocol(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=protocol))
    with pytest.raises(UnsafePickleError, match="posix.system"):
        stylegan.load(path)
    data = path.read_bytes()
    end = next(pos for op, _, pos in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL")) + 1
    end += data[end - 1:].index(b"\n", data[end - 1:].index(b"\n") + 1) if data[end - 1:end] == b"c" else 0
    path.write_bytes(data[:end])  # cut right after the global: still refused as code, not "unknown format"
    with pytest.raises(UnsafePickleError, match="posix.system"):
        stylegan.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_forbidden_global_is_refused_in_torch_files_of_every_protocol(tmp_path, protocol, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "G": _Reduce(os.system, (f"touch {marker}",))}, path,
               pickle_protocol=protocol, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafePickleError, match="posix.system") as info:
        stylegan.load(path)
    assert "weights_only" not in str(info.value)
    assert not marker.exists()


def _official_pickle_in_protocol(protocol: int, monkeypatch) -> bytes:
    """tests/data/small.pkl written again in `protocol`: its networks as instances of a stand-in
    dnnlib.tflib.network.Network, so the stream references exactly the globals an official one does."""
    class Network:
        def __getstate__(self):
            return self.state

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["dnnlib.tflib.network"].Network = Network

    def convert(stub: NetworkStub) -> Network:
        net = Network()
        net.state = {"version": stub.version, "name": stub.name, "static_kwargs": stub.static_kwargs,
                     "components": {k: convert(v) for k, v in stub.components.items()},
                     "build_func_name": stub.build_func_name, "build_module_src": stub.build_module_src,
                     "variables": stub.variables}
        return net

    return pickle.dumps(tuple(convert(stub) for stub in safe_load(SMALL_PKL)), protocol=protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_official_pickle_loads_in_every_protocol(tmp_path, protocol, monkeypatch):
    path = tmp_path / "small.pkl"
    path.write_bytes(_official_pickle_in_protocol(protocol, monkeypatch))
    monkeypatch.undo()  # the stand-in module is gone before loading: nothing is imported from it
    nets, reference = stylegan.load(path), stylegan.load(SMALL_PKL)
    for key in ("G", "D", "G_ema"):
        ours, theirs = getattr(nets, key).state_dict(), getattr(reference, key).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


# ---- sizes a file claims are checked before anything that large is allocated ----------------------------------------
_CLAIMS_SCRIPT = r"""
import io, json, pickle, re, resource, struct, sys
import numpy as np, torch
import stylegan, stylegan.generator, stylegan.discriminator
from stylegan.formats import native, nvlabs_tf, rosinality
from numpy._core.multiarray import _reconstruct
sys.path.insert(0, sys.argv[1])
from test_reliability_loading import _Reduce, _tiny_generator

TB = 10 ** 12
files = {"bytes8": b"\x80\x04\x8e" + struct.pack("<Q", TB) + b"abc.",
         "array reconstruct": pickle.dumps(_Reduce(_reconstruct, (np.ndarray, (TB,), b"b")), protocol=4),
         "object array": pickle.dumps(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                              (1, (TB,), np.dtype(object), False, [1])), protocol=4)}
buffer = io.BytesIO()
torch.save({"format_version": 1, "G": {"x": torch.zeros(3)}}, buffer, _use_new_zipfile_serialization=False)
legacy = buffer.getvalue()
files["legacy storage"] = re.sub(rb"(X\x03\x00\x00\x00cpuq.)K\x03", lambda m: m.group(1) + b"\x8a\x06" +
                                 TB.to_bytes(6, "little"), legacy)
assert files["legacy storage"] != legacy
buffer = io.BytesIO()
torch.save({"generator": {"style.1.linear.weight_orig": torch.zeros(1, dtype=torch.float16).expand(TB)}}, buffer)
files["expanded tensor"] = buffer.getvalue()
buffer = io.BytesIO()
stylegan.save(buffer_path := sys.argv[2], G=_tiny_generator())
files["a real network (the limit leaves room for it)"] = open(buffer_path, "rb").read()

vm = int(re.search(r"VmSize:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), vm + (1 << 30)))
results = {}
for case, data in files.items():
    try:
        stylegan.load(io.BytesIO(data))
        results[case] = ["loaded", ""]
    except BaseException as exc:
        results[case] = [type(exc).__name__, str(exc)]
print(json.dumps(results))
"""


def test_claimed_sizes_are_refused_before_allocating(tmp_path):
    """Under an address-space limit of 1 GiB above what the process uses, a file claiming a terabyte must get our
    error (which names the claim), not a MemoryError or torch's failed allocation."""
    out = subprocess.run([sys.executable, "-c", _CLAIMS_SCRIPT, os.path.dirname(__file__), str(tmp_path / "n.pt")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "STYLEGAN_OPS": "ref"})
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results.pop("a real network (the limit leaves room for it)") == ["loaded", ""]
    expected = {"bytes8": "1000000000000 bytes in a bytes8, but only 4 remain",
                "array reconstruct": "_reconstruct.*refused",
                "object array": "dtype.*object.*refused",
                "legacy storage": "a storage claims 1,000,000,000,000 elements but the file holds",
                "expanded tensor": r"shape \[1000000000000\] claims 2,000,000,000,000 bytes but the file holds"}
    for case, (kind, message) in results.items():
        assert kind == "ValueError", (case, kind, message)
        assert __import__("re").search(expected[case], message), (case, message)


# ---- NaN / Inf weights -----------------------------------------------------------------------------------------------
def _nonfinite_network(path):
    G, D = _tiny_generator(), stylegan.Discriminator(stylegan.DiscriminatorConfig(resolution=32, fmap_base=64,
                                                                                  fmap_max=16), impl="ref")
    with torch.no_grad():
        G.synthesis.layers[0].bias[1] = float("nan")
        G.w_avg[0] = float("inf")
    stylegan.save(path, G=G, D=D, G_ema=_tiny_generator(1))
    return ["G.synthesis.layers.0.bias", "G.w_avg"]


def test_nonfinite_weights_load_with_one_warning_naming_the_tensors(tmp_path):
    path = tmp_path / "nan.pt"
    names = _nonfinite_network(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nets = stylegan.load(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "nan.pt" in messages[0] and "2 tensor(s)" in messages[0] and all(n in messages[0] for n in names)
    found = stylegan.loading.nonfinite_tensors(nets.G)
    assert sorted(found) == sorted(n.removeprefix("G.") for n in names)
    assert stylegan.loading.nonfinite_tensors(nets.G.state_dict()) == found
    assert stylegan.loading.nonfinite_tensors(nets.G_ema) == [] and stylegan.loading.nonfinite_tensors(nets.D) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stylegan.load(SMALL_PKL)  # a finite network: no warning at all
    with pytest.raises(TypeError, match="expected a module or a state dict"):
        stylegan.loading.nonfinite_tensors([1.0])


def test_info_reports_nonfinite_weights(tmp_path):
    path = tmp_path / "nan.pt"
    names = _nonfinite_network(path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("weights "))
    assert "NaN/Inf in 2 tensor(s)" in line and all(n in line for n in names), line
    assert "Traceback" not in result.stderr
    result = CliRunner().invoke(main, ["info", str(SMALL_PKL)])
    assert "weights        all finite" in result.stdout


def test_sampling_commands_warn_once_about_nonfinite_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")
    path = tmp_path / "nan.pt"
    names = _nonfinite_network(path)
    result = CliRunner().invoke(main, ["generate", "--network", str(path), "--seeds", "0", "--outdir",
                                       str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and all(n in lines[0] for n in names), result.stderr


# ---- never relay torch's advice to load unsafely; full shapes ---------------------------------------------------------
def test_unreadable_torch_files_never_advise_weights_only_false(tmp_path):
    cases = {"unsupported opcode": ({"format_version": 1, "G": b"bytes"}, 4),
             "refused global": ({"format_version": 1, "G": frozenset({1})}, 2)}
    for case, (payload, protocol) in cases.items():
        path = tmp_path / f"{case}.pt"
        torch.save(payload, path, pickle_protocol=protocol)
        with pytest.raises((ValueError, UnsafePickleError)) as info:
            stylegan.load(path)
        message = str(info.value)
        assert str(path) in message, message
        assert "weights_only" not in message and "trust" not in message, (case, message)
        result = CliRunner().invoke(main, ["info", str(path)])
        assert result.exit_code == 2 and "weights_only" not in result.output, result.output
    with pytest.raises(ValueError, match="Unsupported operand 149"):
        stylegan.load(tmp_path / "unsupported opcode.pt")
    with pytest.raises(UnsafePickleError, match="frozenset"):
        stylegan.load(tmp_path / "refused global.pt")


@pytest.mark.parametrize("payload", [{"x": b"bytes"}, {"x": frozenset({1})}, {"x": slice(1, 2)}])
def test_torch_failure_reason_keeps_the_reason_and_drops_the_advice(payload):
    buffer = io.BytesIO()
    torch.save(payload, buffer, pickle_protocol=4 if isinstance(payload["x"], bytes) else 2)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError) as info:
        torch.load(buffer, weights_only=True)
    assert "weights_only" in str(info.value)  # what torch says
    reason = native.torch_failure_reason(info.value)
    assert "weights_only" not in reason and "trust" not in reason.lower() and "\n" not in reason, reason
    assert ("Unsupported operand" in reason) or ("not an allowed global" in reason), reason


def test_a_wrong_shape_names_the_tensor_and_both_shapes(tmp_path):
    path = tmp_path / "net.pt"
    stylegan.save(path, G=_tiny_generator())
    payload = torch.load(path, weights_only=True)
    payload["G"]["synthesis.torgb.1.weight"] = torch.zeros(3, 16, 1, 1, 1, 1, 1)
    torch.save(payload, path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 2, result.output
    assert "synthesis.torgb.1.weight has shape [3, 16, 1, 1, 1, 1, 1], expected [3, 16, 1, 1]" in \
        " ".join(result.output.split()), result.output


# ---- convert A A, and over a training checkpoint ----------------------------------------------------------------------
def _training_checkpoint(path):
    G = _tiny_generator()
    payload = native.to_payload(G=G, G_ema=G)
    payload["training"] = {"images_shown": 1000, "lod": 1.0}
    torch.save(payload, path)
    return path.read_bytes()


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_convert_into_its_own_source_is_refused(tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    before = _training_checkpoint(tmp_path / "ckpt.pt")
    dst = {"same": "ckpt.pt", "dot": "./ckpt.pt", "symlink": "link.pt", "hardlink": "hard.pt"}[spelling]
    if spelling == "symlink":
        os.symlink("ckpt.pt", "link.pt")
    elif spelling == "hardlink":
        os.link("ckpt.pt", "hard.pt")
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(main, ["convert", "ckpt.pt", dst, *extra])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "same file as SRC" in result.output, result.output
    assert (tmp_path / "ckpt.pt").read_bytes() == before


def test_convert_over_a_training_checkpoint_needs_overwrite(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    before = _training_checkpoint(ckpt)
    result = CliRunner().invoke(main, ["convert", str(SMALL_PKL), str(ckpt)])
    assert result.exit_code == 2 and "training checkpoint" in result.output and "--overwrite" in result.output
    assert ckpt.read_bytes() == before
    result = CliRunner().invoke(main, ["convert", str(SMALL_PKL), str(ckpt), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert stylegan.load(ckpt).source_format == "stylegan" and "training" not in torch.load(ckpt, weights_only=True)
    # A plain network file (no 'training' entry) is replaced as before.
    result = CliRunner().invoke(main, ["convert", str(SMALL_PKL), str(ckpt)])
    assert result.exit_code == 0, result.output
