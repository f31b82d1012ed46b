"""Pretrained feature networks the metrics and the projector call: Inception-v3 (FID, KID, IS) and VGG16
(precision/recall, PPL, the LPIPS loss of projection), taken from a file or URL the user gives.

Why a module of its own: their weights cannot ship with the package and many training machines are offline, so
the one place that knows the files (name, where they are published, how they are called) also turns a missing
file into a message that says what to download and how to pass it, instead of a traceback.

The files are NVIDIA's TorchScript exports used by stylegan2-ada-pytorch (`metrics/metric_utils.py`
`get_feature_detector` loads them with `torch.jit.load`), called exactly as that code calls them:
- `inception-2015-12-05.pt`: `net(img_u8, return_features=True)` -> [N, 2048] pool features (FID, KID);
  `net(img_u8, no_output_bias=True)` -> [N, 1008] class probabilities (IS). `img_u8`: uint8 [N, 3, H, W]; the
  network resizes to 299 px itself.
- `vgg16.pt`: `net(img_u8, return_features=True)` -> [N, 4096] (precision/recall);
  `net(img_f32, resize_images=False, return_lpips=True)` -> [N, F] unit-normalised, channel-weighted features whose
  squared difference summed over F is the LPIPS distance; `img_f32` in [0, 255] (PPL, projection).
A TorchScript file is a program: load only files from sources you trust (the official ones are linked below).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from .download import DownloadError, download, is_url
from .file_hash import file_sha256

_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics"


@dataclass(frozen=True)
class FeatureNetSpec:
    """What the package knows about one feature network file."""

    kind: str       # key in FEATURE_NETS, also the CLI flag's name (--inception, --vgg16)
    filename: str   # the official file name
    url: str        # where NVIDIA publishes it (the default of the flag)
    used_by: str    # what needs it, for error messages


FEATURE_NETS: Dict[str, FeatureNetSpec] = {
    "inception": FeatureNetSpec("inception", "inception-2015-12-05.pt", f"{_CDN}/inception-2015-12-05.pt",
                                "FID, KID and IS"),
    "vgg16": FeatureNetSpec("vgg16", "vgg16.pt", f"{_CDN}/vgg16.pt", "precision/recall, PPL and the LPIPS loss"),
}


class FeatureNetError(ValueError):
    """A feature network file is missing, cannot be downloaded, is not TorchScript or answers in the wrong shape."""


def feature_net_spec(kind: str) -> FeatureNetSpec:
    """The FeatureNetSpec of `kind` ('inception' or 'vgg16'); ValueError naming the valid kinds otherwise."""
    if kind not in FEATURE_NETS:
        raise ValueError(f"feature network {kind!r} is unknown: expected one of {', '.join(FEATURE_NETS)}")
    return FEATURE_NETS[kind]


def _how_to_get(spec: FeatureNetSpec) -> str:
    return (f"{spec.used_by}: NVIDIA's {spec.filename} is needed, published at {spec.url}; download it on a "
            f"machine with internet and pass it with --{spec.kind} PATH (or pass another URL)")


def check_torchscript(path: Path) -> None:
    """Raises FeatureNetError unless `path` loads with torch.jit.load (the check a download passes before caching)."""
    try:
        torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError or ValueError kinds for non-TorchScript content
        raise FeatureNetError(f"{path} is not a TorchScript file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None


def resolve_feature_net_file(source: Optional[Union[str, os.PathLike]], kind: str,
                             progress: Optional[bool] = None) -> Path:
    """Local path of the `kind` network: `source` as a path, or downloaded once into the cache when it is a URL
    (None: the official URL). Raises FeatureNetError saying which file is needed and where it is published."""
    spec = feature_net_spec(kind)
    source = spec.url if source is None else source
    if is_url(str(source)):
        try:
            return download(str(source), progress=progress, verify=check_torchscript)
        except (DownloadError, FeatureNetError) as exc:
            raise FeatureNetError(f"cannot get the {kind} network: {exc}. {_how_to_get(spec)}") from None
    path = Path(source).expanduser()
    if not path.is_file():
        raise FeatureNetError(f"--{kind} {source}: no such file. {_how_to_get(spec)}")
    return path


@dataclass(frozen=True)
class FeatureNet:
    """A loaded feature network and where it came from (metric results record the file and its hash)."""

    kind: str
    module: torch.jit.ScriptModule
    path: Path
    sha256: str
    device: torch.device

    def features(self, img_u8: torch.Tensor) -> torch.Tensor:
        """[N, D] float32 features of uint8 [N, 3, H, W] images (`return_features=True`)."""
        return self._call(img_u8, "return_features=True", return_features=True)

    def probabilities(self, img_u8: torch.Tensor) -> torch.Tensor:
        """[N, classes] softmax outputs without the output bias (Inception only; what IS uses)."""
        return self._call(img_u8, "no_output_bias=True", no_output_bias=True)

    def lpips_features(self, img_0_255: torch.Tensor) -> torch.Tensor:
        """[N, F] LPIPS features of float images in [0, 255] (VGG16 only; `resize_images=False, return_lpips=True`);
        the squared difference of two images' features summed over F is their LPIPS distance."""
        return self._call(img_0_255, "return_lpips=True", resize_images=False, return_lpips=True)

    def _call(self, x: torch.Tensor, what: str, **kwargs: bool) -> torch.Tensor:
        try:
            out = self.module(x.to(self.device), **kwargs)
        except Exception as exc:  # a TorchScript program of another signature raises RuntimeError
            raise FeatureNetError(f"{self.path}: calling the {self.kind} network with {what} failed "
                                  f"({str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}); "
                                  f"expected NVIDIA's {FEATURE_NETS[self.kind].filename}") from None
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FeatureNetError(f"{self.path}: the {self.kind} network returned {shape} for {x.shape[0]} images "
                                  f"with {what}; expected [N, D] (is it NVIDIA's {FEATURE_NETS[self.kind].filename}?)")
        return out.to(torch.float32)


_LOADED: Dict[Tuple[str, str, str], FeatureNet] = {}
_LOCK = threading.Lock()


def load_feature_net(source: Optional[Union[str, os.PathLike]], kind: str,
                     device: Union[str, torch.device] = "cpu", progress: Optional[bool] = None) -> FeatureNet:
    """The `kind` feature network from a path or URL (None: the official URL), loaded once per process and device.

    Raises FeatureNetError (a ValueError) when the file is missing, cannot be downloaded or is not TorchScript.
    """
    path = resolve_feature_net_file(source, kind, progress=progress)
    device = torch.device(device)
    sha = file_sha256(path)
    key = (kind, sha, str(device))
    with _LOCK:
        if key not in _LOADED:
            try:
                module = torch.jit.load(str(path), map_location=device)
            except Exception as exc:
                raise FeatureNetError(f"--{kind} {path} is not a TorchScript file ({type(exc).__name__}); "
                                      f"{_how_to_get(FEATURE_NETS[kind])}") from None
            _LOADED[key] = FeatureNet(kind, module.eval(), path, sha, device)
        return _LOADED[key]
