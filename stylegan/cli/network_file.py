"""Loading a network file from the command line: library errors become click errors naming the option."""
from __future__ import annotations

import click


def load_network_file(path: str, param_hint: str = "--network", device: str = "cpu"):
    """stylegan.load(path) with FileNotFound/ValueError/UnsafePickleError turned into click.BadParameter."""
    from ..formats.safe_pickle import UnsafePickleError
    from ..loading import load

    try:
        return load(path, device=device)
    except (FileNotFoundError, ValueError, TypeError, UnsafePickleError) as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    except IsADirectoryError:
        raise click.BadParameter(f"{path} is a directory; expected a network file", param_hint=param_hint) from None
