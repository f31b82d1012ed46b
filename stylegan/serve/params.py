"""Every query parameter of the API: parsed and validated here, once, with the CLI's own parsers and checks where
they exist (seed lists, layer groups, psi, classes, lod), so a rule lives in one place.

A bad value raises ParamError(parameter, message); the app answers it as 400 {"error": message, "parameter": name}.
Defaults are read from the CLI commands' own options, so the page and the CLI cannot disagree on them.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, List, Mapping, Optional, Sequence, Set, Tuple

import click

from ..cli.generate import _check_class, _check_psi
from ..cli.options import parse_seeds
from ..generate import layer_range
from ..synthesis import NOISE_MODES

PSI_LIMIT = 4.0          # |psi| beyond this only extrapolates into noise; the sliders stay far inside
MAX_GRID_SEEDS = 16      # rows or columns of a style-mixing grid
MAX_INTERP_SEEDS = 16
MAX_FRAMES = 240         # frames of one interpolation answer
MAX_STRENGTH = 100.0     # |strength| of an edit, in units of the latents' spread along the direction
MAX_PROJECT_STEPS = 5000
SLOT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ParamError(ValueError):
    """A query parameter (or form field) is missing or invalid; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter, self.message = parameter, message


def cli_default(command: click.Command, name: str) -> Any:
    """The default of a CLI command's option (by its Python name), so the API's defaults are the CLI's."""
    for param in command.params:
        if param.name == name:
            return param.default
    raise KeyError(f"{command.name} has no option {name!r}")


class Query:
    """The query parameters (or form fields) of one request; `allowed` names the ones the route takes, any other
    is a 400, so a misspelt parameter never silently falls back to a default."""

    def __init__(self, values: Mapping[str, str], allowed: Sequence[str]) -> None:
        allowed_set: Set[str] = set(allowed)
        for name in values:
            if name not in allowed_set:
                raise ParamError(name, f"unknown parameter {name!r}: this route takes {', '.join(allowed)}")
        self.values = values

    def text(self, name: str) -> Optional[str]:
        """The stripped value, None when absent or empty."""
        value = self.values.get(name)
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    def required(self, name: str, what: str) -> str:
        value = self.text(name)
        if value is None:
            raise ParamError(name, f"{name} is missing: expected {what}")
        return value

    # -- numbers ------------------------------------------------------------------------------------------------

    def integer(self, name: str, default: Optional[int], lo: int, hi: Optional[int]) -> Optional[int]:
        value = self.text(name)
        if value is None:
            return default
        span = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        if not re.fullmatch(r"[+-]?\d{1,20}", value):
            raise ParamError(name, f"{name}={value!r} is invalid: expected {span}")
        number = int(value)
        if number < lo or (hi is not None and number > hi):
            raise ParamError(name, f"{name}={value!r} is out of range: expected {span}")
        return number

    def number(self, name: str, default: Optional[float], limit: float) -> Optional[float]:
        """A finite float with |x| <= limit (the string is parsed as the CLI's float options parse it)."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ParamError(name, f"{name}={value!r} is not a number") from None
        if not math.isfinite(number) or abs(number) > limit:
            raise ParamError(name, f"{name}={value!r} is out of range: expected a finite number in "
                                   f"[{-limit:g}, {limit:g}]")
        return number

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value not in choices:
            raise ParamError(name, f"{name}={value!r} is invalid: expected one of {', '.join(choices)}")
        return value

    # -- the CLI's concepts -------------------------------------------------------------------------------------

    def seeds(self, name: str, min_count: int, max_count: int, default: Optional[str] = None) -> List[int]:
        """A seed list '1,2,5-7' (the CLI's parse_seeds), with min_count..max_count seeds."""
        text = self.text(name) or default
        if text is None:
            raise ParamError(name, f"{name} is missing: expected a seed" + ("" if max_count == 1 else
                                                                           " list such as 1,2,5-7"))
        try:
            seeds = parse_seeds(text)
        except ValueError as exc:
            raise ParamError(name, f"{name}: {exc}") from None
        if not min_count <= len(seeds) <= max_count:
            expected = f"exactly {min_count}" if min_count == max_count else f"{min_count} to {max_count}"
            raise ParamError(name, f"{name}={text!r} holds {len(seeds)} seed(s): expected {expected}")
        return seeds

    def seed(self, name: str = "seed") -> int:
        return self.seeds(name, 1, 1)[0]

    def psi(self, default: float) -> float:
        psi = self.number("psi", default, PSI_LIMIT)
        _via_cli(lambda: _check_psi(psi), "psi")
        return psi

    def cutoff(self, num_layers: int) -> Optional[int]:
        """None: the CLI's default (--trunc-cutoff left out)."""
        return self.integer("cutoff", None, 0, num_layers)

    def noise(self, default: str) -> str:
        return self.choice("noise", NOISE_MODES, default)

    def class_idx(self, G) -> Optional[int]:
        class_idx = self.integer("class", None, 0, None)
        _via_cli(lambda: _check_class(G, class_idx), "class")
        return class_idx

    def lod(self, G) -> Optional[float]:
        """None: the network's default lod (a training checkpoint's, else 0), as the CLI without --lod."""
        text = self.text("lod")
        if text is None:
            return None
        try:
            return G.config.check_lod(text)
        except ValueError as exc:
            raise ParamError("lod", str(exc)) from None

    def layers(self, name: str, num_layers: int, default: Optional[str]) -> Tuple[Optional[str], List[int]]:
        """(the text as given or the default, the layer indices of a group name or A-B range: generate.layer_range)."""
        text = self.text(name) or default
        if text is None:
            return None, []
        try:
            return text, list(layer_range(text, num_layers))
        except ValueError as exc:
            raise ParamError(name, str(exc)) from None

    def slot(self) -> Optional[str]:
        value = self.text("slot")
        if value is not None and not SLOT_PATTERN.fullmatch(value):
            raise ParamError("slot", f"slot={value[:80]!r} is invalid: expected 1-64 letters, digits, '-' or '_'")
        return value


def _via_cli(check: Callable[[], None], parameter: str) -> None:
    """Runs one of the CLI's checks; its click.BadParameter becomes a ParamError naming the API's parameter."""
    try:
        check()
    except click.BadParameter as exc:
        raise ParamError(parameter, f"{parameter}: {exc.message.replace('--class', 'class')}") from None


__all__ = ["ParamError", "Query", "cli_default", "PSI_LIMIT", "MAX_GRID_SEEDS", "MAX_INTERP_SEEDS", "MAX_FRAMES",
           "MAX_STRENGTH", "MAX_PROJECT_STEPS"]
