"""lxcflow.rules: rules files to Rule objects, every mistake at its file:line;
the value helpers; the pure decisions of the rule model."""

from __future__ import annotations

import math
import re
import signal
from pathlib import Path

import pytest

from lxcflow.rules.health import HealthRecord, Probe
from lxcflow.rules.model import (
    Action,
    Backoff,
    Condition,
    Every,
    Health,
    OnTransition,
    RestartPolicy,
    Rule,
    Sample,
    Selector,
)
from lxcflow.rules.parse import RuleError, check_directory, health_clash, load_text, parse_text
from lxcflow.rules.values import byte_count, cpu_share
from lxcflow.states import Cause, Event, State

S = State
FILE = Path("/r/x.toml")
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "rules"


def rule(*body: str) -> str:
    """One rule named "r": a comment on line 1, ``[[rule]]`` on line 2, the name
    on line 3, then ``body`` one line each from line 4 on."""
    return "\n".join(["# a rules file", "[[rule]]", 'name = "r"', *body]) + "\n"


def the_error(text: str, file: Path = FILE) -> tuple[int | None, str]:
    """The one mistake in ``text``: its line and its reason (after ``file:line:``)."""
    rules, errors = parse_text(text, file)
    assert len(errors) == 1, [str(e) for e in errors]
    err = errors[0]
    assert isinstance(err, RuleError)
    line = err.details["line"]
    reason = err.details["reason"]
    where = f"{file}:{line}" if line is not None else str(file)
    assert str(err) == f"{where}: {reason}"
    return line, reason


def parse_one(text: str, file: Path = FILE) -> Rule:
    rules, errors = parse_text(text, file)
    assert errors == [], [str(e) for e in errors]
    assert len(rules) == 1
    return rules[0]


def line_in(path: Path, needle: str, nth: int | None = None) -> int:
    """The 1-based line of ``path`` that holds ``needle`` (there must be one,
    unless ``nth`` picks one of several)."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    if nth is not None:
        return found[nth]
    assert len(found) == 1, (path, needle, found)
    return found[0]


def executable(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def event(
    from_state: State, to_state: State, exit_code: int | None = None, sig: int | None = None
) -> Event:
    return Event("web-1", from_state, to_state, Cause.KERNEL, exit_code=exit_code, signal=sig)


# ---------------------------------------------------------------- the repository's examples


def example_rules() -> dict[str, Rule]:
    rules, errors = check_directory(EXAMPLES)
    assert errors == [], [str(e) for e in errors]
    return {r.name: r for r in rules}


def test_every_example_file_parses_without_a_mistake() -> None:
    files = sorted(EXAMPLES.glob("*.toml"))
    assert files, "the repository ships example rules"
    rules = example_rules()
    assert {
        "freeze-idle-batch", "demote-cpu-hogs", "too-many-processes", "app-after-db",
        "report-crash", "web-on-failure", "services-unless-stopped", "web-alive", "db-ready",
        "app-once-db-is-healthy",
    } <= rules.keys()
    assert {r.file for r in rules.values()} <= set(files)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_file_loads_as_bytes(path: Path) -> None:
    rules = load_text(path.read_bytes(), path)
    assert rules
    for r in rules:
        assert r.file == path
        assert path.read_text().splitlines()[r.line - 1].strip() == "[[rule]]"


def test_example_restart_policy_values() -> None:
    r = example_rules()["web-on-failure"]
    path = EXAMPLES / "restart.toml"

    assert r.line == line_in(path, 'name = "web-on-failure"') - 1
    assert r.where == f"{path}:{r.line}"
    assert r.actions == ()
    assert r.condition is None
    assert r.trigger == RestartPolicy(
        kind="on-failure", max_restarts=5, window=60.0,
        backoff=Backoff(initial=0.1, factor=2.0, max=10.0, jitter=0.1), reset_after=30.0,
    )
    assert r.containers.matches("web-1")
    assert not r.containers.matches("db")


def test_example_regex_selector_and_partial_backoff() -> None:
    r = example_rules()["services-unless-stopped"]

    assert isinstance(r.trigger, RestartPolicy)
    assert r.trigger.kind == "unless-stopped"
    assert r.trigger.max_restarts is None
    assert r.trigger.backoff == Backoff(initial=1.0, factor=2.0, max=60.0, jitter=0.0)
    assert r.trigger.window == 60.0
    assert r.trigger.reset_after == 10.0
    assert r.containers.regex is not None
    assert r.containers.matches("svc-a1")
    assert not r.containers.matches("svc-A1")
    assert not r.containers.matches("xsvc-a1")
    assert str(r.containers) == "/^svc-[a-z0-9]+$/"


def test_example_sample_rules() -> None:
    rules = example_rules()
    idle = rules["freeze-idle-batch"]
    assert idle.trigger == Sample(every=1.0, duration=30.0, cpu_below=0.01)
    assert idle.containers == Selector(glob="batch-*")
    path = EXAMPLES / "freeze-idle.toml"
    assert idle.actions == (Action("freeze", line_in(path, 'actions = ["freeze"]', 0)),)
    assert idle.wake_on is None
    scale = rules["scale-to-zero"]
    assert (scale.trigger, scale.wake_on) == (
        Sample(every=5.0, duration=300.0, cpu_below=0.01), "traffic")
    assert scale.actions == (Action("freeze", line_in(path, 'actions = ["freeze"]', 1)),)

    hogs = rules["demote-cpu-hogs"]
    assert hogs.trigger == Sample(every=5.0, duration=120.0, cpu_above=0.9)
    assert [(a.kind, a.argument) for a in hogs.actions] == [
        ("priority", 256), ("log", "busy for 2 minutes: priority lowered"),
    ]

    forks = rules["too-many-processes"]
    assert forks.trigger == Sample(every=2.0, duration=10.0, pids_above=2000)
    assert [(a.kind, a.argument) for a in forks.actions] == [("kill", int(signal.SIGTERM))]


def test_example_transition_rules() -> None:
    rules = example_rules()
    path = EXAMPLES / "ordering.toml"

    after = rules["app-after-db"]
    assert after.trigger == OnTransition(to=frozenset({S.RUNNING}))
    assert after.containers == Selector(glob="db")
    assert [(a.kind, a.target) for a in after.actions] == [("start", "app")]

    crash = rules["report-crash"]
    assert crash.trigger == OnTransition(to=frozenset({S.STOPPED}), from_=frozenset({S.STOPPING}))
    assert crash.condition == Condition(exit="failure")
    log, hook = crash.actions
    assert (log.kind, log.argument) == ("log", "stopped on a failure")
    assert log.line == line_in(path, '{ log = "stopped on a failure" }')
    assert hook.kind == "hook"
    assert hook.argument == str((REPO / "hooks" / "notify-crash").resolve())
    assert hook.timeout == 10.0
    assert hook.line == line_in(path, '{ hook = "../hooks/notify-crash"')


# ---------------------------------------------------------------- mistakes, at their line

BAD_RULES = [
    # keys a rule does not have
    pytest.param(rule('on = "RUNNING"', 'actions = ["stop"]', 'colour = "red"'),
                 6, "unknown key 'colour'", id="unknown-rule-key"),
    pytest.param(rule('restart = "always"', 'backoff = { initial = "1s", grow = 3 }'),
                 5, "unknown key 'grow' in backoff", id="unknown-backoff-key"),
    pytest.param(rule('actions = ["freeze"]', 'sample = { cpu_below = "1%", idle = true }'),
                 5, "unknown key 'idle' in sample", id="unknown-sample-key"),
    pytest.param(rule('on = "STOPPED"', 'condition = { exit = "failure", reason = "oom" }',
                      'actions = ["start"]'),
                 5, "unknown key 'reason' in condition", id="unknown-condition-key"),
    # durations
    pytest.param(rule('every = "10 parsecs"', 'actions = ["stop"]'),
                 4, "every: bad duration '10 parsecs'", id="duration-unit"),
    pytest.param(rule('restart = "always"', 'window = "-1s"'),
                 5, "window: bad duration '-1s'", id="duration-negative"),
    pytest.param(rule('restart = "always"', 'window = -5'),
                 5, "window: bad duration -5", id="duration-negative-number"),
    pytest.param(rule('restart = "always"', 'reset_after = ""'),
                 5, "reset_after: bad duration ''", id="duration-empty"),
    pytest.param(rule('restart = "always"', 'backoff = { initial = true }'),
                 5, "backoff.initial: bad duration True", id="duration-bool"),
    pytest.param(rule('actions = ["stop"]', 'sample = { pids_above = 5, for = "soon" }'),
                 5, "sample.for: bad duration 'soon'", id="duration-sample-for"),
    pytest.param(rule('every = "5ms"', 'actions = ["stop"]'),
                 4, "every must be at least 10ms", id="every-too-short"),
    pytest.param(rule('actions = ["stop"]', 'sample = { cpu_below = 1, every = "1ms" }'),
                 5, "sample.every must be at least 10ms", id="sample-every-too-short"),
    pytest.param(rule('restart = "always"', 'window = "0s"'),
                 5, "window must be longer than 0 s", id="window-zero"),
    # selectors
    pytest.param(rule('on = "RUNNING"', 'actions = ["stop"]', 'containers_regex = "web-("'),
                 6, "bad regex 'web-('", id="bad-regex"),
    pytest.param(rule('on = "RUNNING"', 'actions = ["stop"]', 'containers_regex = "*web"'),
                 6, "bad regex '*web'", id="bad-regex-nothing-to-repeat"),
    pytest.param(rule('containers = "a"', 'containers_regex = "b"', 'on = "RUNNING"',
                      'actions = ["stop"]'),
                 5, "not both", id="glob-and-regex"),
    pytest.param(rule('on = "RUNNING"', 'containers = ""', 'actions = ["stop"]'),
                 5, "containers must be a name or glob", id="empty-glob"),
    # actions
    pytest.param(rule('on = "RUNNING"', 'actions = ["frezze"]'),
                 5, "unknown action 'frezze'", id="unknown-action-name"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ pause = "db" }]'),
                 5, "unknown action 'pause'", id="unknown-action-table"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ kill = "FOO" }]'),
                 5, "unknown signal: 'FOO'", id="unknown-signal"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ kill = 65 }]'),
                 5, "unknown signal", id="signal-out-of-range"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ priority = 1 }]'),
                 5, "priority must be in 2..262144", id="priority-low"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ priority = 262145 }]'),
                 5, "priority must be in 2..262144", id="priority-high"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ priority = true }]'),
                 5, "priority must be in 2..262144", id="priority-bool"),
    pytest.param(rule('on = "RUNNING"', 'actions = ["priority"]'),
                 5, "priority needs a value", id="priority-bare"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ log = 5 }]'),
                 5, "log takes a message string", id="log-not-text"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ start = "bad name" }]'),
                 5, "start: invalid container name 'bad name'", id="bad-target"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ stop = 5 }]'),
                 5, "stop takes a container name", id="target-not-text"),
    pytest.param(rule('on = "RUNNING"', 'actions = [{ start = "app", timeout = "1s" }]'),
                 5, "unknown key 'timeout' in the start action", id="timeout-not-on-hook"),
    pytest.param(rule('on = "RUNNING"', 'actions = [5]'),
                 5, "an action is a name or a one-key table", id="action-not-a-name"),
    pytest.param(rule('on = "RUNNING"', "actions = []"),
                 5, "a rule needs actions = [ ... ]", id="no-actions"),
    pytest.param(rule('on = "RUNNING"', 'actions = "stop"'),
                 5, "a rule needs actions = [ ... ]", id="actions-not-a-list"),
    pytest.param(rule('on = "RUNNING"'),
                 2, "a rule needs actions = [ ... ]", id="actions-missing"),
    # triggers
    pytest.param(rule('containers = "web"', 'actions = ["stop"]'),
                 2, "exactly one trigger (on, sample, every, restart or health), not none",
                 id="no-trigger"),
    pytest.param(rule('on = "RUNNING"', 'actions = ["stop"]', 'every = "10s"'),
                 6, "exactly one trigger (on, sample, every, restart or health), not on and every",
                 id="two-triggers"),
    pytest.param(rule('every = "10s"', 'actions = ["stop"]', 'from = "RUNNING"'),
                 6, "from goes with on", id="from-without-on"),
    pytest.param(rule('on = "STOPPED"', 'actions = ["start"]', "max_restarts = 3"),
                 6, "max_restarts goes with restart", id="max-restarts-without-restart"),
    pytest.param(rule('every = "1m"', 'actions = ["stop"]', 'backoff = { initial = "1s" }'),
                 6, "backoff goes with restart", id="backoff-without-restart"),
    pytest.param(rule('on = "RUNING"', 'actions = ["stop"]'),
                 4, "on: unknown state 'RUNING'", id="unknown-state"),
    pytest.param(rule('on = "STOPPED"', "from = 5", 'actions = ["stop"]'),
                 5, "from: expected a state", id="from-not-a-state"),
    pytest.param(rule('actions = ["stop"]', "sample = {}"),
                 5, "sample needs a threshold", id="sample-without-threshold"),
    pytest.param(rule('actions = ["stop"]', 'sample = "idle"'),
                 5, "sample must be a table", id="sample-not-a-table"),
    pytest.param(rule('actions = ["stop"]', "sample = { cpu_below = true }"),
                 5, "sample.cpu_below: bad CPU share True", id="cpu-share-bool"),
    pytest.param(rule('actions = ["stop"]', 'sample = { memory_above = "1.5G" }'),
                 5, "sample.memory_above: bad size '1.5G'", id="size-fraction"),
    pytest.param(rule('actions = ["stop"]', "sample = { pids_above = -1 }"),
                 5, "pids_above must be a whole number >= 0", id="pids-negative"),
    # restart policies
    pytest.param(rule('restart = "never"'),
                 4, "restart must be one of on-failure, always, unless-stopped", id="bad-kind"),
    pytest.param(rule('restart = "always"', 'actions = ["start"]'),
                 5, "a restart rule takes no actions", id="actions-on-restart"),
    pytest.param(rule('restart = "always"', 'condition = { exit = "failure" }'),
                 5, "a restart rule takes no condition", id="condition-on-restart"),
    pytest.param(rule('restart = "on-failure"', "max_restarts = 0"),
                 5, "max_restarts must be a whole number >= 1", id="max-restarts-zero"),
    pytest.param(rule('restart = "on-failure"', "max_restarts = 2.5"),
                 5, "max_restarts must be a whole number >= 1", id="max-restarts-float"),
    pytest.param(rule('restart = "always"', 'backoff = { initial = "2s", max = "1s" }'),
                 5, "backoff.max is shorter than backoff.initial", id="backoff-max-short"),
    pytest.param(rule('restart = "always"', "backoff = { factor = 0.5 }"),
                 5, "factor must be a number in 1..100", id="backoff-factor"),
    pytest.param(rule('restart = "always"', "backoff = { jitter = 2 }"),
                 5, "jitter must be a number in 0..1", id="backoff-jitter"),
    pytest.param(rule('restart = "always"', 'backoff = "fast"'),
                 5, "backoff must be a table", id="backoff-not-a-table"),
    # conditions
    pytest.param(rule('on = "STOPPED"', 'condition = { exit = "maybe" }', 'actions = ["start"]'),
                 5, "condition.exit must be failure or success", id="condition-exit"),
    pytest.param(rule('on = "STOPPED"', "condition = { exit_code = [0, -1] }",
                      'actions = ["start"]'),
                 5, "condition.exit_code: exit_code must be a whole number >= 0",
                 id="condition-exit-code"),
    pytest.param(rule('on = "STOPPED"', 'condition = { signal = "NOPE" }', 'actions = ["start"]'),
                 5, "condition.signal: unknown signal: 'NOPE'", id="condition-signal"),
    pytest.param(rule('on = "STOPPED"', 'condition = { state = "BOGUS" }', 'actions = ["start"]'),
                 5, "condition.state: unknown state 'BOGUS'", id="condition-state"),
    pytest.param(rule('on = "STOPPED"', 'condition = "failed"', 'actions = ["start"]'),
                 5, "condition must be a table", id="condition-not-a-table"),
    # health checks
    pytest.param(rule('health = { tcp = 80, http = "80/" }'),
                 4, "health needs exactly one probe (exec, tcp or http), not tcp and http",
                 id="health-two-kinds"),
    pytest.param(rule('health = { every = "5s" }'),
                 4, "health needs exactly one probe (exec, tcp or http), not none",
                 id="health-no-kind"),
    pytest.param(rule("health = { tcp = 70000 }"),
                 4, "health.tcp: bad port 70000 (1..65535)", id="health-bad-port"),
    pytest.param(rule('health = { tcp = "http" }'),
                 4, "health.tcp: bad port 'http'", id="health-port-not-a-number"),
    pytest.param(rule('health = { http = "80 /x" }'),
                 4, 'health.http must be "PORT/PATH"', id="health-http-space"),
    pytest.param(rule('health = { http = "0/x" }'),
                 4, "health.http: bad port 0", id="health-http-port-zero"),
    pytest.param(rule('health = { exec = "curl -f localhost" }'),
                 4, "health.exec must be a command as a list of strings", id="health-exec-str"),
    pytest.param(rule("health = { exec = [] }"),
                 4, "health.exec must be a command as a list of strings", id="health-exec-empty"),
    pytest.param(rule('health = { tcp = 80, every = "-5s" }'),
                 4, "health.every: bad duration '-5s'", id="health-negative-every"),
    pytest.param(rule("health = { tcp = 80, timeout = -1 }"),
                 4, "health.timeout: bad duration -1", id="health-negative-timeout"),
    pytest.param(rule("health = { tcp = 80, timeout = 0 }"),
                 4, "health.timeout must be longer than 0 s", id="health-zero-timeout"),
    pytest.param(rule('health = { tcp = 80, start_period = "-1m" }'),
                 4, "health.start_period: bad duration '-1m'", id="health-negative-start"),
    pytest.param(rule("health = { tcp = 80, retries = 0 }"),
                 4, "health.retries: retries must be a whole number >= 1", id="health-retries"),
    pytest.param(rule("health = { tcp = 80, interval = 5 }"),
                 4, "unknown key 'interval' in health", id="health-unknown-key"),
    pytest.param(rule('health = "tcp 80"'),
                 4, "health must be a table", id="health-not-a-table"),
    pytest.param(rule('on = "RUNNING"', 'backoff = { initial = "1s" }', 'actions = ["stop"]'),
                 5, "backoff goes with restart or health", id="backoff-on-transition"),
    pytest.param(rule('on = "HEALTHY"', 'from = "STARTING"', 'actions = ["stop"]'),
                 5, "from goes with a state in on, not only HEALTHY or UNHEALTHY",
                 id="from-with-healthy"),
    pytest.param(rule('on = "HEALTHYISH"', 'actions = ["stop"]'),
                 4, "unknown state 'HEALTHYISH'", id="on-unknown-verdict"),
    # wake on traffic
    pytest.param(rule('sample = { cpu_below = "1%" }', 'wake_on = "packets"',
                      'actions = ["freeze"]'),
                 5, 'wake_on must be "traffic", not \'packets\'', id="wake-on-unknown"),
    pytest.param(rule('sample = { cpu_below = "1%" }', 'wake_on = "traffic"',
                      'actions = ["stop"]'),
                 5, "wake_on goes with a freeze action on the container itself",
                 id="wake-on-without-freeze"),
    pytest.param(rule('on = "RUNNING"', 'wake_on = "traffic"', 'actions = [{ freeze = "db" }]'),
                 5, "wake_on goes with a freeze action on the container itself",
                 id="wake-on-freezing-another"),
    # names
    pytest.param('# no name\n[[rule]]\non = "RUNNING"\nactions = ["stop"]\n',
                 2, 'a rule needs a name = "..."', id="missing-name"),
    pytest.param('# c\n[[rule]]\non = "RUNNING"\nname = "web restart"\nactions = ["stop"]\n',
                 4, "bad rule name: invalid container name 'web restart'", id="bad-name"),
    pytest.param('# c\n[[rule]]\non = "RUNNING"\nname = "-web"\nactions = ["stop"]\n',
                 4, "must start with a letter or a digit", id="name-with-dash"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_RULES)
def test_mistake_is_reported_at_the_line_of_its_key(text: str, line: int, fragment: str) -> None:
    rules, _ = parse_text(text, FILE)
    assert rules == []
    at, reason = the_error(text)
    assert at == line
    assert fragment in reason


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_RULES[:6])
def test_load_text_raises_the_mistake(text: str, line: int, fragment: str) -> None:
    with pytest.raises(RuleError) as info:
        load_text(text.encode(), FILE)
    assert str(info.value).startswith(f"{FILE}:{line}: ")
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


def test_unknown_action_in_a_multi_line_array_is_at_its_own_line() -> None:
    text = rule(
        'on = "RUNNING"',
        "actions = [",
        '    { log = "up" },',
        '    "frezze",',
        '    { start = "app" },',
        "]",
    )
    assert the_error(text) == (7, "unknown action 'frezze' (actions: start, stop, restart, "
                                  "freeze, unfreeze, kill, priority, hook, log)")


def test_actions_in_a_multi_line_array_keep_their_own_lines() -> None:
    text = rule(
        'on = "RUNNING"',
        "actions = [",
        '    { log = "up" },',
        '    "freeze",',
        '    { kill = "SIGHUP" },',
        '    { priority = 512 },',
        "]",
    )
    r = parse_one(text)
    assert [(a.kind, a.line) for a in r.actions] == [
        ("log", 6), ("freeze", 7), ("kill", 8), ("priority", 9),
    ]
    assert r.actions[2].argument == int(signal.SIGHUP)


def test_a_bad_signal_in_a_multi_line_array_is_at_its_own_line() -> None:
    text = rule(
        'on = "RUNNING"',
        "actions = [",
        '    { log = "up" },',
        '    { kill = "FOO" },',
        "]",
    )
    line, reason = the_error(text)
    assert line == 7
    assert reason == "unknown signal: 'FOO' is not a signal name or a number 1-64"


def test_a_bad_action_after_one_of_the_same_kind_is_at_its_own_line() -> None:
    text = rule(
        'on = "RUNNING"',
        "actions = [",
        '    { kill = "TERM" },',
        '    { kill = "FOO" },',
        "]",
    )
    line, reason = the_error(text)
    assert "'FOO'" in reason
    assert line == 7


def test_an_action_is_not_placed_at_a_log_message_that_mentions_it() -> None:
    text = rule(
        'on = "RUNNING"',
        "actions = [",
        '    { log = "about to stop" },',
        '    "stop",',
        "]",
    )
    r = parse_one(text)
    assert [(a.kind, a.line) for a in r.actions] == [("log", 6), ("stop", 7)]


def test_wake_on_traffic_goes_with_the_rules_own_freeze() -> None:
    (r,), errors = parse_text(rule('sample = { cpu_below = "1%", for = "1m" }',
                                   'wake_on = "traffic"', 'actions = ["freeze"]'), FILE)
    assert errors == []
    assert r.wake_on == "traffic"
    (plain,), _ = parse_text(rule('sample = { cpu_below = "1%" }', 'actions = ["freeze"]'), FILE)
    assert plain.wake_on is None


def test_bare_kill_is_sigkill_and_signals_take_names_and_numbers() -> None:
    r = parse_one(rule('on = "RUNNING"',
                       'actions = ["kill", { kill = "SIGUSR1" }, { kill = "int" }, { kill = 15 }]'))
    assert [a.argument for a in r.actions] == [
        int(signal.SIGKILL), int(signal.SIGUSR1), int(signal.SIGINT), 15,
    ]


def test_container_actions_with_and_without_a_target() -> None:
    r = parse_one(rule(
        'on = "RUNNING"',
        'actions = ["restart", { stop = "db" }, { freeze = "cache.1" }, "unfreeze",'
        ' { priority = 2 }, { priority = 262144 }]',
    ))
    assert [(a.kind, a.target, a.argument) for a in r.actions] == [
        ("restart", None, None), ("stop", "db", None), ("freeze", "cache.1", None),
        ("unfreeze", None, None), ("priority", None, 2), ("priority", None, 262144),
    ]
    assert [str(a) for a in r.actions[1:3]] == ["stop db", "freeze cache.1"]


# ---------------------------------------------------------------- hooks


def test_hook_relative_to_the_rules_file(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    hook = executable(tmp_path / "hooks" / "notify")
    (tmp_path / "rules").mkdir()
    file = tmp_path / "rules" / "x.toml"
    text = rule('on = "STOPPED"', 'actions = [{ hook = "../hooks/notify", timeout = "2s" }]')
    r = parse_one(text, file)
    (action,) = r.actions
    assert action == Action("hook", 5, argument=str(hook.resolve()), timeout=2.0)


def test_hook_by_absolute_path_without_timeout(tmp_path: Path) -> None:
    hook = executable(tmp_path / "notify")
    r = parse_one(rule('on = "STOPPED"', f'actions = [{{ hook = "{hook}" }}]'))
    assert r.actions == (Action("hook", 5, argument=str(hook)),)


def test_hook_that_is_not_executable(tmp_path: Path) -> None:
    hook = executable(tmp_path / "notify", mode=0o644)
    text = rule('on = "STOPPED"', "actions = [", '    { log = "x" },',
                f'    {{ hook = "{hook}" }},', "]")
    assert the_error(text) == (7, f"hook {hook} is not executable")


def test_hook_that_does_not_exist(tmp_path: Path) -> None:
    text = rule('on = "STOPPED"', 'actions = [{ hook = "missing" }]')
    assert the_error(text, tmp_path / "x.toml") == (5, "hook missing does not exist")


def test_hook_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    text = rule('on = "STOPPED"', 'actions = [{ hook = "hooks" }]')
    assert the_error(text, tmp_path / "x.toml") == (5, "hook hooks does not exist")


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ('"hook"', "hook needs a value"),
        ('{ hook = "" }', "hook takes the path of an executable"),
        ('{ hook = 5 }', "hook takes the path of an executable"),
        ('{ hook = "notify", timeout = "soon" }', "hook timeout: bad duration 'soon'"),
        ('{ hook = "notify", retries = 3 }', "unknown key 'retries' in the hook action"),
    ],
)
def test_bad_hook_actions(tmp_path: Path, action: str, fragment: str) -> None:
    executable(tmp_path / "notify")
    line, reason = the_error(rule('on = "STOPPED"', f"actions = [{action}]"), tmp_path / "x.toml")
    assert line == 5
    assert fragment in reason


def test_hook_timeout_may_come_first(tmp_path: Path) -> None:
    hook = executable(tmp_path / "notify")
    rules, errors = parse_text(
        rule('on = "STOPPED"', 'actions = [{ timeout = "5s", hook = "notify" }]'),
        tmp_path / "x.toml")
    assert [str(e) for e in errors] == []
    assert rules[0].actions == (Action("hook", 5, argument=str(hook), timeout=5.0),)


# ---------------------------------------------------------------- sub-tables and layout


def test_backoff_as_a_sub_table() -> None:
    text = rule('restart = "always"', 'containers = "web-*"', "", "[rule.backoff]",
                'initial = "1s"', "factor = 3", 'max = "20s"', "",
                "[[rule]]", 'name = "second"', 'restart = "on-failure"')
    rules, errors = parse_text(text, FILE)
    assert errors == []
    first, second = rules
    assert isinstance(first.trigger, RestartPolicy)
    assert first.trigger.backoff == Backoff(initial=1.0, factor=3.0, max=20.0, jitter=0.0)
    assert first.containers == Selector(glob="web-*")
    assert (first.line, second.line) == (2, 12)
    assert second.trigger == RestartPolicy(kind="on-failure")


def test_mistake_in_a_backoff_sub_table_is_at_its_key() -> None:
    text = rule('restart = "always"', "", "[rule.backoff]", 'initial = "1s"',
                'max = "10 parsecs"')
    assert the_error(text) == (
        8, "backoff.max: bad duration '10 parsecs' (use e.g. 500ms, 10s, 5m, 1h)")


def test_unknown_key_in_a_backoff_sub_table_is_at_its_line() -> None:
    text = rule('restart = "always"', "[rule.backoff]", 'initial = "1s"', "steps = 4")
    line, reason = the_error(text)
    assert line == 7
    assert reason.startswith("unknown key 'steps' in backoff")


def test_keys_of_the_next_rule_are_not_the_sub_table_s() -> None:
    text = rule('restart = "always"', "[rule.backoff]", 'initial = "1s"',
                "[[rule]]", 'name = "second"', 'on = "RUNNING"', 'actions = ["stopp"]')
    assert the_error(text)[0] == 10


def test_condition_as_a_sub_table() -> None:
    text = rule('on = "STOPPED"', 'actions = ["start"]', "[rule.condition]",
                "exit_code = [1, 2]", 'signal = ["TERM", 9]', 'state = ["STOPPED", "FROZEN"]',
                "exit = 3")
    assert the_error(text)[0] == 10
    ok = parse_one(text.replace("exit = 3", 'exit = "failure"'))
    assert ok.condition == Condition(
        states=frozenset({S.STOPPED, S.FROZEN}), exit="failure", exit_codes=frozenset({1, 2}),
        signals=frozenset({int(signal.SIGTERM), 9}),
    )


def test_mistake_in_a_dotted_key_is_at_its_line() -> None:
    text = rule('restart = "always"', 'backoff.initial = "10 parsecs"')
    line, reason = the_error(text)
    assert reason.startswith("backoff.initial: bad duration")
    assert line == 5


def test_a_multi_line_string_does_not_move_the_name() -> None:
    text = (
        "# c\n"                         # 1
        "[[rule]]\n"                    # 2
        'description = """\n'           # 3
        'name = "looks like a key"\n'   # 4
        '"""\n'                         # 5
        'name = "bad name"\n'           # 6
        'on = "RUNNING"\n'              # 7
        'actions = ["stop"]\n'          # 8
    )
    line, reason = the_error(text)
    assert reason.startswith("bad rule name")
    assert line == 6


def test_errors_of_several_rules_each_at_their_line_and_good_rules_kept() -> None:
    text = (
        "[[rule]]\n"                     # 1
        'name = "one"\n'                 # 2
        'every = "1 day"\n'              # 3
        'actions = ["stop"]\n'           # 4
        "\n"                             # 5
        "[[rule]]\n"                     # 6
        'name = "two"\n'                 # 7
        'on = "RUNNING"\n'               # 8
        'actions = ["freeze"]\n'         # 9
        "\n"                             # 10
        "[[rule]]\n"                     # 11
        'name = "three"\n'               # 12
        'restart = "always"\n'           # 13
        "backoff = { jitter = -1 }\n"    # 14
    )
    rules, errors = parse_text(text, FILE)
    assert [r.name for r in rules] == ["two"]
    assert rules[0].line == 6
    assert [e.details["line"] for e in errors] == [3, 14]
    assert "every: bad duration '1 day'" in str(errors[0])
    assert "jitter must be a number in 0..1" in str(errors[1])


def test_same_key_names_in_two_rules_are_told_apart() -> None:
    text = (
        '[[rule]]\nname = "one"\non = "RUNNING"\nactions = ["stop"]\n'
        '[[rule]]\nname = "two"\non = "RUNNNG"\nactions = ["stop"]\n'
    )
    assert the_error(text)[0] == 7


# ---------------------------------------------------------------- file-level mistakes


def test_duplicate_rule_names_in_one_file() -> None:
    text = rule('on = "RUNNING"', 'actions = ["stop"]', "", "[[rule]]", 'name = "r"',
                'every = "1m"', 'actions = ["freeze"]')
    rules, errors = parse_text(text, FILE)
    assert [r.name for r in rules] == ["r", "r"]
    assert [str(e) for e in errors] == [f"{FILE}:7: rule 'r' is defined twice (also at line 2)"]
    with pytest.raises(RuleError, match=r":7: rule 'r' is defined twice"):
        load_text(text.encode(), FILE)


def test_invalid_toml_is_reported_at_tomllib_s_line() -> None:
    line, reason = the_error('# c\n[[rule]]\nname = "r"\non = \nactions = ["stop"]\n')
    assert line == 4
    assert reason.startswith("not valid TOML: Invalid value")
    assert "(at line" not in reason


def test_a_key_given_twice_is_invalid_toml() -> None:
    line, reason = the_error(rule('on = "RUNNING"', 'on = "STOPPED"', 'actions = ["stop"]'))
    assert line == 5
    assert reason.startswith("not valid TOML")


def test_non_utf8_bytes() -> None:
    with pytest.raises(RuleError) as info:
        load_text(rule('on = "RUNNING"', 'actions = [{ log = "caf\xe9" }]').encode("latin-1"),
                  FILE)
    assert str(info.value).startswith(f"{FILE}: not UTF-8 text: ")
    assert info.value.details["line"] is None


def test_unknown_top_level_key_and_table() -> None:
    text = ('version = 2\n[[rule]]\nname = "r"\non = "RUNNING"\nactions = ["stop"]\n'
            "[server]\nx = 1\n")
    rules, errors = parse_text(text, FILE)
    assert [r.name for r in rules] == ["r"]
    assert [str(e) for e in errors] == [
        f"{FILE}:1: unknown key 'version' (a rules file holds [[rule]] tables)",
        f"{FILE}:6: unknown table 'server' (a rules file holds [[rule]] tables)",
    ]


def test_unknown_dotted_table_has_a_line() -> None:
    line, reason = the_error('# c\n[server.web]\nport = 1\n')
    assert reason.startswith("unknown table 'server'")
    assert line == 2


def test_rule_as_a_single_table() -> None:
    assert the_error('# c\n[rule]\nname = "r"\n') == (
        2, "rule must be written [[rule]] (a list of tables)")


def test_rule_as_a_list_of_numbers_is_a_rule_error() -> None:
    rules, errors = parse_text("rule = [1]\n", FILE)
    assert rules == []
    assert len(errors) == 1
    assert str(errors[0]).startswith(f"{FILE}:1: ")


def test_empty_file_has_no_rules_and_no_mistakes() -> None:
    assert parse_text("# nothing yet\n", FILE) == ([], [])
    assert load_text(b"", FILE) == []


# ---------------------------------------------------------------- directories


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_directory_reads_toml_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "b.toml", rule('on = "RUNNING"', 'actions = ["stop"]').replace('"r"', '"b"'))
    write(tmp_path / "a.toml", rule('every = "1m"', 'actions = ["stop"]').replace('"r"', '"a"'))
    write(tmp_path / ".hidden.toml", "this is not toml")
    write(tmp_path / "notes.txt", "this is not toml")
    (tmp_path / "dir.toml").mkdir()

    rules, errors = check_directory(tmp_path)

    assert errors == []
    assert [(r.name, r.file) for r in rules] == [("a", tmp_path / "a.toml"),
                                                 ("b", tmp_path / "b.toml")]
    assert isinstance(rules[0].trigger, Every)
    assert rules[0].trigger.interval == 60.0


def test_check_directory_duplicates_across_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.toml", rule('on = "RUNNING"', 'actions = ["stop"]'))
    b = write(tmp_path / "b.toml", "\n\n" + rule('every = "1m"', 'actions = ["stop"]'))

    rules, errors = check_directory(tmp_path)

    assert [r.file for r in rules] == [a, b]
    assert [str(e) for e in errors] == [f"{b}:4: rule 'r' is already defined at {a}:2"]


def test_check_directory_collects_every_file_s_mistakes(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", rule('on = "RUNNING"', 'actions = ["stopp"]'))
    write(tmp_path / "b.toml", "[[rule]\n")
    write(tmp_path / "c.toml", rule('on = "RUNNING"', 'actions = ["stop"]').replace('"r"', '"c"'))

    rules, errors = check_directory(tmp_path)

    assert [r.name for r in rules] == ["c"]
    assert [(e.details["file"], e.details["line"]) for e in errors] == [
        (str(tmp_path / "a.toml"), 5), (str(tmp_path / "b.toml"), 1),
    ]


def test_check_directory_reports_a_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_bytes(b'[[rule]]\nname = "caf\xe9"\n')
    rules, errors = check_directory(tmp_path)
    assert rules == []
    assert len(errors) == 1
    assert str(errors[0]).startswith(f"{path}: not UTF-8 text: ")


def test_check_directory_on_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"/nope: no such directory$"):
        check_directory(tmp_path / "nope")


# ---------------------------------------------------------------- value helpers


@pytest.mark.parametrize(
    ("value", "cores"),
    [("5%", 0.05), (5, 0.05), ("90%", 0.9), (" 1.5 % ", 0.015), ("150%", 1.5), (0, 0.0),
     (2.5, 0.025)],
)
def test_cpu_share(value: object, cores: float) -> None:
    assert cpu_share(value) == pytest.approx(cores)


@pytest.mark.parametrize("value", ["5", "five%", "-5%", "%", "", True, -1, None])
def test_cpu_share_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="bad CPU share"):
        cpu_share(value)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("256M", 256 * 2**20), ("1GiB", 2**30), ("512k", 512 * 1024), ("1G", 2**30),
        ("2T", 2 * 2**40), ("100", 100), ("100B", 100), ("4 KiB", 4096), ("3mb", 3 * 2**20),
        (0, 0), (4096, 4096),
    ],
)
def test_byte_count(value: object, count: int) -> None:
    result = byte_count(value)
    assert isinstance(result, int)
    assert result == count


@pytest.mark.parametrize(
    "value", ["1.5G", "-1M", "1P", "M", "", "lots", 1.0, -1, True, None],
)
def test_byte_count_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="bad size"):
        byte_count(value)


# ---------------------------------------------------------------- model: selectors, triggers


@pytest.mark.parametrize(
    ("selector", "name", "matches"),
    [
        (Selector(), "anything", True),
        (Selector(glob="web-*"), "web-1", True),
        (Selector(glob="web-*"), "db-web-1", False),
        (Selector(glob="web-*"), "WEB-1", False),
        (Selector(glob="db"), "db", True),
        (Selector(glob="db"), "db2", False),
        (Selector(glob="web-[0-9]"), "web-7", True),
        (Selector(glob="web-[0-9]"), "web-x", False),
        (Selector(glob="web-?"), "web-12", False),
        (Selector(glob=None), "web", False),
        (Selector(glob=None, regex=re.compile("^svc-[a-z]+$")), "svc-api", True),
        (Selector(glob=None, regex=re.compile("^svc-[a-z]+$")), "svc-api2", False),
        (Selector(glob=None, regex=re.compile("cache")), "redis-cache-1", True),
        (Selector(glob="*", regex=re.compile("^db$")), "web", False),
    ],
)
def test_selector_matches(selector: Selector, name: str, matches: bool) -> None:
    assert selector.matches(name) is matches


def test_selector_text() -> None:
    assert str(Selector(glob="web-*")) == "web-*"
    assert str(Selector(glob=None, regex=re.compile("^a"))) == "/^a/"


def test_on_transition_fires_on_its_target_states() -> None:
    on = OnTransition(to=frozenset({S.STOPPED, S.FROZEN}))
    assert on.fires(event(S.STOPPING, S.STOPPED))
    assert on.fires(event(S.FREEZING, S.FROZEN))
    assert not on.fires(event(S.STARTING, S.RUNNING))


def test_on_transition_from_narrows_it() -> None:
    on = OnTransition(to=frozenset({S.RUNNING}), from_=frozenset({S.FROZEN}))
    assert on.fires(event(S.FROZEN, S.RUNNING))
    assert not on.fires(event(S.STARTING, S.RUNNING))
    assert not on.fires(event(S.FREEZING, S.RUNNING))


def test_on_transition_ignores_notices() -> None:
    assert not OnTransition(to=frozenset({S.STOPPED})).fires(event(S.STOPPED, S.STOPPED))
    assert not OnTransition(to=frozenset({S.RUNNING}), from_=frozenset({S.RUNNING})).fires(
        event(S.RUNNING, S.RUNNING))


@pytest.mark.parametrize(
    ("cpu", "memory", "pids", "holds"),
    [
        (0.01, 300, 10, True),
        (0.05, 300, 10, False),   # cpu not below 0.05
        (0.01, 100, 10, False),   # memory not above 100
        (0.01, 300, 5, False),    # pids not above 5
        (None, 300, 10, False),   # unreadable cpu
        (0.01, None, 10, False),  # unreadable memory
        (0.01, 300, None, False),  # unreadable pids
    ],
)
def test_sample_holds_only_when_every_threshold_does(
    cpu: float | None, memory: int | None, pids: int | None, holds: bool
) -> None:
    sample = Sample(every=1.0, duration=5.0, cpu_below=0.05, memory_above=100, pids_above=5)
    assert sample.holds(cpu, memory, pids) is holds


def test_sample_ignores_figures_it_has_no_threshold_for() -> None:
    busy = Sample(every=1.0, duration=1.0, cpu_above=0.9)
    assert busy.holds(0.95, None, None)
    assert not busy.holds(0.9, None, None)
    assert not busy.holds(None, 10**9, 10**4)
    assert Sample(every=1.0, duration=1.0).holds(None, None, None)


# ---------------------------------------------------------------- model: conditions


@pytest.mark.parametrize(
    ("condition", "code", "sig", "holds"),
    [
        (Condition(exit="failure"), 1, None, True),
        (Condition(exit="failure"), None, 9, True),
        (Condition(exit="failure"), 0, None, False),
        (Condition(exit="failure"), None, None, False),
        (Condition(exit="success"), 0, None, True),
        (Condition(exit="success"), 0, 15, False),
        (Condition(exit="success"), 2, None, False),
        (Condition(exit="success"), None, None, False),
        (Condition(exit_codes=frozenset({1, 2})), 2, None, True),
        (Condition(exit_codes=frozenset({1, 2})), 3, None, False),
        (Condition(exit_codes=frozenset({1, 2})), None, 9, False),
        (Condition(signals=frozenset({9, 15})), None, 15, True),
        (Condition(signals=frozenset({9, 15})), None, 2, False),
        (Condition(signals=frozenset({9, 15})), 1, None, False),
        (Condition(exit="failure", exit_codes=frozenset({0})), 0, None, False),
        (Condition(), None, None, True),
    ],
)
def test_condition_on_the_event(
    condition: Condition, code: int | None, sig: int | None, holds: bool
) -> None:
    assert condition.holds(S.STOPPED, event(S.STOPPING, S.STOPPED, code, sig)) is holds


def test_condition_states() -> None:
    c = Condition(states=frozenset({S.RUNNING, S.FROZEN}))
    assert c.holds(S.RUNNING, None)
    assert c.holds(S.FROZEN, event(S.FREEZING, S.FROZEN))
    assert not c.holds(S.STOPPED, None)


def test_condition_without_an_event() -> None:
    assert not Condition(exit="failure").holds(S.RUNNING, None)
    assert not Condition(exit_codes=frozenset({0})).holds(S.RUNNING, None)
    assert not Condition(signals=frozenset({9})).holds(S.RUNNING, None)
    assert Condition(states=frozenset({S.RUNNING})).holds(S.RUNNING, None)


def test_rule_applies_needs_selector_and_condition() -> None:
    r = Rule(name="r", file=FILE, line=2, containers=Selector(glob="web-*"),
             trigger=OnTransition(to=frozenset({S.STOPPED})), condition=Condition(exit="failure"))
    failed = event(S.STOPPING, S.STOPPED, 1)
    assert r.applies("web-1", S.STOPPED, failed)
    assert not r.applies("db", S.STOPPED, failed)
    assert not r.applies("web-1", S.STOPPED, event(S.STOPPING, S.STOPPED, 0))
    plain = Rule(name="p", file=FILE, line=2, containers=Selector(), trigger=Every(1.0))
    assert plain.applies("db", S.RUNNING)


# ---------------------------------------------------------------- model: restart policies


@pytest.mark.parametrize(
    ("code", "sig", "on_failure"),
    [(0, None, False), (1, None, True), (255, None, True), (None, 9, True), (0, 15, True),
     (None, None, False)],
)
def test_wants_restart(code: int | None, sig: int | None, on_failure: bool) -> None:
    assert RestartPolicy(kind="on-failure").wants_restart(code, sig) is on_failure
    assert RestartPolicy(kind="always").wants_restart(code, sig) is True
    assert RestartPolicy(kind="unless-stopped").wants_restart(code, sig) is True


def test_backoff_grows_by_its_factor_up_to_its_cap() -> None:
    b = Backoff(initial=0.5, factor=3.0, max=10.0)
    assert [b.delay(n) for n in range(5)] == pytest.approx([0.5, 1.5, 4.5, 10.0, 10.0])
    assert b.delay(10_000) == 10.0


def test_backoff_defaults() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert b.delay(20) == 30.0


def test_backoff_jitter_band() -> None:
    b = Backoff(initial=1.0, factor=2.0, max=30.0, jitter=0.1)
    below_one = math.nextafter(1.0, 0.0)
    assert b.delay(2, random=0.0) == pytest.approx(3.6)
    assert b.delay(2) == pytest.approx(4.0)
    high = b.delay(2, random=below_one)
    assert high == pytest.approx(4.4)
    assert 4.0 < high <= 4.4
    # the cap comes before the spread
    assert b.delay(10, random=0.0) == pytest.approx(27.0)
    assert b.delay(10, random=below_one) == pytest.approx(33.0)


def test_backoff_without_jitter_ignores_random_and_never_goes_negative() -> None:
    assert Backoff(initial=2.0).delay(0, random=0.0) == 2.0
    assert Backoff(initial=2.0).delay(0, random=0.99) == 2.0
    full = Backoff(initial=2.0, jitter=1.0)
    assert full.delay(0, random=0.0) == 0.0
    assert full.delay(0, random=0.75) == pytest.approx(3.0)


# ---------------------------------------------------------------- health checks


def health_of(text: str) -> Health:
    trigger = parse_one(text).trigger
    assert isinstance(trigger, Health)
    return trigger


def test_example_health_rules() -> None:
    rules = example_rules()
    web = rules["web-alive"].trigger
    assert isinstance(web, Health)
    assert (web.probe, web.every, web.timeout, web.retries, web.start_period) == (
        Probe("http", port=8080, path="/healthz"), 5.0, 2.0, 3, 10.0)
    assert web.backoff == Backoff(initial=1.0, factor=2.0, max=60.0)
    assert rules["db-ready"].actions == ()
    after = rules["app-once-db-is-healthy"].trigger
    assert isinstance(after, OnTransition)
    assert after.verdicts == {"healthy"}


def test_a_health_rule_with_every_key() -> None:
    r = parse_one(rule('containers = "web-*"',
                       'health = { exec = ["/usr/bin/curl", "-fsS", "http://127.0.0.1:8080/"], '
                       'every = "5s", timeout = "2s", retries = 3, start_period = "10s" }',
                       'backoff = { initial = "1s", max = "8s" }', 'actions = ["restart"]'))
    assert r.trigger == Health(
        Probe("exec", command=("/usr/bin/curl", "-fsS", "http://127.0.0.1:8080/")),
        every=5.0, timeout=2.0, retries=3, start_period=10.0,
        backoff=Backoff(initial=1.0, max=8.0))
    assert [str(a) for a in r.actions] == ["restart"]


def test_health_probes_take_docker_defaults_and_need_no_actions() -> None:
    tcp = health_of(rule("health = { tcp = 5432 }"))
    assert tcp == Health(Probe("tcp", port=5432), every=30.0, timeout=30.0, retries=3)
    assert health_of(rule('health = { http = "8080/healthz?full=1" }')).probe == Probe(
        "http", port=8080, path="/healthz?full=1")
    assert health_of(rule('health = { http = "80" }')).probe.path == "/"
    assert str(health_of(rule('health = { http = "80/x" }')).probe) == "http 80/x"


def test_on_healthy_reacts_to_the_verdict_notice_only() -> None:
    on = parse_one(rule('on = "HEALTHY|STOPPED"', 'actions = ["stop"]')).trigger
    assert isinstance(on, OnTransition)
    assert on == OnTransition(to=frozenset({S.STOPPED}), verdicts=frozenset({"healthy"}))
    healthy = Event("db", S.RUNNING, S.RUNNING, Cause.RULE, rule="db", notice="healthy")
    unhealthy = Event("db", S.RUNNING, S.RUNNING, Cause.RULE, rule="db", notice="unhealthy")
    other = Event("db", S.STOPPED, S.STOPPED, Cause.RULE, rule="r", notice="restart_given_up")
    assert on.fires(healthy)
    assert not on.fires(unhealthy)
    assert not on.fires(other)
    assert on.fires(event(S.STOPPING, S.STOPPED))
    assert not on.fires(event(S.STARTING, S.RUNNING))
    only = parse_one(rule('on = ["unhealthy"]', 'actions = ["stop"]')).trigger
    assert isinstance(only, OnTransition)
    assert only.to == frozenset()
    assert only.fires(unhealthy)
    assert not only.fires(healthy)


def two_health_rules(first: str, second: str) -> str:
    return (f'[[rule]]\nname = "a"\ncontainers = "{first}"\nhealth = {{ tcp = 1 }}\n'
            f'[[rule]]\nname = "b"\ncontainers = "{second}"\nhealth = {{ tcp = 2 }}\n')


@pytest.mark.parametrize(("first", "second"), [
    ("web-*", "*"), ("*", "db"), ("web-1", "web-*"), ("web-*", "web-1"), ("db", "db")])
def test_two_health_rules_for_one_container_name_both(first: str, second: str) -> None:
    line, reason = the_error(two_health_rules(first, second))
    assert line == 5
    assert reason == ("health rules 'b' and 'a' (at /r/x.toml:1) both probe the same "
                      "containers: one health rule per container")


def test_health_rules_over_apart_globs_load_and_the_daemon_checks_real_names() -> None:
    rules, errors = parse_text(two_health_rules("web-*", "*-1"), FILE)
    assert errors == []
    assert len(rules) == 2
    clash = health_clash(rules[1:], rules[:1], names=["db-1", "web-2", "web-1"])
    assert clash is not None
    assert "both probe container 'web-1'" in str(clash)
    assert health_clash(rules[1:], rules[:1], names=["db-1", "web-2"]) is None


def test_health_record_follows_dockers_counting() -> None:
    check = Health(Probe("tcp", port=1), every=1.0, retries=2, start_period=10.0)
    record = HealthRecord("r", "tcp 1", started=100.0)
    # Failures within the start period do not count while it is starting...
    assert [record.record(check, False, "refused", t, 0) for t in (101.0, 102.0, 103.0)] == [
        None, None, None]
    assert record.status == "starting"
    assert record.record(check, True, "ok", 104.0, 4) == "healthy"
    # ...but once it passed, they do, start period or not.
    assert record.record(check, False, "refused", 105.0, 5) is None
    assert record.record(check, False, "refused", 106.0, 6) == "unhealthy"
    assert record.record(check, False, "refused", 107.0, 7) is None  # stays unhealthy
    assert record.failures == 3
    assert record.record(check, True, "x" * 5000, 108.0, 8) == "healthy"
    assert record.to_dict()["last_probe_ns"] == 8
    assert len(record.last_output) == 4096


def test_failures_after_the_start_period_count_from_the_first() -> None:
    check = Health(Probe("tcp", port=1), retries=3, start_period=2.0)
    record = HealthRecord("r", "tcp 1", started=0.0)
    verdicts = [record.record(check, False, "", t, 0) for t in (1.0, 2.0, 3.0, 4.0)]
    assert verdicts == [None, None, None, "unhealthy"]
