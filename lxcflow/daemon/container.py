"""A container as the supervisor knows it: state, run, and the one way to change state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
import trio

from lxcflow import states
from lxcflow.config import ContainerConfig
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.run import Run
from lxcflow.errors import InvalidTransition
from lxcflow.rules.health import HealthRecord
from lxcflow.runstate import ExitStatus
from lxcflow.runtime.spec import RunMode
from lxcflow.states import Actor, Cause, Event, State


@dataclass(frozen=True, slots=True)
class LastRun:
    """What a start asked to run (without its stdio, which was the caller's)."""

    mode: RunMode
    command: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(eq=False)
class Container:
    """One container: created (has a config in lxcpath) or ephemeral (``start -f``).

    Operations on it hold :attr:`lock`, so a stop never races a freeze;
    observations (process death, cgroup events) change state without it,
    through :meth:`transition`, which is synchronous and so atomic under trio.
    """

    name: str
    bus: EventBus
    ephemeral: bool = False
    state: State = State.STOPPED
    lock: trio.Lock = field(default_factory=trio.Lock)
    config: ContainerConfig | None = None  # of the current (or last) run
    #: what it holds while it runs: running is ``run is not None``
    run: Run | None = None
    last_exit: ExitStatus | None = None
    #: what the current or last run ran: a restart runs it again
    last_run: LastRun | None = None
    #: a reboot was asked (stop -r): the init's reboot(2) is expected
    rebooting: bool = False
    frozen_since_ns: int | None = None
    #: who froze it (a rule's thaw leaves a user's freeze be)
    frozen_by: Actor | None = None
    #: nanoseconds spent FROZEN in earlier freezes of this daemon's life
    frozen_total_ns: int = 0
    #: starts that were restarts (a policy's, or a rule's restart action)
    restarts: int = 0
    #: how the current run stands with its health rule (None: no rule probes it)
    health: HealthRecord | None = None
    _changed: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        self.log = structlog.get_logger("lxcflow").bind(container=self.name)

    def transition(
        self,
        to: State,
        cause: Cause | Actor,
        *,
        exit: ExitStatus | None = None,
        detail: str | None = None,
        rule: str | None = None,
    ) -> Event:
        """Move to ``to`` if the table allows it, and publish exactly one event.

        ``cause`` is what happened (the kernel was seen to do it, say) or who
        asked for it; an actor that is a rule names the rule in the event.

        Raises:
            InvalidTransition: the table forbids it (a bug: logged loudly).
        """
        if isinstance(cause, Actor):
            actor = cause
            cause, rule = actor.cause, actor.rule
        try:
            states.check(self.state, to)
        except InvalidTransition:
            self.log.error("invalid_transition", state=self.state.value, wanted=to.value)
            raise
        event = Event(
            container=self.name,
            from_state=self.state,
            to_state=to,
            cause=cause,
            exit_code=exit.code if exit else None,
            signal=exit.signal if exit else None,
            detail=detail,
            rule=rule,
        )
        if self.frozen_since_ns is not None and to is not State.FROZEN:
            self.frozen_total_ns += event.time_ns - self.frozen_since_ns
        if to is State.RUNNING or to is State.STOPPED:
            self.frozen_by = None
        if to is State.STOPPING:
            self.health = None  # a run's health ends with it, whoever watches it
        self.state = to
        self.frozen_since_ns = event.time_ns if to is State.FROZEN else None
        self.notify()
        return self.bus.publish(event)

    def frozen_seconds(self) -> float:
        """Seconds spent FROZEN in this daemon's life, the current freeze included."""
        now = time.time_ns()
        current = now - self.frozen_since_ns if self.frozen_since_ns is not None else 0
        return (self.frozen_total_ns + current) / 1e9

    def notice(self, kind: str, detail: str | None, cause: Cause | Actor) -> Event:
        """Publish an event of ``kind`` that changes no state (see :class:`Event`)."""
        rule = None
        if isinstance(cause, Actor):
            actor = cause
            cause, rule = actor.cause, actor.rule
        return self.bus.publish(Event(
            container=self.name, from_state=self.state, to_state=self.state, cause=cause,
            detail=detail, rule=rule, notice=kind,
        ))

    def notify(self) -> None:
        """Wake everything waiting in :meth:`wait_until` to re-check."""
        self._changed.set()
        self._changed = trio.Event()

    async def next_change(self) -> None:
        """Return at the next notify."""
        await self._changed.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is re-checked on every notify."""
        while not predicate():
            await self._changed.wait()
