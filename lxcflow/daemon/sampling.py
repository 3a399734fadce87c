"""Sample rules' memory: what each container used last, and since when a rule's
thresholds have held (CPU use is a rate, so it needs two samples)."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from lxcflow.daemon.supervisor import Usage
from lxcflow.rules.model import Rule, Sample


@dataclass
class Sampler:
    """A running sample or schedule rule: its task's scope, and what it has seen."""

    rule: Rule
    scope: trio.CancelScope
    #: container -> (time, cpu ns) of its last sample
    last: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: container -> since when the thresholds have held
    held_since: dict[str, float] = field(default_factory=dict)

    def forget(self, name: str) -> None:
        """``name`` is not RUNNING: a later sample starts afresh."""
        self.last.pop(name, None)
        self.held_since.pop(name, None)

    def due(self, name: str, now: float, usage: Usage) -> bool:
        """Take one sample; True when the thresholds have held for the rule's
        whole duration (then it takes another full stretch to be due again)."""
        trigger = self.rule.trigger
        assert isinstance(trigger, Sample), "due() of a schedule rule"
        previous = self.last.get(name)
        self.last[name] = (now, usage.cpu_ns)
        if previous is None or now <= previous[0]:
            return False  # a CPU rate needs two samples
        cpu = (usage.cpu_ns - previous[1]) / 1e9 / (now - previous[0])
        if not trigger.holds(cpu, usage.memory_bytes, usage.pids):
            self.held_since.pop(name, None)
            return False
        since = self.held_since.setdefault(name, previous[0])
        if now - since < trigger.duration:
            return False
        del self.held_since[name]
        return True
