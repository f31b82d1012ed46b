"""Argument checks shared by the ops: one place that turns 'an int or a pair of ints' into a pair."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

IntOrPair = Union[int, Sequence[int]]


def int_pair(value: IntOrPair, op: str, name: str, minimum: int) -> Tuple[int, int]:
    """(a, b) from an int (used twice) or a pair of integer values >= minimum; errors name `op` and `name`."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
        ok = all(int(v) == v for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if not ok or a < minimum or b < minimum:
        raise ValueError(f"{op}: {name} must be integers >= {minimum}, got {value!r}")
    return a, b
