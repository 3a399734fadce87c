"""Rules files (TOML) to :class:`Rule` objects, every mistake at file:line.

A rules directory holds ``*.toml`` files, each with one or more ``[[rule]]``
tables; see ``rules/`` in the repository for documented examples. The lines
for the error messages come from :mod:`lxcflow.rules.positions`, single
values from :mod:`lxcflow.rules.values`.

Stdlib only (the CLI's ``rules check`` imports it).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, cast

from lxcflow.errors import ConfigError, UsageError
from lxcflow.rules.health import PROBE_KINDS, VERDICTS, Probe
from lxcflow.rules.model import (
    ACTIONS,
    CONTAINER_ACTIONS,
    RESTART_KINDS,
    Action,
    Backoff,
    Condition,
    Every,
    Health,
    OnTransition,
    RestartKind,
    RestartPolicy,
    Rule,
    Sample,
    Selector,
    Trigger,
)
from lxcflow.rules.positions import Positions
from lxcflow.rules.values import byte_count, count, cpu_share, list_of, number, signum, states
from lxcflow.validate import container_name, duration, host_name

SUFFIX = ".toml"
#: the shortest interval a sample or schedule may have (no busy loops)
MIN_INTERVAL = 0.01

KEYS = {
    "name", "description", "containers", "containers_regex", "condition", "actions",
    "on", "from", "sample", "every", "health",
    "restart", "max_restarts", "window", "backoff", "reset_after", "wake_on",
}
TRIGGERS = ("on", "sample", "every", "restart", "health")
RESTART_ONLY = ("max_restarts", "window", "reset_after")
HEALTH_KEYS = {*PROBE_KINDS, "every", "timeout", "retries", "start_period"}
#: what ``on`` takes besides states: the health verdicts, by their notices
ON_VERDICTS = {v.upper(): v for v in VERDICTS}
_HTTP_RE = re.compile(r"([0-9]+)(/[\x21-\x7e]*)?")
SAMPLE_KEYS = {"cpu_below", "cpu_above", "memory_above", "pids_above", "for", "every"}
BACKOFF_KEYS = {"initial", "factor", "max", "jitter"}
CONDITION_KEYS = {"state", "exit", "exit_code", "signal"}

_TOML_LINE_RE = re.compile(r"\(at line (\d+), column \d+\)")


class RuleError(ConfigError):
    """A rules file is wrong; the message starts with ``file:line:``."""

    exit_code = 2


class _Bad(Exception):
    """One mistake in one rule, with the key it is about (for its line)."""

    def __init__(self, key: str | None, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.key, self.reason, self.line = key, reason, line


# ------------------------------------------------------------------ rules


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _Bad(f"{where}.{key}" if where else key,
                       f"unknown key {key!r}" + (f" in {where}" if where else "")
                       + f" (allowed: {', '.join(sorted(allowed))})")


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(key, f"{key} must be a table, like {key} = {{ ... }}")
    return value


def _value(key: str, parse: Callable[[Any], Any], value: object) -> Any:
    try:
        return parse(value)
    except (ValueError, UsageError) as e:
        raise _Bad(key, f"{key}: {e}") from None


def _selector(raw: dict[str, Any]) -> Selector:
    if "containers" in raw and "containers_regex" in raw:
        raise _Bad("containers_regex", "give containers or containers_regex, not both")
    if "containers_regex" in raw:
        pattern = raw["containers_regex"]
        if not isinstance(pattern, str):
            raise _Bad("containers_regex", "containers_regex must be a string")
        try:
            return Selector(glob=None, regex=re.compile(pattern))
        except re.error as e:
            raise _Bad("containers_regex", f"bad regex {pattern!r}: {e}") from None
    glob = raw.get("containers", "*")
    if not isinstance(glob, str) or not glob:
        raise _Bad("containers", "containers must be a name or glob, like \"web-*\"")
    host, sep, glob = glob.rpartition(":")
    if not sep:
        return Selector(glob=glob)
    try:
        host_name(host)
    except UsageError as e:
        raise _Bad("containers", f"containers: {e}") from None
    if not glob:
        raise _Bad("containers", "containers = \"HOST:NAME\" names no container")
    return Selector(glob=glob, host=host)


def _remote_trigger(rule: Rule) -> None:
    """A rule another host's container triggers acts only here: on a
    transition or verdict, with actions that name their local container."""
    if not isinstance(rule.trigger, OnTransition):
        raise _Bad("containers", "only an on = ... rule may name another host's container")
    if rule.wake_on is not None:
        raise _Bad("wake_on", "wake_on needs a local container")
    for action in rule.actions:
        if action.kind in ("kill", "priority") or (
                action.kind in CONTAINER_ACTIONS and action.target is None):
            raise _Bad("actions", f"{action.kind} would act on {rule.containers}, which is on "
                       f"another host: actions act here, so name the container, as "
                       f"{{ {action.kind if action.kind in CONTAINER_ACTIONS else 'start'} "
                       f"= \"NAME\" }}", action.line)


def _backoff(value: object) -> Backoff:
    b = _table(value, "backoff")
    _check_keys(b, BACKOFF_KEYS, "backoff")
    default = Backoff()
    backoff = Backoff(
        initial=_value("backoff.initial", duration, b.get("initial", default.initial)),
        factor=_value("backoff.factor", lambda v: number(v, "factor", 1, 100),
                      b.get("factor", default.factor)),
        max=_value("backoff.max", duration, b.get("max", default.max)),
        jitter=_value("backoff.jitter", lambda v: number(v, "jitter", 0, 1),
                      b.get("jitter", default.jitter)),
    )
    if backoff.max < backoff.initial:
        raise _Bad("backoff.max", "backoff.max is shorter than backoff.initial")
    return backoff


def _restart(raw: dict[str, Any]) -> RestartPolicy:
    kind = raw["restart"]
    if kind not in RESTART_KINDS:
        raise _Bad("restart", f"restart must be one of {', '.join(RESTART_KINDS)}, not {kind!r}")
    backoff = _backoff(raw["backoff"]) if "backoff" in raw else Backoff()
    max_restarts = None
    if "max_restarts" in raw:
        max_restarts = _value("max_restarts", lambda v: count(v, "max_restarts", 1),
                              raw["max_restarts"])
    window = _value("window", duration, raw.get("window", 60.0))
    if window <= 0:
        raise _Bad("window", "window must be longer than 0 s")
    return RestartPolicy(
        kind=cast(RestartKind, kind), max_restarts=max_restarts, window=window,
        backoff=backoff, reset_after=_value("reset_after", duration, raw.get("reset_after", 10.0)),
    )


def _interval(key: str, value: object) -> float:
    seconds = _value(key, duration, value)
    if seconds < MIN_INTERVAL:
        raise _Bad(key, f"{key} must be at least {MIN_INTERVAL * 1000:g}ms")
    return cast(float, seconds)


def _sample(value: object) -> Sample:
    s = _table(value, "sample")
    _check_keys(s, SAMPLE_KEYS, "sample")
    if not (SAMPLE_KEYS - {"for", "every"}) & s.keys():
        raise _Bad("sample", "sample needs a threshold: cpu_below, cpu_above, memory_above "
                             "or pids_above")

    def optional(key: str, parse: Callable[[Any], Any]) -> Any:
        return _value(f"sample.{key}", parse, s[key]) if key in s else None

    every = _interval("sample.every", s.get("every", 1.0))
    return Sample(
        every=every,
        duration=_value("sample.for", duration, s.get("for", every)),
        cpu_below=optional("cpu_below", cpu_share),
        cpu_above=optional("cpu_above", cpu_share),
        memory_above=optional("memory_above", byte_count),
        pids_above=optional("pids_above", lambda v: count(v, "pids_above")),
    )


def _probe(h: dict[str, Any]) -> Probe:
    kinds = [key for key in PROBE_KINDS if key in h]
    if len(kinds) != 1:
        what = "none" if not kinds else " and ".join(kinds)
        raise _Bad(f"health.{kinds[1]}" if len(kinds) > 1 else "health",
                   f"health needs exactly one probe (exec, tcp or http), not {what}")
    kind, value = kinds[0], h[kinds[0]]
    if kind == "exec":
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v and "\0" not in v for v in value)):
            raise _Bad("health.exec", "health.exec must be a command as a list of strings, "
                                      'like ["/bin/pidof", "nginx"]')
        return Probe("exec", command=tuple(value))
    if kind == "tcp":
        return Probe("tcp", port=_port("health.tcp", value))
    m = _HTTP_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise _Bad("health.http", f"health.http must be \"PORT/PATH\", like \"8080/healthz\", "
                                  f"not {value!r}")
    return Probe("http", port=_port("health.http", int(m[1])), path=m[2] or "/")


def _port(key: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    raise _Bad(key, f"{key}: bad port {value!r} (1..65535)")


def _health(raw: dict[str, Any]) -> Health:
    h = _table(raw["health"], "health")
    _check_keys(h, HEALTH_KEYS, "health")
    default = Health(Probe("tcp"))
    timeout = _value("health.timeout", duration, h.get("timeout", default.timeout))
    if timeout <= 0:
        raise _Bad("health.timeout", "health.timeout must be longer than 0 s")
    return Health(
        probe=_probe(h),
        every=_interval("health.every", h.get("every", default.every)),
        timeout=timeout,
        retries=_value("health.retries", lambda v: count(v, "retries", 1),
                       h.get("retries", default.retries)),
        start_period=_value("health.start_period", duration,
                            h.get("start_period", default.start_period)),
        backoff=_backoff(raw["backoff"]) if "backoff" in raw else None,
    )


def _on(raw: dict[str, Any]) -> OnTransition:
    value = raw["on"]
    names = value if isinstance(value, list) else str(value).split("|")
    verdicts = {ON_VERDICTS[n.strip().upper()] for n in names
                if isinstance(n, str) and n.strip().upper() in ON_VERDICTS}
    rest = [n for n in names if not (isinstance(n, str) and n.strip().upper() in ON_VERDICTS)]
    if not rest and not verdicts:
        rest = [value]  # let the state parser say what is wrong
    to = _value("on", states, rest) if rest else frozenset()
    if "from" in raw and not to:
        raise _Bad("from", "from goes with a state in on, not only HEALTHY or UNHEALTHY")
    return OnTransition(
        to=to, from_=_value("from", states, raw["from"]) if "from" in raw else None,
        verdicts=frozenset(verdicts),
    )


def _trigger(raw: dict[str, Any]) -> Trigger:
    given = [key for key in TRIGGERS if key in raw]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise _Bad(given[1] if len(given) > 1 else None,
                   "a rule needs exactly one trigger (on, sample, every, restart or health), "
                   f"not {what}")
    kind = given[0]
    if "from" in raw and kind != "on":
        raise _Bad("from", "from goes with on (a transition trigger)")
    for key in RESTART_ONLY:
        if key in raw and kind != "restart":
            raise _Bad(key, f"{key} goes with restart (a restart policy)")
    if "backoff" in raw and kind not in ("restart", "health"):
        raise _Bad("backoff", "backoff goes with restart or health")
    if kind == "restart":
        return _restart(raw)
    if kind == "health":
        return _health(raw)
    if kind == "on":
        return _on(raw)
    if kind == "every":
        return Every(_interval("every", raw["every"]))
    return _sample(raw["sample"])


def _condition(value: object) -> Condition:
    c = _table(value, "condition")
    _check_keys(c, CONDITION_KEYS, "condition")
    exit = c.get("exit")
    if exit not in (None, "failure", "success"):
        raise _Bad("condition.exit", f"condition.exit must be failure or success, not {exit!r}")
    return Condition(
        states=_value("condition.state", states, c["state"]) if "state" in c else None,
        exit=exit,
        exit_codes=(_value("condition.exit_code",
                           lambda v: list_of(v, lambda x: count(x, "exit_code")), c["exit_code"])
                    if "exit_code" in c else None),
        signals=(_value("condition.signal", lambda v: list_of(v, signum), c["signal"])
                 if "signal" in c else None),
    )


def _target(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise _Bad("actions", f"{kind} takes a container name, not {value!r}")
    try:
        return container_name(value)
    except UsageError as e:
        raise _Bad("actions", f"{kind}: {e}") from None


def _action(item: object, base: Path, line: int) -> Action:
    """One element of ``actions``, which starts on ``line``."""
    if isinstance(item, str):
        if item not in ACTIONS:
            raise _Bad("actions", f"unknown action {item!r} (actions: {', '.join(ACTIONS)})")
        if item in ("priority", "hook", "log"):
            raise _Bad("actions", f"{item} needs a value, like {{ {item} = ... }}")
        return Action(item, line, argument=9 if item == "kill" else None)
    if not isinstance(item, dict) or not item:
        raise _Bad("actions", f"an action is a name or a one-key table, not {item!r}")
    kinds = [key for key in item if key != "timeout"] or ["timeout"]
    kind = kinds[0]
    if kind not in ACTIONS:
        raise _Bad("actions", f"unknown action {kind!r} (actions: {', '.join(ACTIONS)})")
    if len(kinds) > 1 or ("timeout" in item and kind != "hook"):
        bad = kinds[1] if len(kinds) > 1 else "timeout"
        raise _Bad("actions", f"unknown key {bad!r} in the {kind} action")
    value = item[kind]
    if kind in CONTAINER_ACTIONS:
        return Action(kind, line, target=_target(kind, value))
    if kind == "kill":
        try:
            return Action(kind, line, argument=signum(value))
        except ValueError as e:
            raise _Bad("actions", str(e)) from None
    if kind == "priority":
        if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 262144:
            raise _Bad("actions", f"priority must be in 2..262144 (cpu.shares), not {value!r}")
        return Action(kind, line, argument=value)
    if kind == "log":
        if not isinstance(value, str):
            raise _Bad("actions", "log takes a message string")
        return Action(kind, line, argument=value)
    return _hook(value, item.get("timeout"), base, line)


def _hook(value: object, timeout: object, base: Path, line: int) -> Action:
    if not isinstance(value, str) or not value:
        raise _Bad("actions", "hook takes the path of an executable")
    if "\0" in value:
        raise _Bad("actions", "hook path contains a NUL byte")
    path = (base / value).resolve() if not value.startswith("/") else Path(value)
    if not path.is_file():
        raise _Bad("actions", f"hook {value} does not exist")
    if not os.access(path, os.X_OK):
        raise _Bad("actions", f"hook {value} is not executable")
    seconds = None
    if timeout is not None:
        try:
            seconds = duration(timeout)
        except UsageError as e:
            raise _Bad("actions", f"hook timeout: {e}") from None
    return Action("hook", line, argument=str(path), timeout=seconds)


def _actions(items: list[Any], base: Path, lines: Positions, index: int) -> tuple[Action, ...]:
    starts = lines.element_lines(index, "actions")
    out = []
    for position, item in enumerate(items):
        line = starts[position] if position < len(starts) else lines.line_of(index, "actions")
        try:
            out.append(_action(item, base, line))
        except _Bad as e:
            e.line = line
            raise
    return tuple(out)


def _rule(raw: dict[str, Any], file: Path, lines: Positions, index: int) -> Rule:
    _check_keys(raw, KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str):
        raise _Bad("name" if "name" in raw else None, "a rule needs a name = \"...\"")
    try:
        container_name(name)
    except UsageError as e:
        raise _Bad("name", f"bad rule name: {e}") from None
    trigger = _trigger(raw)
    condition = _condition(raw["condition"]) if "condition" in raw else None
    actions: tuple[Action, ...] = ()
    if isinstance(trigger, RestartPolicy):
        for key in ("actions", "condition"):
            if key in raw:
                raise _Bad(key, f"a restart rule takes no {key} (the policy decides)")
    elif isinstance(trigger, Health) and "actions" not in raw:
        pass  # a probe alone: for wait --healthy and on = "HEALTHY"
    else:
        items = raw.get("actions")
        if not isinstance(items, list) or not items:
            raise _Bad("actions" if "actions" in raw else None,
                       "a rule needs actions = [ ... ] (at least one)")
        actions = _actions(items, file.parent, lines, index)
    rule = Rule(
        name=name, file=file, line=lines.line_of(index, None), containers=_selector(raw),
        trigger=trigger, condition=condition, actions=actions,
        wake_on=_wake_on(raw["wake_on"], actions) if "wake_on" in raw else None,
    )
    if rule.containers.host is not None:
        _remote_trigger(rule)
    return rule


def _wake_on(value: object, actions: tuple[Action, ...]) -> Literal["traffic"]:
    if value != "traffic":
        raise _Bad("wake_on", f'wake_on must be "traffic", not {value!r}')
    if not any(a.kind == "freeze" and a.target is None for a in actions):
        raise _Bad("wake_on", "wake_on goes with a freeze action on the container itself "
                              '(actions = ["freeze"])')
    return "traffic"


def parse_text(text: str, file: Path) -> tuple[list[Rule], list[RuleError]]:
    """Every rule of one file, and every mistake (at most one per rule)."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        return [], [RuleError("not valid TOML: nested too deeply", file=str(file))]
    except tomllib.TOMLDecodeError as e:
        m = _TOML_LINE_RE.search(str(e))
        reason = _TOML_LINE_RE.sub("", str(e)).strip()
        return [], [RuleError(f"not valid TOML: {reason}", file=str(file),
                              line=int(m[1]) if m else None)]
    lines = Positions.scan(text)
    errors = [
        RuleError(f"unknown {'table' if isinstance(value, dict) else 'key'} {key!r} "
                  "(a rules file holds [[rule]] tables)", file=str(file), line=lines.top.get(key))
        for key, value in data.items() if key != "rule"
    ]
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        return [], [*errors, RuleError("rule must be written [[rule]] (a list of tables)",
                                       file=str(file), line=lines.top.get("rule"))]
    rules: list[Rule] = []
    for index, raw in enumerate(tables):
        try:
            rules.append(_rule(raw, file, lines, index))
        except _Bad as e:
            errors.append(RuleError(e.reason, file=str(file),
                                    line=e.line or lines.line_of(index, e.key)))
    names: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in names:
            errors.append(RuleError(f"rule {rule.name!r} is defined twice (also at line "
                                    f"{names[rule.name].line})", file=str(file), line=rule.line))
        names.setdefault(rule.name, rule)
    for position, rule in enumerate(rules):
        clash = health_clash([rule], rules[:position])
        if clash is not None:
            errors.append(clash)
    return rules, errors


def load_text(data: bytes, path: Path) -> list[Rule]:
    """The rules of one file, read as ``data``.

    Raises:
        RuleError: the first mistake in it (the file is taken whole or not at all).
    """
    rules, errors = parse_text(_decode(data, path), path)
    if errors:
        raise errors[0]
    return rules


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise RuleError(f"not UTF-8 text: {e.reason}", file=str(path)) from None


def rule_files(directory: Path) -> list[Path]:
    """The ``*.toml`` files of a rules directory, by name (hidden ones skipped)."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RuleError(f"cannot read the rules directory: {e.strerror}",
                        file=str(directory)) from None
    return [p for p in entries if p.suffix == SUFFIX and not p.name.startswith(".")
            and p.is_file()]


def duplicates(rules: list[Rule], others: list[Rule]) -> RuleError | None:
    """A rule in ``rules`` whose name another file already uses, if any."""
    taken = {r.name: r for r in others}
    for rule in rules:
        if rule.name in taken:
            return RuleError(f"rule {rule.name!r} is already defined at {taken[rule.name].where}",
                             file=str(rule.file), line=rule.line)
    return None


def health_clash(
    rules: list[Rule], others: list[Rule], names: Iterable[str] = ()
) -> RuleError | None:
    """A health rule in ``rules`` that would probe a container another health
    rule (in ``others``) probes too: surely, or for one of ``names``."""
    theirs = [r for r in others if isinstance(r.trigger, Health)]
    names = list(names)
    for rule in rules:
        if not isinstance(rule.trigger, Health):
            continue
        for other in theirs:
            both = next((n for n in names if rule.containers.matches(n)
                         and other.containers.matches(n)), None)
            if both is not None or rule.containers.surely_overlaps(other.containers):
                whom = f"container {both!r}" if both else "the same containers"
                return RuleError(f"health rules {rule.name!r} and {other.name!r} (at "
                                 f"{other.where}) both probe {whom}: one health rule per "
                                 "container", file=str(rule.file), line=rule.line)
    return None


def check_directory(directory: Path) -> tuple[list[Rule], list[RuleError]]:
    """Every rule of a directory, and every mistake in it (``rules check``)."""
    if not directory.is_dir():
        raise RuleError("no such directory", file=str(directory))
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for path in rule_files(directory):
        try:
            text = _decode(path.read_bytes(), path)
        except OSError as e:
            errors.append(RuleError(f"cannot read: {e.strerror}", file=str(path)))
            continue
        except RuleError as e:
            errors.append(e)
            continue
        found, bad = parse_text(text, path)
        errors += bad
        for clash in (duplicates(found, rules), health_clash(found, rules)):
            if clash is not None:
                errors.append(clash)
        rules += found
    return rules, errors
