"""What a rule is: which containers, a trigger, an optional condition, actions.

Pure data and pure decisions (no I/O, no clock): the parser builds these from
TOML, the engine asks them questions.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lxcflow.rules.health import Probe
from lxcflow.states import BY_ITS_INIT, Event, State
from lxcflow.validate import is_glob

RestartKind = Literal["on-failure", "always", "unless-stopped"]
RESTART_KINDS: tuple[RestartKind, ...] = ("on-failure", "always", "unless-stopped")

#: actions on a container (the triggering one, or another one named in the action)
CONTAINER_ACTIONS = ("start", "stop", "restart", "freeze", "unfreeze")
ACTIONS = (*CONTAINER_ACTIONS, "kill", "priority", "hook", "log")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which containers a rule is about: a glob (``*`` is all) or a regex, on
    this host, or (``host``) on another host of the fleet."""

    glob: str | None = "*"
    regex: re.Pattern[str] | None = None
    host: str | None = None

    def matches(self, name: str, host: str | None = None) -> bool:
        """Whether container ``name`` of ``host`` (None: this one) is one of them."""
        if host != self.host:
            return False
        if self.regex is not None:
            return self.regex.search(name) is not None
        return self.glob is not None and fnmatch.fnmatchcase(name, self.glob)

    def __str__(self) -> str:
        text = f"/{self.regex.pattern}/" if self.regex is not None else str(self.glob)
        return f"{self.host}:{text}" if self.host else text

    def surely_overlaps(self, other: Selector) -> bool:
        """Whether some name must match both, judged without any names: one
        is ``*``, or a plain name the other matches. (Two globs or regexes
        may overlap only for names that exist: the daemon checks those.)"""
        if self.host != other.host:
            return False
        for a, b in ((self, other), (other, self)):
            if a.glob == "*":
                return True
            if a.glob is not None and not is_glob(a.glob) and b.matches(a.glob):
                return True
        return False


@dataclass(frozen=True, slots=True)
class OnTransition:
    """Fires when a matching container moves to one of ``to`` (from one of
    ``from_``), or gets one of the health verdicts in ``verdicts``
    (``on = "HEALTHY"``)."""

    to: frozenset[State]
    from_: frozenset[State] | None = None
    verdicts: frozenset[str] = frozenset()

    def fires(self, event: Event) -> bool:
        if event.is_notice:
            return event.notice in self.verdicts
        return (event.to_state in self.to
                and (self.from_ is None or event.from_state in self.from_))


@dataclass(frozen=True, slots=True)
class Sample:
    """Fires when every given threshold has held, sample after sample, for ``duration``.

    CPU is in cores (0.05 = 5 % of one core), memory in bytes.
    """

    every: float
    duration: float
    cpu_below: float | None = None
    cpu_above: float | None = None
    memory_above: int | None = None
    pids_above: int | None = None

    def holds(self, cpu: float | None, memory: int | None, pids: int | None) -> bool:
        """Whether one sample meets every threshold (an unreadable figure does not)."""
        checks = (
            (self.cpu_below, cpu, lambda limit, v: v < limit),
            (self.cpu_above, cpu, lambda limit, v: v > limit),
            (self.memory_above, memory, lambda limit, v: v > limit),
            (self.pids_above, pids, lambda limit, v: v > limit),
        )
        return all(limit is None or (value is not None and test(limit, value))
                   for limit, value, test in checks)


@dataclass(frozen=True, slots=True)
class Every:
    """Fires for every matching container each ``interval`` seconds."""

    interval: float


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restart number ``n`` (0-based): ``initial * factor**n``,
    capped at ``max``, then spread by +-``jitter`` (a fraction)."""

    initial: float = 0.1
    factor: float = 2.0
    max: float = 30.0
    jitter: float = 0.0

    def delay(self, n: int, random: float = 0.5) -> float:
        """``random`` in [0, 1) picks the point in the jitter band (0.5: none)."""
        base = min(self.initial * self.factor ** min(n, 64), self.max)
        return max(0.0, base * (1 + self.jitter * (2 * random - 1)))


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Docker's and systemd's restart semantics, made explicit.

    - ``on-failure``: restart when the container exits non-zero or is killed
      by a signal.
    - ``always``: restart whenever it stops on its own (exit 0 too); when the
      daemon starts, start every matching container that is STOPPED.
    - ``unless-stopped``: as ``always``, except that at daemon start a
      container whose last stop was a user's stays STOPPED.

    A stop that lxcflow was asked for (by a user or a rule) is never undone.
    More than ``max_restarts`` restarts within ``window`` seconds and the
    policy gives up on that container until it is started again by someone
    else; a run that lasted ``reset_after`` seconds resets the backoff.
    """

    kind: RestartKind
    max_restarts: int | None = None
    window: float = 60.0
    backoff: Backoff = Backoff()
    reset_after: float = 10.0

    def wants_restart(self, exit_code: int | None, signal: int | None) -> bool:
        """Whether a death on its own with this status calls for a restart."""
        if self.kind == "on-failure":
            return signal is not None or (exit_code is not None and exit_code != 0)
        return True


@dataclass(frozen=True, slots=True)
class Health:
    """Probes matching containers while they run (see :mod:`lxcflow.rules.health`);
    the rule's actions run when one turns unhealthy, after ``backoff``'s delay
    for the n-th time in a row (a healthy verdict starts the count over)."""

    probe: Probe
    every: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    backoff: Backoff | None = None


Trigger = OnTransition | Sample | Every | RestartPolicy | Health


@dataclass(frozen=True, slots=True)
class Condition:
    """What must also hold when the trigger fires; every given part must."""

    states: frozenset[State] | None = None
    exit: Literal["failure", "success"] | None = None
    exit_codes: frozenset[int] | None = None
    signals: frozenset[int] | None = None

    def holds(self, state: State, event: Event | None) -> bool:
        if self.states is not None and state not in self.states:
            return False
        code = event.exit_code if event else None
        sig = event.signal if event else None
        # An init's reboot(2) ends it by SIGHUP or SIGINT: asked for, no failure.
        asked = event is not None and event.cause in BY_ITS_INIT
        if self.exit == "failure" and (asked or not (sig is not None
                                                     or (code is not None and code != 0))):
            return False
        if self.exit == "success" and not (sig is None and code == 0):
            return False
        if self.exit_codes is not None and code not in self.exit_codes:
            return False
        return self.signals is None or sig in self.signals


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a rule. ``target`` names another container (default: the
    one that triggered the rule); ``argument`` is the signal number, the
    priority, the hook's path or the log message, by kind."""

    kind: str
    line: int
    target: str | None = None
    argument: int | str | None = None
    timeout: float | None = None  # a hook's own timeout

    def __str__(self) -> str:
        parts = [self.kind]
        if self.target:
            parts.append(self.target)
        if self.argument is not None:
            parts.append(str(self.argument))
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rule]]`` of a rules file."""

    name: str
    file: Path
    line: int
    containers: Selector
    trigger: Trigger
    condition: Condition | None = None
    actions: tuple[Action, ...] = ()
    #: "traffic": a container this rule froze is thawed by the first packet
    #: sent towards it (see :mod:`lxcflow.daemon.waking`)
    wake_on: Literal["traffic"] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def applies(self, container: str, state: State, event: Event | None = None,
                host: str | None = None) -> bool:
        """Whether the rule is about ``container`` (of ``host``; None: this
        one) and its condition holds."""
        return self.containers.matches(container, host) and (
            self.condition is None or self.condition.holds(state, event))
