"""Attribute names: cgroup v1 <-> v2 mapping and value conversions.

Users name attributes the way their configuration was written (LXC configs
are full of ``cpu.shares`` and ``memory.limit_in_bytes``), whatever the host
runs. A :class:`Mapping` says which file to use on the other version and how
values cross over, so ``get`` can hand a value back in the caller's naming.
Attributes that only look alike (memsw vs swap, cfs_* vs cpu.max) are refused
rather than silently given a different meaning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lxcflow.errors import UsageError

#: what a user may pass as an attribute name: ``controller.file``.
KEY_RE = re.compile(r"[a-z0-9_]+\.[a-z0-9_.]+")

SHARES_MIN, SHARES_MAX, SHARES_DEFAULT = 2, 262144, 1024
WEIGHT_MIN, WEIGHT_MAX = 1, 10000
BLKIO_MIN, BLKIO_MAX = 10, 1000

# v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes, which depends on
# the page size; this is the smallest such value for pages up to 64 KiB.
_V1_UNLIMITED_FLOOR = (2**63 - 1) // 65536 * 65536


def check_key(key: str) -> None:
    """Refuse attribute names that are malformed or could leave the cgroup dir."""
    if "/" in key or ".." in key or not KEY_RE.fullmatch(key):
        raise UsageError(f"malformed cgroup attribute name {key!r}", key=key)


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` to v2 ``cpu.weight`` (the formula crun and systemd use)."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """v2 ``cpu.weight`` to v1 ``cpu.shares``.

    Rounds up, so that weight -> shares -> weight is exact: a value read and
    written back does not drift down by one each time.
    """
    return 2 + math.ceil((weight - 1) * 262142 / 9999)


def blkio_to_io_weight(weight: int) -> int:
    """v1 ``blkio.weight`` (10..1000) to v2 ``io.weight`` (1..10000), as runc does."""
    return 1 + ((weight - 10) * 9999) // 990


def io_to_blkio_weight(weight: int) -> int:
    """v2 ``io.weight`` to v1 ``blkio.weight``; rounds up so blkio round trips exactly."""
    return 10 + math.ceil((weight - 1) * 990 / 9999)


def _same(value: str) -> str:
    return value


@dataclass(frozen=True)
class Mapping:
    """Where a caller's attribute lives on one cgroup version.

    ``key`` is the file name there; ``to_file`` turns the caller's value into
    the file's, ``from_file`` turns the file's content back.
    """

    key: str
    to_file: Callable[[str], str] = field(default=_same)
    from_file: Callable[[str], str] = field(default=_same)


def _int_in(key: str, value: str, low: int, high: int) -> int:
    try:
        number: int | None = int(value.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise UsageError(f"{key} must be an integer in {low}..{high}, not {value!r}", key=key)
    return number


def _unlimited_to_v2(value: str) -> str:
    return "max" if value.strip() == "-1" else value


def _unlimited_from_v2(value: str) -> str:
    return "-1" if value.strip() == "max" else value


def _unlimited_to_v1(value: str) -> str:
    return "-1" if value.strip() == "max" else value


def _unlimited_from_v1(value: str) -> str:
    text = value.strip()
    if text == "-1" or (text.isdigit() and int(text) >= _V1_UNLIMITED_FLOOR):
        return "max"
    return text


def _io_default(content: str) -> str:
    """The default weight out of an ``io.weight`` file (per-device lines follow it)."""
    for line in content.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "default":
            return parts[1]
    return content.strip()


_V1_TO_V2: dict[str, Mapping] = {
    "cpu.shares": Mapping(
        "cpu.weight",
        lambda v: str(shares_to_weight(_int_in("cpu.shares", v, SHARES_MIN, SHARES_MAX))),
        lambda v: str(weight_to_shares(int(v))),
    ),
    "memory.limit_in_bytes": Mapping("memory.max", _unlimited_to_v2, _unlimited_from_v2),
    "memory.soft_limit_in_bytes": Mapping("memory.low", _unlimited_to_v2, _unlimited_from_v2),
    "blkio.weight": Mapping(
        "io.weight",
        lambda v: f"default {blkio_to_io_weight(_int_in('blkio.weight', v, BLKIO_MIN, BLKIO_MAX))}",
        lambda v: str(io_to_blkio_weight(int(_io_default(v)))),
    ),
}

_V2_TO_V1: dict[str, Mapping] = {
    "cpu.weight": Mapping(
        "cpu.shares",
        lambda v: str(weight_to_shares(_int_in("cpu.weight", v, WEIGHT_MIN, WEIGHT_MAX))),
        lambda v: str(shares_to_weight(int(v))),
    ),
    "memory.max": Mapping("memory.limit_in_bytes", _unlimited_to_v1, _unlimited_from_v1),
    "memory.low": Mapping("memory.soft_limit_in_bytes", _unlimited_to_v1, _unlimited_from_v1),
    "io.weight": Mapping(
        "blkio.weight",
        lambda v: str(io_to_blkio_weight(_int_in("io.weight", _io_default(v), 1, WEIGHT_MAX))),
        lambda v: f"default {blkio_to_io_weight(int(v))}",
    ),
}

#: names with a look-alike on the other version that means something else.
_CPU_MAX = 'cgroup v2 keeps quota and period in one file: set cpu.max ("QUOTA PERIOD")'
_NO_V2: dict[str, str] = {
    "memory.memsw.limit_in_bytes": "it limits memory+swap; cgroup v2 memory.swap.max limits "
    "swap alone, set that instead",
    "cpu.cfs_quota_us": _CPU_MAX,
    "cpu.cfs_period_us": _CPU_MAX,
}
_NO_V1: dict[str, str] = {
    "memory.swap.max": "it limits swap alone; cgroup v1 memory.memsw.limit_in_bytes limits "
    "memory+swap, set that instead",
    "cpu.max": "cgroup v1 splits it in two: set cpu.cfs_quota_us and cpu.cfs_period_us",
}


def to_v2(key: str) -> Mapping:
    """Where ``key`` (v1 or v2 naming) lives on cgroup v2."""
    check_key(key)
    if key in _NO_V2:
        raise UsageError(f"cgroup attribute {key} has no cgroup v2 equivalent: {_NO_V2[key]}",
                         key=key)
    return _V1_TO_V2.get(key, Mapping(key))


def to_v1(key: str) -> Mapping:
    """Where ``key`` (v1 or v2 naming) lives on cgroup v1."""
    check_key(key)
    if key in _NO_V1:
        raise UsageError(f"cgroup attribute {key} has no cgroup v1 equivalent: {_NO_V1[key]}",
                         key=key)
    return _V2_TO_V1.get(key, Mapping(key))
