"""Network configurations: frozen dataclasses whose field names and defaults are the official static_kwargs.

Why: an official pickle's `static_kwargs` map 1:1 onto these fields (docs/FORMATS.md §1.3), a config round-trips
through JSON next to a checkpoint, and every illegal value is rejected when the config is made, not deep inside a
forward. Variant fields (e.g. for rosinality's architecture) can be appended later with defaults that keep the
official math.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Type, TypeVar, Union

NONLINEARITIES = ("lrelu", "relu")
FusedScale = Union[bool, str]
T = TypeVar("T", bound="JsonConfig")


def _fail(name: str, value: Any, expected: str) -> None:
    raise ValueError(f"{name}={value!r} is invalid: expected {expected}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"an int >= {minimum}")


def _check_float(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf,
                 allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        _fail(name, value, f"a number in [{lo}, {hi}]" + (" or None" if allow_none else ""))


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(name, value, "True or False")


def _check_resolution(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 4 or value & (value - 1):
        _fail("resolution", value, "a power of two >= 4")


def _check_fused(value: Any) -> None:
    if value not in (True, False, "auto") or (not isinstance(value, bool) and value != "auto"):
        _fail("fused_scale", value, "True, False or 'auto'")


def _normalize_blur(obj: Any) -> None:
    """blur_filter: None/empty (no blur) or an odd-length 1-D sequence of numbers, stored as a tuple."""
    value = obj.blur_filter
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        object.__setattr__(obj, "blur_filter", None)
        return
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        _fail("blur_filter", value, "None or a sequence of numbers such as [1, 2, 1]")
    if len(value) % 2 == 0 or sum(value) == 0:
        # Even taps would need TF's asymmetric 'SAME' padding; the official networks only use [1, 2, 1].
        _fail("blur_filter", value, "an odd number of taps with a non-zero sum")
    object.__setattr__(obj, "blur_filter", tuple(value))


class JsonConfig:
    """The dict/JSON round trip of every config (G, D and TrainConfig); subclasses are frozen dataclasses."""

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (JSON-ready: tuples become lists; containers are copies) of every field."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else copy.deepcopy(v)
        return out

    @classmethod
    def from_dict(cls: Type[T], data: Dict[str, Any]) -> T:
        """Config from a dict; an unknown key raises ValueError naming it (no silent typos)."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known fields: {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of to_dict() (saved next to checkpoints)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls: Type[T], text: str) -> T:
        """Inverse of to_json()."""
        return cls.from_dict(json.loads(text))

    def replace(self: T, **changes: Any) -> T:
        """Copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


class _ConfigBase(JsonConfig):
    """What G's and D's configs share besides JSON: the resolution geometry."""

    # Geometry shared by G and D (docs/FORMATS.md §1.3).
    @property
    def log2_resolution(self) -> int:
        """R = log2(resolution)."""
        return int(self.resolution).bit_length() - 1

    @property
    def max_lod(self) -> int:
        """Largest lod: R - 2 (4x4 output)."""
        return self.log2_resolution - 2

    def nf(self, stage: int) -> int:
        """Feature maps at a stage: min(int(fmap_base / 2^(stage*fmap_decay)), fmap_max) (official nf())."""
        return min(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_max)

    def resolution_at(self, lod: float) -> int:
        """Image resolution the networks produce/consume at `lod`: resolution / 2^floor(lod)."""
        self.check_lod(lod)
        return self.resolution >> int(math.floor(lod))

    def check_lod(self, lod: float) -> float:
        """lod as a float; ValueError unless 0 <= lod <= R - 2."""
        try:
            value = float(lod)
        except (TypeError, ValueError):
            raise ValueError(f"lod={lod!r} is invalid: expected a number in [0, {self.max_lod}]") from None
        if not 0.0 <= value <= self.max_lod:
            raise ValueError(f"lod={lod!r} is out of range: expected 0 <= lod <= {self.max_lod} "
                             f"(resolution {self.resolution})")
        return value


@dataclass(frozen=True)
class GeneratorConfig(_ConfigBase):
    """G_style + G_mapping + G_synthesis static_kwargs with the official defaults (docs/FORMATS.md §1.3).

    truncation_psi/truncation_cutoff are the official *inference* defaults (G_style: 0.7, 8); `Generator.forward`
    itself defaults to no truncation, pass these explicitly to reproduce `Gs.run(z, None)`.
    """

    resolution: int = 1024
    num_channels: int = 3
    latent_size: int = 512
    dlatent_size: int = 512
    label_size: int = 0
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01
    mapping_nonlinearity: str = "lrelu"
    normalize_latents: bool = True
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    use_styles: bool = True
    const_input_layer: bool = True
    use_noise: bool = True
    nonlinearity: str = "lrelu"
    use_wscale: bool = True
    use_pixel_norm: bool = False
    use_instance_norm: bool = True
    blur_filter: Optional[Tuple[float, ...]] = (1, 2, 1)
    fused_scale: FusedScale = "auto"
    dlatent_avg_beta: Optional[float] = 0.995
    truncation_psi: Optional[float] = 0.7
    truncation_cutoff: Optional[int] = 8
    style_mixing_prob: Optional[float] = 0.9
    # Variants, not official static_kwargs: the defaults are the official math; rosinality's port
    # (docs/FORMATS.md §2.5) sets them, because they change what the network computes and cannot be folded into
    # its weights.
    instance_norm_eps: float = 1e-8  # rosinality: 1e-5 (torch InstanceNorm2d)
    bias_before_blur: bool = False  # up-conv layers add their bias before the blur (rosinality), not after
    noise_per_block: bool = False  # one noise map per resolution shared by its two layers (rosinality)

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        for name in ("num_channels", "latent_size", "dlatent_size", "mapping_layers", "mapping_fmaps",
                     "fmap_base", "fmap_max"):
            _check_int(name, getattr(self, name), 1)
        _check_int("label_size", self.label_size, 0)
        _check_float("mapping_lrmul", self.mapping_lrmul, 1e-12)
        _check_float("fmap_decay", self.fmap_decay, 0.0)
        for name in ("mapping_nonlinearity", "nonlinearity"):
            if getattr(self, name) not in NONLINEARITIES:
                _fail(name, getattr(self, name), f"one of {NONLINEARITIES}")
        for name in ("normalize_latents", "use_styles", "const_input_layer", "use_noise", "use_wscale",
                     "use_pixel_norm", "use_instance_norm"):
            _check_bool(name, getattr(self, name))
        _normalize_blur(self)
        _check_fused(self.fused_scale)
        _check_float("dlatent_avg_beta", self.dlatent_avg_beta, 0.0, 1.0, allow_none=True)
        _check_float("truncation_psi", self.truncation_psi, allow_none=True)
        if self.truncation_cutoff is not None and (isinstance(self.truncation_cutoff, bool)
                                                   or not isinstance(self.truncation_cutoff, int)):
            _fail("truncation_cutoff", self.truncation_cutoff, "an int or None")
        _check_float("style_mixing_prob", self.style_mixing_prob, 0.0, 1.0, allow_none=True)
        _check_float("instance_norm_eps", self.instance_norm_eps, 1e-30, 1.0)
        _check_bool("bias_before_blur", self.bias_before_blur)
        _check_bool("noise_per_block", self.noise_per_block)

    @property
    def num_layers(self) -> int:
        """Synthesis layers (= ws entries): 2*log2(resolution) - 2."""
        return 2 * self.log2_resolution - 2

    def fused_up(self, out_res: int) -> bool:
        """Whether the up-conv producing `out_res` is the fused transposed conv (official 'auto': out_res >= 128)."""
        return self.fused_scale is True or (self.fused_scale == "auto" and out_res >= 128)


@dataclass(frozen=True)
class DiscriminatorConfig(_ConfigBase):
    """D_basic static_kwargs with the official defaults (docs/FORMATS.md §1.3), except two:

    num_channels defaults to 3 and resolution to 1024 (official D_basic: 1 and 32). The official training loop
    always overrides both from the dataset, so the official defaults never matter in practice; ours match
    GeneratorConfig. `nvlabs_tf.discriminator_from_tf` fills in the official defaults when a pickle omits them.
    """

    resolution: int = 1024
    num_channels: int = 3
    label_size: int = 0
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    nonlinearity: str = "lrelu"
    use_wscale: bool = True
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    blur_filter: Optional[Tuple[float, ...]] = (1, 2, 1)
    fused_scale: FusedScale = "auto"
    # Variants, not official static_kwargs (defaults = official; rosinality's port sets them, docs/FORMATS.md §2.5).
    mbstd_whole_batch: bool = False  # minibatch stddev over the whole batch as one group (rosinality)
    channels_change_in_conv0: bool = False  # each block's first conv changes the channel count (rosinality)
    from_rgb_activate: bool = True  # FromRGB followed by the nonlinearity (official; rosinality's option)

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        for name in ("num_channels", "fmap_base", "fmap_max", "mbstd_num_features"):
            _check_int(name, getattr(self, name), 1)
        for name in ("label_size", "mbstd_group_size"):
            _check_int(name, getattr(self, name), 0)
        _check_float("fmap_decay", self.fmap_decay, 0.0)
        if self.nonlinearity not in NONLINEARITIES:
            _fail("nonlinearity", self.nonlinearity, f"one of {NONLINEARITIES}")
        _check_bool("use_wscale", self.use_wscale)
        for name in ("mbstd_whole_batch", "channels_change_in_conv0", "from_rgb_activate"):
            _check_bool(name, getattr(self, name))
        _normalize_blur(self)
        _check_fused(self.fused_scale)
        if self.mbstd_group_size > 1 and self.nf(1) % self.mbstd_num_features:
            _fail("mbstd_num_features", self.mbstd_num_features, f"a divisor of nf(1) = {self.nf(1)}")

    def fused_down(self, in_res: int) -> bool:
        """Whether the down-conv of the block with input `in_res` is fused (official 'auto': in_res >= 128)."""
        return self.fused_scale is True or (self.fused_scale == "auto" and in_res >= 128)


__all__ = ["GeneratorConfig", "DiscriminatorConfig", "NONLINEARITIES"]
