"""Mass operations: one request naming many containers, by name or shell glob.

A pattern holding ``*``, ``?`` or ``[`` is a glob over the known names (as
fnmatch has it, case-sensitive); any other is a name. What they match is done
at most :data:`LIMIT` at a time, in the order named, and one failure stops
nothing: each comes back as one line naming what failed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable, Sequence

import trio

from lxcflow.errors import LxcflowError
from lxcflow.validate import container_name, is_glob

#: containers operated on at once: enough to overlap one container's waits
#: (cgroup writes, the shim's report) with another's work, few enough that
#: each start still gets its share of two cores
LIMIT = 16


def resolve(patterns: Sequence[str], known: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The names ``patterns`` stand for, each once, in the order named; and
    what is wrong with the patterns that stand for none (a glob matching no
    container, an invalid name), by pattern."""
    known = sorted(known)
    names: dict[str, None] = {}
    wrong: dict[str, str] = {}
    for pattern in patterns:
        if is_glob(pattern):
            matched = fnmatch.filter(known, pattern)
            if not matched:
                wrong[pattern] = "no container matches"
            names.update(dict.fromkeys(matched))
            continue
        try:
            names[container_name(pattern)] = None
        except LxcflowError as e:
            wrong[pattern] = str(e)
    return list(names), wrong


async def each(names: Sequence[str], act: Callable[[str], Awaitable[object]],
               limit: int = LIMIT) -> dict[str, str]:
    """Run ``act(name)`` for every name, at most ``limit`` at a time; the
    error of each that failed, by name, in the order named."""
    failed: dict[str, str] = {}
    limiter = trio.CapacityLimiter(limit)

    async def one(name: str) -> None:
        async with limiter:
            try:
                await act(name)
            except LxcflowError as e:
                failed[name] = str(e)

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
    return {name: failed[name] for name in names if name in failed}
