"""Our G (from the pickle's Gs) and D reproduce every array the original NVlabs TF code computed (small_io.npz).

Tolerances from small_io.json: images atol 1e-3 rtol 1e-4 (values reach ~30), dlatents and D scores atol 1e-4.
Noise: the official runs used randomize_noise=False, i.e. the pickle's stored noise maps = our noise_mode='const'.
"""
from __future__ import annotations

import copy
import io
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from network_test_support import AUTO_FALLBACK_WARNING, SMALL_PKL
from stylegan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan.formats import nvlabs_tf
from stylegan.formats.safe_pickle import NetworkStub, UnsafePickleError, safe_load
from stylegan.layers import upscale2d_nearest

IMG_TOL = dict(atol=1e-3, rtol=1e-4)
VEC_TOL = dict(atol=1e-4, rtol=0)
IMPLS = [pytest.param("ref"), pytest.param("auto", marks=pytest.mark.filterwarnings(AUTO_FALLBACK_WARNING))]


def box_down(x: torch.Tensor, times: int) -> torch.Tensor:
    """2x2 box average applied `times` times (what the official D does to its full-res input internally)."""
    for _ in range(times):
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2).mean(dim=(3, 5))
    return x


@pytest.fixture(scope="module", params=IMPLS)
def nets(request, small_official):
    """(Gs, D) converted from the fixture pickle, for one impl."""
    _, D_stub, Gs_stub = small_official
    return (nvlabs_tf.generator_from_tf(Gs_stub, impl=request.param),
            nvlabs_tf.discriminator_from_tf(D_stub, impl=request.param))


def check(ours: torch.Tensor, theirs: torch.Tensor, tol: dict) -> None:
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, **tol)


@torch.no_grad()
def test_mapping_and_truncation(nets, small_io):
    Gs, _ = nets
    ws, ws2 = Gs.mapping(small_io["z"]), Gs.mapping(small_io["z2"])
    check(ws, small_io["dlatents"], VEC_TOL)
    check(ws2, small_io["dlatents2"], VEC_TOL)
    check(Gs.w_avg, small_io["dlatent_avg"], dict(atol=0, rtol=0))
    check(Gs.truncate(ws, 0.7, 8), small_io["dlatents_trunc07_cut8"], VEC_TOL)
    check(Gs.mix(ws, ws2, 4), small_io["dlatents_mix"], VEC_TOL)


@pytest.mark.parametrize("key, psi, cutoff", [
    ("gs_psi1", 1.0, None), ("gs_psi1_linear", 1.0, None), ("gs_psi07_cut8", 0.7, 8), ("gs_psi05_cut3", 0.5, 3),
    ("gs_defaults", "config", "config"),
])
@torch.no_grad()
def test_generator_images(nets, small_io, key, psi, cutoff):
    Gs, _ = nets
    if psi == "config":  # G_style defaults: truncation_psi=0.7, truncation_cutoff=8
        psi, cutoff = Gs.config.truncation_psi, Gs.config.truncation_cutoff
        assert (psi, cutoff) == (0.7, 8)
    check(Gs(small_io["z"], psi=psi, cutoff=cutoff, noise_mode="const"), small_io[key], IMG_TOL)


@pytest.mark.parametrize("key, lod", [("gs_psi1_lod1p0", 1.0), ("gs_psi1_lod1p0_linear", 1.0),
                                      ("gs_psi1_lod1p5", 1.5), ("gs_psi1_lod1p5_linear", 1.5)])
@torch.no_grad()
def test_generator_lod(nets, small_io, key, lod):
    """Official output at a lod is full resolution; ours is at resolution_at(lod): nearest-upsample to compare."""
    Gs, _ = nets
    img = Gs(small_io["z"], noise_mode="const", lod=lod)
    assert img.shape[-1] == Gs.config.resolution_at(lod) == 16
    check(upscale2d_nearest(img, 2), small_io[key], IMG_TOL)


@torch.no_grad()
def test_synthesis_from_dlatents(nets, small_io):
    Gs, _ = nets
    check(Gs.synthesis(small_io["dlatents"], noise_mode="const"), small_io["synth_from_dlatents"], IMG_TOL)
    ws = Gs.mix(small_io["dlatents"], small_io["dlatents2"], 4)
    check(Gs.synthesis(ws, noise_mode="const"), small_io["synth_mix"], IMG_TOL)
    # The same through G(z, z2, crossover).
    img = Gs(small_io["z"], z2=small_io["z2"], crossover=4, noise_mode="const")
    check(img, small_io["synth_mix"], IMG_TOL)


@pytest.mark.parametrize("key, lod", [("d_lod0p0", 0.0), ("d_lod0p0_linear", 0.0), ("d_lod1p0", 1.0),
                                      ("d_lod1p0_linear", 1.0), ("d_lod1p5", 1.5), ("d_lod1p5_linear", 1.5)])
@torch.no_grad()
def test_discriminator(nets, small_io, key, lod):
    """The official D gets full-res images and downscales internally; ours gets them at resolution_at(lod)."""
    _, D = nets
    img = box_down(small_io["d_images"], int(lod))
    check(D(img, lod=lod), small_io[key], VEC_TOL)


@torch.no_grad()
def test_discriminator_mbstd_group_2(nets, small_io):
    _, D = nets
    D2 = Discriminator(D.config.replace(mbstd_group_size=2), impl=D.impl)
    D2.load_state_dict(D.state_dict())
    check(D2(small_io["d_images"]), small_io["d_lod0p0_mbstd2"], VEC_TOL)
    assert not torch.allclose(D2(small_io["d_images"]), D(small_io["d_images"]), atol=1e-3)  # the groups matter


def test_fixture_matches_reader(small_official, small_io_meta):
    """Every variable the JSON lists exists in the pickle with the listed shape (the reader sees everything)."""
    G_stub, D_stub, Gs_stub = small_official
    for net, stub in (("G", G_stub), ("D", D_stub), ("Gs", Gs_stub)):
        flat = nvlabs_tf._flat_variables(stub)
        listed = small_io_meta["variables"].get(net, {})
        for name, info in listed.items():
            assert list(np.shape(flat[name])) == info["shape"], name
    assert [s.name for s in small_official] == ["G", "D", "Gs"]
    G = nvlabs_tf.generator_from_tf(G_stub, impl="ref")
    Gs = nvlabs_tf.generator_from_tf(Gs_stub, impl="ref")
    assert not torch.equal(G.synthesis.layers[1].conv.weight, Gs.synthesis.layers[1].conv.weight)


# ---- official parameter counts ------------------------------------------------------------------------------------
def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_parameter_counts_official_1024():
    G = Generator(GeneratorConfig(), impl="ref")
    assert _trainable(G.mapping) == 2_101_248
    assert _trainable(G.synthesis) == 24_118_379
    assert _trainable(G) == 26_219_627
    assert G.num_layers == 18
    assert _trainable(Discriminator(DiscriminatorConfig(), impl="ref")) == 23_087_249


# ---- conversion errors ---------------------------------------------------------------------------------------------
def test_unknown_static_kwarg_is_named(small_official):
    Gs = copy.deepcopy(small_official[2])
    Gs.static_kwargs["mystery_knob"] = 3
    with pytest.raises(ValueError, match="mystery_knob"):
        nvlabs_tf.generator_from_tf(Gs)
    D = copy.deepcopy(small_official[1])
    D.static_kwargs["use_magic"] = True
    with pytest.raises(ValueError, match="use_magic"):
        nvlabs_tf.discriminator_from_tf(D)


def test_runtime_kwargs_are_ignored(small_official, small_io):
    Gs = copy.deepcopy(small_official[2])
    Gs.static_kwargs.update(randomize_noise=False, structure="linear", is_template_graph=True, dtype="float32")
    G = nvlabs_tf.generator_from_tf(Gs, impl="ref")
    with torch.no_grad():
        check(G.mapping(small_io["z"]), small_io["dlatents"], VEC_TOL)
    Gs.static_kwargs["dtype"] = "float16"
    with pytest.raises(ValueError, match="dtype"):
        nvlabs_tf.generator_from_tf(Gs)


def test_shape_mismatch_and_missing_variable_are_named(small_official):
    Gs = copy.deepcopy(small_official[2])
    syn = Gs.components["synthesis"]
    syn.variables = [(k, v[:, :, :8] if k == "8x8/Conv1/weight" else v) for k, v in syn.variables]
    with pytest.raises(ValueError, match="8x8/Conv1/weight"):
        nvlabs_tf.generator_from_tf(Gs)
    D = copy.deepcopy(small_official[1])
    D.variables = [(k, v) for k, v in D.variables if k != "4x4/Dense1/bias"]
    with pytest.raises(ValueError, match="4x4/Dense1/bias"):
        nvlabs_tf.discriminator_from_tf(D)
    D = copy.deepcopy(small_official[1])
    D.static_kwargs["fmap_max"] = 32  # the weights no longer fit the config
    with pytest.raises(ValueError, match="weight"):
        nvlabs_tf.discriminator_from_tf(D)


def test_wrong_build_function(small_official):
    with pytest.raises(ValueError, match="G_style"):
        nvlabs_tf.generator_from_tf(small_official[1])
    with pytest.raises(ValueError, match="D_basic"):
        nvlabs_tf.discriminator_from_tf(small_official[2])


# ---- the restricted unpickler --------------------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        import os

        return os.system, ("true",)


def test_forbidden_global_is_named():
    with pytest.raises(UnsafePickleError, match=r"'(posix|os)\.system'"):
        safe_load(pickle.dumps((_Evil(),), protocol=4))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load(pickle.dumps(eval, protocol=4))
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)


def test_not_a_network_tuple():
    with pytest.raises(ValueError, match="tuple"):
        nvlabs_tf.read_official_pickle(pickle.dumps({"a": np.zeros(3)}, protocol=4))


@pytest.fixture
def fake_dnnlib(monkeypatch):
    """A stand-in `dnnlib.tflib.network.Network` so tests can WRITE pickles the way the official code does."""

    class Network:
        def __init__(self, state):
            self.state = state

        def __getstate__(self):
            return self.state

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["dnnlib.tflib.network"].Network = Network
    return Network


def _state(stub: NetworkStub, version: int, fake) -> dict:
    state = dict(version=version, name=stub.name, static_kwargs=stub.static_kwargs, build_module_src="raise 1",
                 build_func_name=stub.build_func_name, variables=list(stub.variables))
    if version >= 3:
        state["components"] = {k: fake(_state(v, version, fake)) for k, v in stub.components.items()}
    return state


def test_state_versions_2_and_3(small_official, small_io, fake_dnnlib):
    G_stub, D_stub, Gs_stub = small_official
    # version 3 with components: the same Gs as the fixture (build_module_src is kept, never executed).
    data = pickle.dumps(tuple(fake_dnnlib(_state(s, 3, fake_dnnlib)) for s in small_official), protocol=4)
    _, _, Gs3 = nvlabs_tf.read_official_pickle(io.BytesIO(data))
    assert Gs3.version == 3 and Gs3.build_module_src == "raise 1"
    with torch.no_grad():
        check(nvlabs_tf.generator_from_tf(Gs3, impl="ref")(small_io["z"], noise_mode="const"), small_io["gs_psi1"],
              IMG_TOL)
    # version 2 (no components key): D has none, so it converts the same way.
    data = pickle.dumps((fake_dnnlib(_state(D_stub, 2, fake_dnnlib)),) * 3, protocol=4)
    D2 = nvlabs_tf.read_official_pickle(data)[0]
    assert D2.version == 2 and D2.components == {}
    with torch.no_grad():
        check(nvlabs_tf.discriminator_from_tf(D2, impl="ref")(small_io["d_images"]), small_io["d_lod0p0"], VEC_TOL)
    bad = pickle.dumps((fake_dnnlib(dict(_state(D_stub, 2, fake_dnnlib), version=1)),) * 3, protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="version"):
        nvlabs_tf.read_official_pickle(bad)


def _imported(*packages: str) -> list:
    return sorted(name for name in sys.modules if name.split(".")[0] in packages)


def test_reader_never_imports_dnnlib_or_tf(tmp_path, monkeypatch):
    """Even where dnnlib and tensorflow are importable (stand-ins on sys.path, whose Network a plain unpickler
    would import and build), reading an official pickle imports neither: the reader only resolves its allow-list."""
    network = tmp_path / "dnnlib" / "tflib" / "network"
    network.mkdir(parents=True)
    (tmp_path / "dnnlib" / "__init__.py").write_text("")
    (tmp_path / "dnnlib" / "tflib" / "__init__.py").write_text("")
    (network / "__init__.py").write_text("import tensorflow\n\nclass Network:\n    pass\n")
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in _imported("dnnlib", "tensorflow"):
        monkeypatch.delitem(sys.modules, name)
    nvlabs_tf.read_official_pickle(SMALL_PKL)
    assert _imported("dnnlib", "tensorflow") == []
