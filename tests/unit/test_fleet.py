"""The fleet's pure parts: names in NATS, the mirror and waits on it, the
journal's bookkeeping for publishing, remote triggers in rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing

from lxcflow.daemon.fleet import naming
from lxcflow.daemon.fleet.view import FleetView
from lxcflow.daemon.fleet.waiting import wait
from lxcflow.daemon.journal import Journal
from lxcflow.errors import OperationTimeout, UsageError
from lxcflow.nats.jetstream import KV_OPERATION
from lxcflow.rules.parse import parse_text
from lxcflow.states import Cause, Event, State
from lxcflow.validate import host_name, remote_name

S = State


def test_subjects_keys_and_message_ids() -> None:
    assert naming.event_subject("host-a", "web.1") == "lxcflow.event.host-a.web=2E1"
    assert naming.split_event_subject("lxcflow.event.host-a.web=2E1") == ("host-a", "web.1")
    assert naming.split_event_subject("lxcflow.other.a.b") is None
    assert naming.state_key("h", "db.x") == "h.db=2Ex"
    assert naming.split_key("h.db=2Ex") == ("h", "db.x")
    assert naming.split_key("h") == ("h", None)  # the heartbeat
    assert naming.parse_message_id(naming.message_id("h", "ab12", 42)) == ("h", "ab12", 42)
    assert naming.parse_message_id("junk") is None


def test_host_names_and_host_name_pairs() -> None:
    assert host_name("host-a_1") == "host-a_1"
    assert remote_name("host-a:web.1") == ("host-a", "web.1")
    assert remote_name("web") == (None, "web")
    for bad in ("", "a.b", "a b", "x" * 65):
        with pytest.raises(UsageError):
            host_name(bad)
    with pytest.raises(UsageError, match="'a.b:web': invalid host name 'a.b'"):
        remote_name("a.b:web")
    with pytest.raises(UsageError, match="invalid container name"):
        remote_name("a:")


def put(view: FleetView, host: str, name: str, state: str, rev: int,
        health: str | None = None) -> None:
    value = json.dumps({"name": name, "state": state, "health": health}).encode()
    view.apply(naming.state_key(host, name), value, {}, rev)


async def test_a_wait_counts_a_state_held_for_an_instant_and_names_made_later() -> None:
    view = FleetView()
    put(view, "a", "db", "STOPPED", 1)

    async def changes() -> None:
        await trio.testing.wait_all_tasks_blocked()
        # Applied back to back, before the waiter runs: both were RUNNING at
        # once only between revisions 4 and 5.
        put(view, "a", "db", "STARTING", 2)
        put(view, "b", "late", "RUNNING", 3)  # a name that did not exist
        put(view, "a", "db", "RUNNING", 4)
        put(view, "a", "db", "STOPPING", 5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(changes)
        reached = await wait(view, [("a", "db"), ("b", "late")],
                             frozenset({S.RUNNING}), deadline=trio.current_time() + 5)
    assert reached == {"a:db": "RUNNING", "b:late": "RUNNING"}


async def test_a_wait_times_out_naming_what_is_missing_and_deletes_count() -> None:
    view = FleetView()
    put(view, "a", "db", "RUNNING", 1, health="starting")
    with pytest.raises(OperationTimeout, match="waiting for a:db to be RUNNING and healthy"):
        await wait(view, [("a", "db")], frozenset({S.RUNNING}),
                   deadline=trio.current_time() + 0.05, healthy=True)
    view.apply(naming.state_key("a", "db"), b"", {KV_OPERATION: "DEL"}, 2)
    assert ("a", "db") not in view.entries
    view.apply("a", b"{}", {}, 10**18)
    assert view.heartbeats == {"a": 10**18}
    assert not view.lost("a", now_ns=10**18 + 14 * 10**9)
    assert view.lost("a", now_ns=10**18 + 16 * 10**9)
    assert view.lost("never-seen")


def test_the_journal_keeps_an_epoch_and_holds_what_is_unpublished(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, max_events=2, hold_unpublished=True)
    epoch = j.epoch
    for _ in range(5):
        j.append(Event("a", S.STOPPED, S.STARTING, Cause.COMMAND))
    j.set_published(1)
    j.prune()
    # Retention would keep 2; events after the last acknowledged (1) stay.
    assert [e.id for e in j.since()] == [2, 3, 4, 5]
    j.set_published(3)
    j.close()
    # Reopened with the hold (a daemon with --nats): its first prune holds too.
    again = Journal(path, max_events=1, hold_unpublished=True)
    assert again.epoch == epoch
    assert again.published() == 3
    assert [e.id for e in again.since()] == [4, 5]
    again.new_epoch()  # what was acknowledged stays so under the new epoch
    assert again.epoch != epoch
    assert again.published() == 3
    epoch = again.epoch
    again.close()
    # Without it (a daemon started without --nats), retention alone decides.
    assert [e.id for e in Journal(path, max_events=1).since()] == [5]
    path.unlink()
    fresh = Journal(path)
    assert fresh.epoch != epoch  # a replaced journal is a new epoch
    assert fresh.published() == 0


def test_event_wire_form_round_trips() -> None:
    event = Event("web", S.RUNNING, S.STOPPING, Cause.RULE, rule="r", time_ns=5, id=9,
                  exit_code=None, signal=15, detail="d")
    assert Event.from_dict(event.to_dict()) == event
    with pytest.raises(ValueError, match="not an event"):
        Event.from_dict({"container": "x"})


def rule_text(containers: str, body: str) -> str:
    return f'[[rule]]\nname = "r"\ncontainers = "{containers}"\n{body}'


@pytest.mark.parametrize(("body", "line", "said"), [
    ('on = "RUNNING"\nactions = ["stop"]\n', 5,
     'stop would act on host-a:db, which is on another host: actions act here, so name the '
     'container, as { stop = "NAME" }'),
    ('on = "RUNNING"\nactions = [{ log = "x" },\n  { kill = "TERM" }]\n', 6, "kill would act"),
    ('on = "RUNNING"\nactions = [{ priority = 10 }]\n', 5, "priority would act"),
    ('restart = "always"\n', 3, "only an on = ... rule may name another host's container"),
    ('on = "FROZEN"\nactions = [{ start = "x" }]\nwake_on = "traffic"\n', None,
     "wake_on"),
])
def test_a_remote_trigger_with_an_action_on_it_is_a_load_error(
        body: str, line: int | None, said: str) -> None:
    rules, errors = parse_text(rule_text("host-a:db", body), Path("/r/x.toml"))
    assert rules == []
    assert len(errors) == 1
    assert said in str(errors[0])
    if line is not None:
        assert str(errors[0]).startswith(f"/r/x.toml:{line}:")


def test_a_remote_trigger_parses_with_local_actions() -> None:
    rules, errors = parse_text(rule_text("host-a:db-*", 'on = "RUNNING"\nactions = '
                                         '[{ start = "app" }, { log = "db up" }]\n'),
                               Path("/r/x.toml"))
    assert errors == []
    (rule,) = rules
    assert str(rule.containers) == "host-a:db-*"
    assert rule.applies("db-1", S.RUNNING, host="host-a")
    assert not rule.applies("db-1", S.RUNNING)  # a local db-1 is another container
    assert not rule.applies("db-1", S.RUNNING, host="host-b")
    _, errors = parse_text(rule_text("bad.host:db", 'on = "RUNNING"\nactions = ["stop"]\n'),
                           Path("/r/x.toml"))
    assert "invalid host name 'bad.host'" in str(errors[0])
