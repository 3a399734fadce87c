"""``lxc.idmap``: the user namespace's uid and gid ranges.

``u|g INSIDE OUTSIDE COUNT``, one range a line, as in LXC (``lxc.id_map`` is
the old spelling). The kernel takes at most 340 ranges of each kind, none
overlapping another inside or outside; lxcflow also wants container root
(uid and gid 0) mapped, since its init runs as root.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_RANGES = 340  # <linux/user_namespace.h>: UID_GID_MAP_MAX_EXTENTS
_DIGITS = re.compile(r"[0-9]+")
_ID_LIMIT = 1 << 32  # ids are 32-bit; 4294967295 itself is "no id"


@dataclass(frozen=True, slots=True)
class IdMap:
    """One range: ids ``inside .. inside+count-1`` in the container are
    ``outside ..`` on the host."""

    kind: str  # "u" or "g"
    inside: int
    outside: int
    count: int
    line: int = 0  # where the config says it (for errors found later)

    def __str__(self) -> str:
        """As lxc.idmap spells it."""
        return f"{self.kind} {self.inside} {self.outside} {self.count}"

    def line_text(self) -> str:
        """As /proc/PID/uid_map takes it."""
        return f"{self.inside} {self.outside} {self.count}\n"

    def to_host(self, inside: int) -> int | None:
        """The host id of container id ``inside``, if this range maps it."""
        if self.inside <= inside < self.inside + self.count:
            return self.outside + inside - self.inside
        return None


def parse_idmap(value: str, line: int = 0) -> IdMap:
    """One ``lxc.idmap`` value.

    Raises:
        ValueError: what is wrong with it.
    """
    fields = value.split()
    if len(fields) != 4 or fields[0] not in ("u", "g"):
        raise ValueError(f"{value!r} is not 'u|g INSIDE OUTSIDE COUNT'")
    numbers = []
    for word in fields[1:]:
        if not _DIGITS.fullmatch(word):
            raise ValueError(f"{word!r} is not an id or a count")
        numbers.append(int(word))
    inside, outside, count = numbers
    if count == 0:
        raise ValueError("a range of 0 ids maps nothing")
    for start, where in ((inside, "inside"), (outside, "outside")):
        if start + count > _ID_LIMIT - 1:
            raise ValueError(f"the range {where} ({start}+{count}) passes the last id "
                             f"{_ID_LIMIT - 2}")
    return IdMap(fields[0], inside, outside, count, line)


def overlap(new: IdMap, earlier: Sequence[IdMap]) -> str | None:
    """Why ``new`` cannot join ``earlier``, if it cannot."""
    same = [m for m in earlier if m.kind == new.kind]
    if len(same) >= MAX_RANGES:
        return f"more than {MAX_RANGES} {new.kind} ranges (the kernel's limit)"
    for m in same:
        for a, b, where in ((new.inside, m.inside, "inside"),
                            (new.outside, m.outside, "on the host")):
            if a < b + m.count and b < a + new.count:
                return (f"{new.kind} range {new.inside} {new.outside} {new.count} overlaps "
                        f"the one of line {m.line} {where}")
    return None


def missing_root(maps: Sequence[IdMap]) -> str | None:
    """Why ``maps`` (a whole config's) cannot run a container, if they cannot."""
    for kind, what in (("u", "uid"), ("g", "gid")):
        if not any(m.kind == kind and m.to_host(0) is not None for m in maps):
            return f"lxc.idmap maps no {kind} range onto container {what} 0 (root)"
    return None


def host_root(maps: Sequence[IdMap]) -> tuple[int, int]:
    """The host uid and gid of container root (``maps`` has passed :func:`missing_root`)."""
    uid = next(h for m in maps if m.kind == "u" and (h := m.to_host(0)) is not None)
    gid = next(h for m in maps if m.kind == "g" and (h := m.to_host(0)) is not None)
    return uid, gid
