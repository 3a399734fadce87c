"""The transition table: what LXC's state machine allows, and nothing else."""

from __future__ import annotations

import pytest

from lxcflow.errors import InvalidTransition
from lxcflow.states import TRANSITIONS, Cause, Event, State, check, parse_cause, parse_states, path

S = State

ALLOWED = {
    (S.STOPPED, S.STARTING),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.ABORTING),
    (S.ABORTING, S.STOPPED),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.FREEZING),
    (S.FREEZING, S.FROZEN),
    (S.FREEZING, S.RUNNING),
    (S.FREEZING, S.STOPPING),
    (S.FROZEN, S.RUNNING),
    (S.FROZEN, S.STOPPING),
    (S.STOPPING, S.STOPPED),
}


@pytest.mark.parametrize("current", list(State))
@pytest.mark.parametrize("wanted", list(State))
def test_table_allows_exactly_the_lxc_transitions(current: State, wanted: State) -> None:
    if (current, wanted) in ALLOWED:
        check(current, wanted)
    else:
        with pytest.raises(InvalidTransition) as err:
            check(current, wanted)
        assert err.value.details == {"current": current.value, "wanted": wanted.value}


def test_every_state_can_reach_stopped() -> None:
    for start in State:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert S.STOPPED in seen or start is S.STOPPED


def test_parse_states_lxc_notation() -> None:
    assert parse_states("RUNNING|frozen") == {S.RUNNING, S.FROZEN}
    with pytest.raises(ValueError, match="unknown state 'RUNING'"):
        parse_states("RUNING|STOPPED")


def test_event_wire_form() -> None:
    e = Event("web", S.RUNNING, S.STOPPING, Cause.KERNEL, time_ns=5, id=3, exit_code=1)
    assert e.to_dict() == {
        "container": "web", "from": "RUNNING", "to": "STOPPING", "cause": "kernel",
        "time_ns": 5, "id": 3, "exit_code": 1, "signal": None, "detail": None,
        "kind": "transition", "notice": None,
    }


def test_a_rules_action_names_the_rule_and_a_notice_changes_no_state() -> None:
    e = Event("web", S.STOPPED, S.STOPPED, Cause.RULE, rule="crash", notice="restart_given_up",
              detail="3 restarts within 60 s")
    assert e.is_notice
    assert e.to_dict()["notice"] == "restart_given_up"
    assert e.to_dict()["cause"] == "rule:crash"
    assert e.to_dict()["kind"] == "notice"
    assert "rule" not in e.to_dict()
    assert parse_cause("rule:crash") == (Cause.RULE, "crash")
    assert parse_cause("kernel") == (Cause.KERNEL, None)


@pytest.mark.parametrize(
    ("start", "end", "steps"),
    [
        (S.RUNNING, S.FROZEN, [S.FREEZING, S.FROZEN]),
        (S.FROZEN, S.RUNNING, [S.RUNNING]),
        (S.RUNNING, S.STOPPED, [S.STOPPING, S.STOPPED]),
        (S.FROZEN, S.STOPPED, [S.STOPPING, S.STOPPED]),
        (S.STARTING, S.STOPPED, [S.ABORTING, S.STOPPED]),
        (S.STARTING, S.FROZEN, [S.RUNNING, S.FREEZING, S.FROZEN]),
        (S.RUNNING, S.RUNNING, []),
    ],
)
def test_path_follows_the_table(start: State, end: State, steps: list[State]) -> None:
    assert path(start, end) == steps
    for before, after in zip([start, *steps], steps, strict=False):
        check(before, after)
