"""Loading a network file from the command line: library errors become click errors naming the option."""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import click


@contextlib.contextmanager
def nonfinite_warnings_as_lines(echo: bool = True) -> Iterator[None]:
    """stylegan.load's warning for NaN/Inf weights becomes one 'warning:' line on stderr (dropped with echo=False,
    for a command that reports it itself); other warnings pass through unchanged."""
    from ..loading import NonFiniteWeightsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonFiniteWeightsWarning)
        yield
    for warning in caught:
        if not issubclass(warning.category, NonFiniteWeightsWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        elif echo:
            click.echo(f"warning: {warning.message}", err=True)


def load_network_file(path: str, param_hint: str = "--network", device: str = "cpu", warn_nonfinite: bool = True):
    """stylegan.load(path) with FileNotFound/ValueError/UnsafePickleError turned into click.BadParameter, and the
    NaN/Inf warning as a line on stderr (see nonfinite_warnings_as_lines)."""
    from ..formats.safe_pickle import UnsafePickleError
    from ..loading import load

    try:
        with nonfinite_warnings_as_lines(echo=warn_nonfinite):
            return load(path, device=device)
    except (FileNotFoundError, ValueError, TypeError, UnsafePickleError) as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    except IsADirectoryError:
        raise click.BadParameter(f"{path} is a directory; expected a network file", param_hint=param_hint) from None
