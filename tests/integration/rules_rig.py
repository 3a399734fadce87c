"""A supervisor and rule engine in the test's process, on a rules directory
of the test's: the rig of the rules and health tests (the fixture, ``rig``,
is in conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from lxcflow.daemon import handlers
from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.events import Subscription
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.states import Event


@dataclass
class Rig:
    """A supervisor with a rule engine on a rules directory of the test's."""

    sup: Supervisor
    engine: RuleEngine
    rules: Path

    async def user_stop(self, name: str, *, grace: float = 60.0, kill: bool = False) -> None:
        """A user's stop, as the daemon composes it (restart policies hear it first)."""
        await handlers.user_stop(handlers.Services(self.sup, self.engine), name, grace=grace,
                                 kill=kill)

    def write(self, text: str, name: str = "test.toml") -> Path:
        path = self.rules / name
        path.write_text(text)
        return path


async def until(rig: Rig, predicate: Callable[[], bool]) -> None:
    """Wait for the engine's rules or books to satisfy ``predicate``."""
    with trio.fail_after(10):
        while not predicate():
            await rig.engine.wait_changed()


async def collect(
    sub: Subscription, done: Callable[[list[Event]], bool], limit: float = 15
) -> list[Event]:
    events: list[Event] = []
    with trio.fail_after(limit):
        while not done(events):
            events.append(await sub.receive())
    return events


async def loaded(rig: Rig, text: str, *names: str) -> None:
    rig.write(text)
    await until(rig, lambda: all(rig.engine.rule(n) is not None for n in names))
