"""What ``rules list`` shows: the rules in force, how each stands, the files' errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from lxcflow.daemon.sampling import Sampler
from lxcflow.rules.health import HealthRecord
from lxcflow.rules.model import Every, Health, OnTransition, RestartPolicy, Rule, Sample
from lxcflow.rules.restart import RestartBook


@dataclass
class RuleFile:
    """What one rules file contributes: its last good rules, and its last error."""

    rules: list[Rule]
    text: bytes  # what was last read, good or not
    error: str | None = None


def describe(
    rules: list[Rule],
    books: dict[str, dict[str, RestartBook]],
    samplers: dict[str, Sampler],
    health: dict[str, HealthRecord],
    files: dict[Path, RuleFile],
    directory: Path | None,
) -> dict[str, Any]:
    """What ``rules list`` shows: each rule, where it is from and how it stands."""
    now = trio.current_time()
    out = []
    for rule in rules:
        state: dict[str, str] = {}
        for container, kept in sorted(books.items()):
            if rule.name in kept:
                state[container] = kept[rule.name].describe(now)
        sampler = samplers.get(rule.name)
        if sampler is not None and isinstance(rule.trigger, Sample):
            for container, since in sorted(sampler.held_since.items()):
                state[container] = f"condition held for {now - since:.1f} s"
        for container, record in sorted(health.items()):
            if record.rule == rule.name:
                failing = f", {record.failures} failures in a row" if record.failures else ""
                state[container] = record.status + failing
        out.append({
            "name": rule.name, "file": str(rule.file), "line": rule.line,
            "containers": str(rule.containers), "trigger": describe_trigger(rule),
            "actions": [str(a) for a in rule.actions], "state": state,
        })
    errors = [{"file": str(p), "error": f.error} for p, f in sorted(files.items())
              if f.error]
    return {"directory": str(directory) if directory else None,
            "rules": out, "errors": errors}


def describe_trigger(rule: Rule) -> str:
    """A rule's trigger in a few words."""
    t = rule.trigger
    if isinstance(t, RestartPolicy):
        limit = f", at most {t.max_restarts} in {t.window:g} s" if t.max_restarts else ""
        return f"restart {t.kind}{limit}"
    if isinstance(t, OnTransition):
        to = "|".join([*sorted(s.value for s in t.to), *sorted(v.upper() for v in t.verdicts)])
        return f"on {to}" + (f" from {'|'.join(sorted(s.value for s in t.from_))}"
                             if t.from_ else "")
    if isinstance(t, Health):
        return (f"health {t.probe} every {t.every:g} s, timeout {t.timeout:g} s, "
                f"{t.retries} retries" + (f", start period {t.start_period:g} s"
                                          if t.start_period else ""))
    if isinstance(t, Every):
        return f"every {t.interval:g} s"
    limits = [f"{what} {value}" for what, value in (
        ("cpu <", f"{t.cpu_below * 100:g}%" if t.cpu_below is not None else None),
        ("cpu >", f"{t.cpu_above * 100:g}%" if t.cpu_above is not None else None),
        ("memory >", f"{t.memory_above} bytes" if t.memory_above is not None else None),
        ("pids >", t.pids_above),
    ) if value is not None]
    return f"{' and '.join(limits)} for {t.duration:g} s (sampled every {t.every:g} s)"
