"""The network file readers (native, nvlabs_tf, rosinality) and `Networks`, the one thing each of them returns.

Why here: `stylegan.loading` picks a reader from a file's content and the readers build `Networks`; defining it
below both keeps the imports one-way (loading -> readers -> this module).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:  # no torch import: `stylegan.UnsafePickleError` (formats.safe_pickle) stays light
    from torch import nn


@dataclass
class Networks:
    """What a file held: G, D and G_ema (absent ones None), their configs ({'G': ..., 'D': ...}), the format."""

    G: Optional[nn.Module]
    D: Optional[nn.Module]
    G_ema: Optional[nn.Module]
    config: Dict[str, Any]
    source_format: str  # 'stylegan', 'nvlabs-tf' or 'rosinality'
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_modules(cls, G: Optional[nn.Module], D: Optional[nn.Module], G_ema: Optional[nn.Module],
                     source_format: str, extra: Optional[Dict[str, Any]] = None) -> "Networks":
        """How every reader builds its result, so config is the same everywhere: {'G': the config of
        `generator`, 'D': D's}, None where the file has no such network."""
        nets = cls(G, D, G_ema, {}, source_format, dict(extra or {}))
        has_generator = G is not None or G_ema is not None
        nets.config = {"G": nets.generator.config if has_generator else None,
                       "D": D.config if D is not None else None}
        return nets

    @property
    def generator(self) -> nn.Module:
        """The generator to sample from: G_ema when present (the official Gs), else G. The library's one place
        for this choice."""
        net = self.G_ema if self.G_ema is not None else self.G
        if net is None:
            raise ValueError(f"this {self.source_format} file holds no generator")
        return net

    @property
    def lod(self) -> float:
        """The lod to render at by default: a training checkpoint's current lod (what it has learnt so far),
        0.0 (full resolution) for every other file."""
        return float((self.extra.get("training") or {}).get("lod") or 0.0)


__all__ = ["Networks"]
