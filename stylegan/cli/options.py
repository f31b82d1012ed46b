"""Shared click parameter types and options for the sampling commands (and any later command that wants them).

Why here: seed lists, devices, networks given as paths or URLs and output folders are validated the same way in
every command, and every user mistake becomes a click error naming the option, never a traceback.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import click
import torch

from ..devices import default_device, resolve_device
from ..generate import MAX_SEED
from ..precision import PRECISIONS, Precision, resolve_precision
from ..synthesis import NOISE_MODES

MAX_SEEDS = 1_000_000  # a typo like 0-99999999 should fail fast, not allocate forever


def parse_seeds(text: str, noun: str = "seed", nouns: str = "seeds") -> List[int]:
    """Seeds of '0-7,42' style text, in order: comma-separated ints and inclusive ascending ranges A-B.

    ValueError for empty items ('', '1,,2'), non-integers ('a'), descending ranges ('3-1'), seeds outside
    [0, 2**32 - 1] and lists longer than MAX_SEEDS. `noun`/`nouns` name the items in messages (class lists use
    them too).
    """
    if text is None or not str(text).strip():
        raise ValueError(f"empty {noun} list: expected e.g. '0-7,42'")
    seeds: List[int] = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"{text!r} has an empty item: expected comma-separated {nouns} or ranges like "
                             f"'0-7,42'")
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
        if match is None:
            raise ValueError(f"{item!r} is not a {noun} or a range: expected an int >= 0 or 'A-B' with A <= B")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"range {item!r} is empty: expected A-B with A <= B")
        if last > MAX_SEED:
            raise ValueError(f"{noun} {last} in {item!r} is out of range: expected {nouns} in [0, {MAX_SEED}]")
        if len(seeds) + (last - first + 1) > MAX_SEEDS:
            raise ValueError(f"{text!r} holds more than {MAX_SEEDS} {nouns}")
        seeds.extend(range(first, last + 1))
    return seeds


class SeedList(click.ParamType):
    """click type: '0-7,42' -> [0, 1, ..., 7, 42] (see parse_seeds); `noun`/`nouns` name the items in errors."""

    def __init__(self, noun: str = "seed", nouns: str = "seeds") -> None:
        self.noun, self.nouns, self.name = noun, nouns, nouns

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> List[int]:
        if isinstance(value, list):
            return value
        try:
            return parse_seeds(value, self.noun, self.nouns)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class GridShape(click.ParamType):
    """click type: 'COLSxROWS' such as '4x2' -> (4, 2)."""

    name = "COLSxROWS"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(value))
        if match is None or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            self.fail(f"{value!r} is not a grid: expected COLSxROWS with both >= 1, e.g. 4x2", param, ctx)
        return int(match.group(1)), int(match.group(2))


class DeviceType(click.ParamType):
    """click type: 'cpu', 'cuda' or 'cuda:N' -> torch.device, refused when that device is not available."""

    name = "device"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> torch.device:
        if isinstance(value, torch.device):
            return value
        if str(value).strip().lower() == "auto":
            self.fail(f"{value!r} is not a device: expected cpu, cuda or cuda:N", param, ctx)
        try:
            return resolve_device(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _decorate(*decorators: Callable) -> Callable:
    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn
    return apply


REFRESH_META = "stylegan.refresh"


def _remember_refresh(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[REFRESH_META] = value
    return value


def network_option(fn: Callable, required: bool = True) -> Callable:
    """--network PATH|URL (required unless told) and --refresh; open it with open_network().

    --refresh is not passed to the command: it is kept in the click context, where open_network reads it, so every
    command that takes --network gets it without a parameter of its own.
    """
    return _decorate(
        click.option("--network", "network", required=required, metavar="PATH|URL",
                     help="Network file (ours, NVlabs .pkl or rosinality .model) or an http(s) URL, "
                          "downloaded once into the cache."),
        click.option("--refresh", is_flag=True, expose_value=False, callback=_remember_refresh,
                     help="Download a --network URL again even when it is cached."),
    )(fn)


def device_option(fn: Callable) -> Callable:
    """--device cpu|cuda|cuda:N (default: cuda when available)."""
    return click.option("--device", type=DeviceType(), default=default_device, show_default="cuda if available",
                        help="Where to run the network.")(fn)


def truncation_options(fn: Callable) -> Callable:
    """--trunc PSI (default 1.0: no truncation) and --trunc-cutoff N (default 8, used when PSI < 1)."""
    return _decorate(
        click.option("--trunc", "psi", type=float, default=1.0, show_default=True,
                     help="Truncation psi; 1.0 disables truncation."),
        click.option("--trunc-cutoff", "cutoff", type=click.IntRange(min=0), default=8, show_default=True,
                     help="Truncate only the first N layers (used when --trunc < 1)."),
    )(fn)


def noise_mode_option(fn: Callable) -> Callable:
    """--noise-mode const|random|none (default const: a seed always gives the same image)."""
    return click.option("--noise-mode", type=click.Choice(NOISE_MODES), default="const", show_default=True,
                        help="Per-pixel noise: the network's stored constant noise, fresh random noise, or none.")(fn)


def class_option(fn: Callable) -> Callable:
    """--class N for label-conditional networks."""
    return click.option("--class", "class_idx", type=click.IntRange(min=0), default=None,
                        help="Class index (required for, and only for, label-conditional networks).")(fn)


def precision_option(fn: Callable) -> Callable:
    """--precision auto|fp32|bf16|fp16 (default fp32, the exact path); resolve with `resolve_precision_option`."""
    return click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
                        help="Arithmetic of the synthesis network: fp32 (exact, official-equal), bf16 (autocast; "
                             "fast on CPUs with amx_bf16/avx512_bf16 and CUDA sm80+), auto (bf16 where native, "
                             "else fp32).")(fn)


def resolve_precision_option(precision: str, device: torch.device, param_hint: str = "--precision") -> Precision:
    """The Precision --precision means on `device` (stylegan.precision); one line on stderr says what runs and why
    unless it is plain fp32; a precision the device cannot run is a click.BadParameter."""
    try:
        resolved = resolve_precision(precision, device, warn=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    if precision != "fp32":
        click.echo(resolved.describe(), err=True)
    return resolved


def batch_option(fn: Callable) -> Callable:
    """--batch N (default: chosen from the network's resolution)."""
    return click.option("--batch", "batch_size", type=click.IntRange(min=1), default=None,
                        help="Images per forward pass [default: automatic, bounded memory].")(fn)


def open_network(network: str, device: torch.device, param_hint: str = "--network",
                 progress: Optional[bool] = None, refresh: Optional[bool] = None) -> Any:
    """stylegan.load() of a path or http(s) URL (downloaded once into the cache); errors -> click.BadParameter.

    A URL's download is loaded before it is cached; a cached copy that no longer loads is dropped and downloaded
    once more. refresh=None takes the command's --refresh flag.
    """
    import pickle

    from ..download import DownloadError, download, is_url
    from ..loading import load
    from .network_file import nonfinite_warnings_as_lines

    if not is_url(network):
        return _load_path(network, device, param_hint)
    if refresh is None:
        ctx = click.get_current_context(silent=True)
        refresh = bool(ctx is not None and ctx.meta.get(REFRESH_META))
    loaded = []  # the networks of a fresh download, loaded once by its check

    def fetch(again: bool) -> Path:
        try:
            with nonfinite_warnings_as_lines():
                return download(network, progress=progress, refresh=again,
                                verify=lambda tmp: loaded.append(load(tmp, device=str(device))))
        except (DownloadError, ValueError, TypeError, pickle.UnpicklingError) as exc:
            raise click.BadParameter(str(exc), param_hint=param_hint) from None

    path = fetch(refresh)
    if loaded:
        return loaded[0]
    try:
        return _load_path(str(path), device, param_hint)
    except click.BadParameter as exc:  # a copy cached by an older version, or damaged since
        click.echo(f"warning: the cached copy of {network} does not load ({exc.message}); downloading it again",
                   err=True)
    path.unlink(missing_ok=True)  # never kept, even if the new download fails
    fetch(True)
    return loaded[0]


def _load_path(path: str, device: torch.device, param_hint: str) -> Any:
    from .network_file import load_network_file

    try:
        return load_network_file(path, param_hint=param_hint, device=str(device))
    except click.BadParameter:
        raise
    except OSError as exc:  # permission denied, I/O errors: still the user's file, not our bug
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=param_hint) from None


def generator_of(networks: Any, param_hint: str = "--network") -> torch.nn.Module:
    """The generator to sample from (G_ema when present, else G), in eval mode; BadParameter if there is none."""
    try:
        return networks.generator.eval()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None


def prepare_outdir(path: Path, param_hint: str = "--outdir") -> Path:
    """Creates `path` if needed and proves it is writable (by writing a probe file), else click.BadParameter.

    Why probe up front: failing after minutes of generation because the folder is read-only wastes the run.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write to {str(path)!r}: {exc.strerror or exc}", param_hint=param_hint) \
            from None
    return path


def prepare_outfile(path: Path, param_hint: str = "--out") -> Path:
    """Makes sure `path`'s folder exists and is writable; click.BadParameter otherwise."""
    path = Path(path)
    if path.is_dir():
        raise click.BadParameter(f"{str(path)!r} is a directory; expected a file name", param_hint=param_hint)
    prepare_outdir(path.parent if str(path.parent) else Path("."), param_hint=param_hint)
    return path



def load_for_network(load: Callable[[Any], Any], check: Callable[..., None], path: Path, G: torch.nn.Module,
                     G_sha256: str, network: str, param_hint: str) -> Any:
    """`load(path)` checked by `check(obj, G, G_sha256, str(path), network)` (a latent or directions file made for
    this network); their ValueError becomes click.BadParameter naming the option."""
    try:
        obj = load(path)
        check(obj, G, G_sha256, str(path), network)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    return obj
