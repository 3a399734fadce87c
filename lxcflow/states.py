"""The container state machine: LXC's states, one transition table, events.

Pure: no I/O. Every state change in lxcflow goes through :func:`check` and
produces exactly one :class:`Event`.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from lxcflow.errors import InvalidTransition


class State(enum.Enum):
    """LXC's container states, by their LXC names."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    ABORTING = "ABORTING"
    FREEZING = "FREEZING"
    FROZEN = "FROZEN"


S = State

#: state -> the states it may move to. The only place this is decided.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.STOPPED: frozenset({S.STARTING}),
    # A start that fails part-way aborts; one whose init is up is RUNNING.
    S.STARTING: frozenset({S.RUNNING, S.ABORTING}),
    S.ABORTING: frozenset({S.STOPPED}),
    # STOPPING covers both a requested stop and an observed death: teardown
    # of cgroups and run state happens between the two.
    S.RUNNING: frozenset({S.STOPPING, S.FREEZING}),
    # A freeze that misses its deadline is undone (back to RUNNING); a
    # container can die while freezing.
    S.FREEZING: frozenset({S.FROZEN, S.RUNNING, S.STOPPING}),
    S.FROZEN: frozenset({S.RUNNING, S.STOPPING}),
    S.STOPPING: frozenset({S.STOPPED}),
}


def allowed(current: State, wanted: State) -> bool:
    """Whether the table allows ``current -> wanted``."""
    return wanted in TRANSITIONS[current]


def check(current: State, wanted: State) -> None:
    """Raise :class:`InvalidTransition` unless the table allows the move."""
    if not allowed(current, wanted):
        raise InvalidTransition(
            f"transition {current.value} -> {wanted.value} is not allowed",
            current=current.value,
            wanted=wanted.value,
        )


def path(current: State, wanted: State) -> list[State]:
    """The shortest chain of allowed transitions from ``current`` to ``wanted``
    (excluding ``current``); used to report, in legal steps, what happened
    while no daemon was watching."""
    routes: dict[State, list[State]] = {current: []}
    frontier = [current]
    while frontier:
        nxt = []
        for state in frontier:
            for to in sorted(TRANSITIONS[state], key=lambda s: s.value):
                if to not in routes:
                    routes[to] = [*routes[state], to]
                    nxt.append(to)
        frontier = nxt
    return routes[wanted]


def can_start(state: State) -> bool:
    return allowed(state, S.STARTING)


def can_freeze(state: State) -> bool:
    return allowed(state, S.FREEZING)


def can_unfreeze(state: State) -> bool:
    return state is S.FROZEN


def parse_states(text: str) -> frozenset[State]:
    """Parse LXC's ``'RUNNING|FROZEN'`` notation.

    Raises:
        ValueError: on an unknown state name (the message names it).
    """
    out = set()
    for part in text.split("|"):
        name = part.strip().upper()
        try:
            out.add(State(name))
        except ValueError:
            raise ValueError(f"unknown state {part.strip()!r}") from None
    return frozenset(out)


class Cause(enum.Enum):
    """Why a transition happened."""

    COMMAND = "command"  # a user's request through the API
    KERNEL = "kernel"  # observed: process exit, cgroup.events, freezer.state
    RULE = "rule"  # a rule's action; the event names the rule
    RECOVERED = "recovered"  # found by a daemon that was away when it happened
    # The container's own init asked, through reboot(2): to start again, or
    # to stay down (a halt counts as a stop that was asked for).
    REBOOT = "reboot"
    HALT = "halt"


#: how a system container's own reboot(2) ends it: asked for, never a failure,
#: and nothing a restart policy undoes
BY_ITS_INIT = frozenset({Cause.REBOOT, Cause.HALT})


class Actor(str):
    """Who asked for something, spelled as the wire, the journal and hooks spell it:
    ``user``, ``rule:NAME`` or ``outside`` (seen by the kernel, asked by nobody
    lxcflow knows). Made by :data:`USER`, :data:`OUTSIDE`, :meth:`of_rule` or
    :meth:`parse`; a plain string is never one.
    """

    __slots__ = ()

    @classmethod
    def of_rule(cls, name: str) -> Actor:
        return cls(f"rule:{name}")

    @classmethod
    def parse(cls, text: str) -> Actor | None:
        """The actor ``text`` spells, or None if it spells none."""
        if text in ("user", "outside") or (text.startswith("rule:") and len(text) > 5):
            return cls(text)
        return None

    @property
    def rule(self) -> str | None:
        """The rule's name, for a rule; else None."""
        return self[5:] if self.startswith("rule:") else None

    @property
    def cause(self) -> Cause:
        """The cause of a transition this actor asked for."""
        if self.rule is not None:
            return Cause.RULE
        return Cause.KERNEL if self == "outside" else Cause.COMMAND


#: a user, through the API
USER = Actor("user")
#: nobody lxcflow knows: the kernel showed it (a freeze through cgroupfs, say)
OUTSIDE = Actor("outside")


def parse_cause(text: str) -> tuple[Cause, str | None]:
    """``"rule:web-restart"`` -> (RULE, "web-restart"); ``"kernel"`` -> (KERNEL, None)."""
    if text.startswith("rule:"):
        return Cause.RULE, text[5:]
    return Cause(text), None


@dataclass(frozen=True, slots=True)
class Event:
    """One transition of one container. ``id`` is assigned by the event bus.

    A *notice* is an event that changes no state (``from_state ==
    to_state``): something a user must hear about although the container
    stays where it is, such as a restart policy giving up. ``notice`` says
    which kind (``restart_given_up``, ``healthy``, ...), ``detail`` the rest.
    """

    container: str
    from_state: State
    to_state: State
    cause: Cause
    time_ns: int = field(default_factory=time.time_ns)
    id: int = 0
    exit_code: int | None = None
    signal: int | None = None
    detail: str | None = None
    rule: str | None = None  # with cause RULE: which rule acted
    notice: str | None = None  # a notice's kind (None for a transition)

    @property
    def cause_text(self) -> str:
        """``rule:<name>`` for a rule's action, else the cause's name."""
        return f"rule:{self.rule}" if self.rule else self.cause.value

    @property
    def is_notice(self) -> bool:
        return self.from_state is self.to_state

    def to_dict(self) -> dict[str, Any]:
        """The wire form (built by hand: ``dataclasses.asdict`` deep-copies,
        and this runs for every event and every subscriber)."""
        return {
            "container": self.container, "from": self.from_state.value,
            "to": self.to_state.value, "cause": self.cause_text, "time_ns": self.time_ns,
            "id": self.id, "exit_code": self.exit_code, "signal": self.signal,
            "detail": self.detail, "kind": "notice" if self.is_notice else "transition",
            "notice": self.notice,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        """The inverse of :meth:`to_dict` (another host's event, as it came).

        Raises:
            ValueError: not an event's wire form.
        """
        try:
            cause, rule = parse_cause(d["cause"])
            return cls(
                container=str(d["container"]), from_state=State(d["from"]),
                to_state=State(d["to"]), cause=cause, rule=rule, time_ns=int(d["time_ns"]),
                id=int(d["id"]), exit_code=d.get("exit_code"), signal=d.get("signal"),
                detail=d.get("detail"), notice=d.get("notice"),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"not an event: {e}") from None
