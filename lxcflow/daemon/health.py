"""Health checks in the daemon: one probe task per running container that a
health rule matches, its verdicts published as notices.

A run's health starts as ``starting`` when it turns RUNNING and ends with it
(at STOPPING); while the container is frozen its probes wait, and a probe
that was under way when it froze does not count. Each container's probes
run one after another, ``every`` seconds after the last ended (as Docker's),
each in its own task: a slow one holds up nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog
import trio

from lxcflow.daemon import probes
from lxcflow.daemon.container import Container
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.rules.health import HealthRecord, HealthStatus
from lxcflow.rules.model import Health, Rule
from lxcflow.states import Actor, Cause, Event, State

log = structlog.get_logger("lxcflow.health")

#: states in which a run's health is kept (probes wait out a freeze)
_ALIVE = frozenset({State.RUNNING, State.FREEZING, State.FROZEN})

#: called with the rule, the container, the ``unhealthy`` notice and how many
#: unhealthy verdicts came before it in a row
OnUnhealthy = Callable[[Rule, str, Event, int], None]


def rule_for(name: str, rules: Iterable[Rule]) -> Rule | None:
    """The health rule that probes ``name`` (the first, should several match)."""
    return next((r for r in rules if isinstance(r.trigger, Health)
                 and r.containers.matches(name)), None)


class HealthChecks:
    """The probes of every running container a health rule matches.

    Args:
        on_unhealthy: what to do at an ``unhealthy`` verdict (the rule
            engine runs the rule's actions).
    """

    def __init__(self, supervisor: Supervisor, on_unhealthy: OnUnhealthy) -> None:
        self.sup = supervisor
        self.on_unhealthy = on_unhealthy
        self._probing: dict[str, tuple[Rule, trio.CancelScope]] = {}
        #: container -> unhealthy verdicts in a row (a healthy one, or a
        #: start by somebody else, clears it): what a rule's backoff counts
        self.streaks: dict[str, int] = {}
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery, rules: list[Rule]) -> None:
        """Probe, in ``nursery``, what runs now and what will run."""
        self._nursery = nursery
        self.sync(rules)

    def observe(self, event: Event, rules: list[Rule]) -> None:
        """Follow one transition: a run that begins is probed, one that ends is not."""
        name = event.container
        if event.to_state is State.STARTING and event.cause is not Cause.RULE:
            self.streaks.pop(name, None)
        if event.to_state is State.RUNNING and event.from_state is State.STARTING:
            self._stop(name)
            rule = rule_for(name, rules)
            if rule is not None:
                self._begin(name, rule, rules)
        elif event.to_state not in _ALIVE:
            self._stop(name)

    def sync(self, rules: list[Rule]) -> None:
        """After a reload: each running container probed by the rule now in
        force for it (an edited rule's probes start over, as ``starting``)."""
        if self._nursery is None:
            return
        for name, c in list(self.sup.containers.items()):
            wanted = rule_for(name, rules) if c.state in _ALIVE else None
            current = self._probing.get(name)
            if current is not None and current[0] == wanted:
                continue
            self._stop(name)
            if wanted is not None:
                self._begin(name, wanted, rules)

    def _begin(self, name: str, rule: Rule, rules: list[Rule]) -> None:
        assert self._nursery is not None
        assert isinstance(rule.trigger, Health)
        c = self.sup.containers[name]
        others = [r.name for r in rules if r is not rule and isinstance(r.trigger, Health)
                  and r.containers.matches(name)]
        if others:
            log.error("health_rules_clash", container=name, rule=rule.name, also=others,
                      consequence=f"probed by {rule.name!r} only")
        record = HealthRecord(rule.name, str(rule.trigger.probe), started=trio.current_time())
        c.health = record
        scope = trio.CancelScope()
        self._probing[name] = (rule, scope)
        self._nursery.start_soon(self._probe_loop, rule, c, record, scope)

    def _stop(self, name: str) -> None:
        probing = self._probing.pop(name, None)
        if probing is None:
            return
        probing[1].cancel()
        c = self.sup.containers.get(name)
        if c is not None and c.health is not None and c.health.rule == probing[0].name:
            c.health = None

    async def _probe_loop(
        self, rule: Rule, c: Container, record: HealthRecord, scope: trio.CancelScope
    ) -> None:
        check = rule.trigger
        assert isinstance(check, Health)
        sock = probes.ProbeSocket()
        with scope:
            try:
                await self._probe_each(rule, check, c, record, sock)
            finally:
                sock.close()  # it holds the container's network namespace

    async def _probe_each(
        self, rule: Rule, check: Health, c: Container, record: HealthRecord,
        sock: probes.ProbeSocket,
    ) -> None:
        while True:
            await trio.sleep(check.every)
            await c.wait_until(lambda: c.state is State.RUNNING)
            result = await probes.run(self.sup, c.name, check.probe, sock, within=check.timeout)
            if c.state is not State.RUNNING or c.health is not record:
                continue  # froze or ended meanwhile: the result says nothing
            verdict = record.record(check, result.ok, result.output,
                                    trio.current_time(), time.time_ns())
            if verdict is not None:
                self._verdict(rule, c, verdict, result.output)

    def _verdict(self, rule: Rule, c: Container, verdict: HealthStatus, output: str) -> None:
        c.log.info("health_changed", health=verdict, rule=rule.name, output=output or None)
        event = c.notice(verdict, output or None, Actor.of_rule(rule.name))
        c.notify()
        if verdict == "healthy":
            self.streaks.pop(c.name, None)
            return
        streak = self.streaks.get(c.name, 0)
        self.streaks[c.name] = streak + 1
        self.on_unhealthy(rule, c.name, event, streak)
