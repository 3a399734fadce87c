"""Parsers of single values in a rule: sizes, CPU shares, counts, states, signals.

Each raises ValueError with a reason that reads well after the key's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lxcflow.errors import UsageError
from lxcflow.states import State, parse_states
from lxcflow.validate import signal_number

_BYTES_RE = re.compile(r"\s*([0-9]+)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)
_PERCENT_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*%\s*")


def cpu_share(value: object) -> float:
    """``"5%"`` or ``5`` (percent of one core) -> cores (0.05)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value) / 100
    if isinstance(value, str) and (m := _PERCENT_RE.fullmatch(value)):
        return float(m[1]) / 100
    raise ValueError(f"bad CPU share {value!r} (percent of one core, e.g. \"5%\")")


def byte_count(value: object) -> int:
    """``"256M"``, ``"1GiB"``, ``"512k"`` (powers of 1024) or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (m := _BYTES_RE.fullmatch(value)):
        return int(m[1]) * 1024 ** ("", "K", "M", "G", "T").index(m[2].upper())
    raise ValueError(f"bad size {value!r} (bytes, or e.g. \"256M\", \"1G\")")


def count(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise ValueError(f"{what} must be a whole number >= {minimum}, not {value!r}")


def number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    raise ValueError(f"{what} must be a number in {low:g}..{high:g}, not {value!r}")


def states(value: object) -> frozenset[State]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "|".join(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a state or states like \"RUNNING|FROZEN\", not {value!r}")
    try:
        return parse_states(value)
    except ValueError as e:
        raise ValueError(f"{e} (states: {'|'.join(s.value for s in State)})") from None


def list_of(value: object, parse: Callable[[Any], Any]) -> frozenset[Any]:
    items = value if isinstance(value, list) else [value]
    return frozenset(parse(v) for v in items)


def signum(value: object) -> int:
    try:
        return signal_number(str(value))
    except UsageError as e:
        raise ValueError(f"unknown signal: {e}") from None
