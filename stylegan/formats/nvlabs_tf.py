"""Official NVlabs StyleGAN TF pickles -> our Generator / Discriminator (no TensorFlow, no code execution).

Why this shape: `read_official_pickle` gives the three inert `NetworkStub`s (G, D, Gs) through the allow-list
unpickler; `*_config_from_tf` turns static_kwargs into our configs (their field names ARE the official kwarg
names, docs/FORMATS.md §1.3); `*_name_map` is a pure renaming + layout transpose of the stored variables
(§1.4, §1.5): our parameters hold exactly the official stored values (the equalized-lr scale, and the fused up/down
kernels, are applied at run time by both implementations). `networks_from_pickle`: the reader stylegan.load calls.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import BinaryIO, Callable, Dict, Tuple, Union

import numpy as np
import torch

from ..config import DiscriminatorConfig, GeneratorConfig
from ..discriminator import Discriminator
from ..generator import Generator
from . import Networks
from .safe_pickle import NetworkStub, UnsafePickleError, safe_load

PathOrFile = Union[str, os.PathLike, BinaryIO, bytes]

# static_kwargs that only steer how the official graph is built/run, not the weights or the math of a forward
# pass at given inputs; they are ignored (the same knobs are call arguments of our networks).
G_RUNTIME_KWARGS = frozenset({
    "truncation_psi_val", "truncation_cutoff_val",  # G_style: validation-time truncation overrides
    "is_training", "is_validation", "is_template_graph",  # G_style graph-building flags
    "randomize_noise",  # -> noise_mode='random' | 'const'
    "structure",  # 'linear' | 'recursive' | 'auto': one function of lod (docs/FORMATS.md §1.10), ours computes it
    "force_clean_graph",  # graph cosmetics
    "dlatent_broadcast",  # G_mapping: always num_layers inside G_style
    "dtype",  # must be 'float32' (checked)
})
D_RUNTIME_KWARGS = frozenset({"structure", "is_template_graph", "dtype"})
# Official D_basic defaults that differ from our DiscriminatorConfig defaults (see DiscriminatorConfig).
D_OFFICIAL_DEFAULTS = {"num_channels": 1, "resolution": 32}

Transform = Callable[[np.ndarray], np.ndarray]


def _conv(w: np.ndarray) -> np.ndarray:  # TF [kh, kw, in, out] -> torch [out, in, kh, kw]
    return w.transpose(3, 2, 0, 1)


def _dense(w: np.ndarray) -> np.ndarray:  # TF [in, out] -> torch [out, in]
    return w.transpose(1, 0)


def _same(w: np.ndarray) -> np.ndarray:
    return w


def read_official_pickle(path_or_file: PathOrFile) -> Tuple[NetworkStub, NetworkStub, NetworkStub]:
    """Returns the (G, D, Gs) stubs of an official pickle (Gs = the averaged generator used for inference)."""
    obj = safe_load(path_or_file)
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(o, NetworkStub) for o in obj)):
        raise ValueError(f"not an official StyleGAN pickle: expected a tuple (G, D, Gs) of networks, got "
                         f"{type(obj).__name__}" + (f" of length {len(obj)}" if isinstance(obj, tuple) else ""))
    return obj


def _config_kwargs(stub: NetworkStub, cls, runtime: frozenset, defaults: Dict) -> Dict:
    fields = set(cls.__dataclass_fields__)
    kwargs = dict(defaults)
    for key, value in stub.static_kwargs.items():
        if key in runtime:
            if key == "dtype" and value != "float32":
                raise ValueError(f"{stub.name}: static kwarg dtype={value!r} is not supported (only 'float32')")
            continue
        if key not in fields:
            raise ValueError(f"{stub.name}: unknown static kwarg {key!r}={value!r} (not a {cls.__name__} field "
                             f"nor a documented runtime-only kwarg)")
        kwargs[key] = value
    return kwargs


def generator_config_from_tf(stub: NetworkStub) -> GeneratorConfig:
    """GeneratorConfig from a G/Gs stub's static_kwargs (missing kwargs take the official defaults = ours)."""
    if stub.build_func_name != "G_style":
        raise ValueError(f"{stub.name}: build function {stub.build_func_name!r} is not G_style")
    for comp, func in (("mapping", "G_mapping"), ("synthesis", "G_synthesis")):
        sub = stub.components.get(comp)
        if not isinstance(sub, NetworkStub) or sub.build_func_name != func:
            raise ValueError(f"{stub.name}: component {comp!r} missing or not built by {func}")
    kwargs = _config_kwargs(stub, GeneratorConfig, G_RUNTIME_KWARGS, {})
    if "blur_filter" in kwargs and kwargs["blur_filter"] is not None:
        kwargs["blur_filter"] = tuple(kwargs["blur_filter"])
    return GeneratorConfig(**kwargs)


def discriminator_config_from_tf(stub: NetworkStub) -> DiscriminatorConfig:
    """DiscriminatorConfig from a D stub's static_kwargs (missing kwargs take the official D_basic defaults)."""
    if stub.build_func_name != "D_basic":
        raise ValueError(f"{stub.name}: build function {stub.build_func_name!r} is not D_basic")
    kwargs = _config_kwargs(stub, DiscriminatorConfig, D_RUNTIME_KWARGS, D_OFFICIAL_DEFAULTS)
    if "blur_filter" in kwargs and kwargs["blur_filter"] is not None:
        kwargs["blur_filter"] = tuple(kwargs["blur_filter"])
    return DiscriminatorConfig(**kwargs)


def generator_name_map(config: GeneratorConfig) -> Dict[str, Tuple[str, Transform]]:
    """'G_style var' / 'G_mapping/var' / 'G_synthesis/var' -> (our state_dict key, TF->torch layout transform)."""
    m: Dict[str, Tuple[str, Transform]] = {"dlatent_avg": ("w_avg", _same)}
    if config.label_size:
        m["G_mapping/LabelConcat/weight"] = ("mapping.embed", _same)
    for i in range(config.mapping_layers):
        m[f"G_mapping/Dense{i}/weight"] = (f"mapping.layers.{i}.weight", _dense)
        m[f"G_mapping/Dense{i}/bias"] = (f"mapping.layers.{i}.bias", _same)
    syn = "G_synthesis/"
    for i in range(config.num_layers):
        if config.use_noise:
            m[f"{syn}noise{i}"] = (f"synthesis.noise{i}", _same)
        res = 2 ** (i // 2 + 2)
        if i == 0:
            scope = "4x4/Const" if config.const_input_layer else "4x4/Dense"
        elif i == 1:
            scope = "4x4/Conv"
        else:
            scope = f"{res}x{res}/" + ("Conv0_up" if i % 2 == 0 else "Conv1")
        ours = f"synthesis.layers.{i}."
        if i == 0 and config.const_input_layer:
            m[f"{syn}{scope}/const"] = (ours + "const", _same)
        elif i == 0:
            m[f"{syn}{scope}/weight"] = (ours + "dense.weight", _dense)
        else:
            m[f"{syn}{scope}/weight"] = (ours + "conv.weight", _conv)
        if config.use_noise:
            m[f"{syn}{scope}/Noise/weight"] = (ours + "noise_strength", _same)
        m[f"{syn}{scope}/bias"] = (ours + "bias", _same)
        if config.use_styles:
            m[f"{syn}{scope}/StyleMod/weight"] = (ours + "style.weight", _dense)
            m[f"{syn}{scope}/StyleMod/bias"] = (ours + "style.bias", _same)
    for level in range(config.max_lod + 1):
        lod = config.max_lod - level
        m[f"{syn}ToRGB_lod{lod}/weight"] = (f"synthesis.torgb.{level}.weight", _conv)
        m[f"{syn}ToRGB_lod{lod}/bias"] = (f"synthesis.torgb.{level}.bias", _same)
    return m


def discriminator_name_map(config: DiscriminatorConfig) -> Dict[str, Tuple[str, Transform]]:
    """D_basic variable name -> (our state_dict key, TF->torch layout transform)."""
    m: Dict[str, Tuple[str, Transform]] = {}
    for level in range(config.max_lod + 1):
        lod = config.max_lod - level
        m[f"FromRGB_lod{lod}/weight"] = (f"fromrgb.{level}.weight", _conv)
        m[f"FromRGB_lod{lod}/bias"] = (f"fromrgb.{level}.bias", _same)
    for level in range(1, config.max_lod + 1):
        res = 4 << level
        for tf_layer, ours in (("Conv0", "conv0"), ("Conv1_down", "conv1")):
            m[f"{res}x{res}/{tf_layer}/weight"] = (f"blocks.{level - 1}.{ours}.weight", _conv)
            m[f"{res}x{res}/{tf_layer}/bias"] = (f"blocks.{level - 1}.{ours}.bias", _same)
    m["4x4/Conv/weight"] = ("epilogue.conv.weight", _conv)
    m["4x4/Conv/bias"] = ("epilogue.conv.bias", _same)
    for name in ("Dense0", "Dense1"):
        m[f"4x4/{name}/weight"] = (f"epilogue.{name.lower()}.weight", _dense)
        m[f"4x4/{name}/bias"] = (f"epilogue.{name.lower()}.bias", _same)
    return m


# Scalar `lod` variables: the official networks keep the progressive-growing state in a variable; ours take lod
# as a call argument, so the stored value (0 in released pickles) is not part of the weights.
_IGNORED_VARS = frozenset({"lod", "G_synthesis/lod", "G_mapping/lod"})


def _convert(variables: Dict[str, np.ndarray], name_map: Dict[str, Tuple[str, Transform]],
             reference: Dict[str, torch.Tensor], net: str) -> Dict[str, torch.Tensor]:
    state: Dict[str, torch.Tensor] = {}
    for tf_name, value in variables.items():
        if tf_name in _IGNORED_VARS:
            continue
        if tf_name not in name_map:
            raise ValueError(f"{net}: unexpected variable {tf_name!r} (shape {list(np.shape(value))}) for this "
                             f"configuration")
        key, transform = name_map[tf_name]
        arr = transform(np.asarray(value, dtype=np.float32))
        want = tuple(reference[key].shape)
        if arr.shape != want:
            raise ValueError(f"{net}: variable {tf_name!r} has TF shape {list(np.shape(value))}, which does not "
                             f"fit {key} {list(want)} of the configuration from static_kwargs")
        state[key] = torch.from_numpy(np.ascontiguousarray(arr))
    missing = sorted(tf for tf, (key, _) in name_map.items() if key not in state)
    if missing:
        raise ValueError(f"{net}: the pickle lacks variable(s) {missing}")
    return state


def _flat_variables(stub: NetworkStub) -> Dict[str, np.ndarray]:
    """Own variables plus every component's, the latter prefixed with the component network's name."""
    out = dict(stub.variables)
    for comp in stub.components.values():
        for name, value in _flat_variables(comp).items():
            out[f"{comp.name}/{name}"] = value
    return out


def generator_from_tf(stub: NetworkStub, impl: str = "auto") -> Generator:
    """A Generator numerically equal to the official G/Gs of `stub` (use noise_mode='const' for the stored noise)."""
    config = generator_config_from_tf(stub)
    G = Generator(config, impl=impl)
    state = _convert(_flat_variables(stub), generator_name_map(config), G.state_dict(), stub.name)
    G.load_state_dict(state, strict=True)
    return G


def discriminator_from_tf(stub: NetworkStub, impl: str = "auto") -> Discriminator:
    """A Discriminator numerically equal to the official D of `stub`."""
    config = discriminator_config_from_tf(stub)
    D = Discriminator(config, impl=impl)
    state = _convert(_flat_variables(stub), discriminator_name_map(config), D.state_dict(), stub.name)
    D.load_state_dict(state, strict=True)
    return D


def networks_from_pickle(data: bytes, name: str, device: Union[str, torch.device] = "cpu") -> Networks:
    """The (G, D, Gs) of an official pickle as Networks (Gs becomes G_ema, the one to sample from); errors name
    the file."""
    try:
        stubs = read_official_pickle(io.BytesIO(data))
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{name}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{name}: corrupt or truncated pickle ({type(exc).__name__}: {str(exc)[:200]}); expected "
                         f"an NVlabs StyleGAN pickle holding (G, D, Gs)") from None
    nets = {}
    for key, stub, convert in zip(("G", "D", "G_ema"), stubs, (generator_from_tf, discriminator_from_tf,
                                                            generator_from_tf)):
        try:
            nets[key] = convert(stub).to(device).eval()
        except ValueError as exc:
            raise ValueError(f"{name}: network {key}: {exc}") from None
    return Networks.from_modules(nets["G"], nets["D"], nets["G_ema"], "nvlabs-tf")


__all__ = ["read_official_pickle", "networks_from_pickle", "generator_from_tf", "discriminator_from_tf",
           "generator_config_from_tf", "discriminator_config_from_tf", "generator_name_map", "discriminator_name_map",
           "G_RUNTIME_KWARGS", "D_RUNTIME_KWARGS"]
