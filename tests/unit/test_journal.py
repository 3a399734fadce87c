"""The journal on a real sqlite file: numbering, replay, retention, failures."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from lxcflow.daemon.events import EventBus
from lxcflow.daemon.journal import Journal
from lxcflow.states import Cause, Event, State

S = State


def ev(name: str, a: State, b: State, t: int | None = None) -> Event:
    if t is None:
        return Event(name, a, b, Cause.COMMAND)
    return Event(name, a, b, Cause.COMMAND, time_ns=t)


def test_ids_continue_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    assert [j.append(ev("a", S.STOPPED, S.STARTING)) for _ in range(3)] == [1, 2, 3]
    j.close()
    j = Journal(path)
    assert j.append(ev("a", S.STARTING, S.RUNNING)) == 4
    stored = j.since(after_id=2)
    assert [(e.id, e.to_state) for e in stored] == [(3, S.STARTING), (4, S.RUNNING)]
    assert stored[1].cause is Cause.COMMAND


def test_replay_pages_in_order_and_by_time(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    now = time.time_ns()
    for i in range(2500):
        j.append(ev(f"c{i % 3}", S.STOPPED, S.STARTING, t=now + i))
    ids = [e.id for e in j.replay()]
    assert ids == list(range(1, 2501))
    assert [e.id for e in j.replay(from_ns=now + 2400)] == list(range(2401, 2501))
    assert [e.id for e in j.replay(after_id=2498)] == [2499, 2500]


def test_last_states(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.append(ev("a", S.STOPPED, S.STARTING))
    j.append(ev("b", S.STOPPED, S.STARTING))
    j.append(ev("a", S.STARTING, S.RUNNING))
    assert j.last_states() == {"a": S.RUNNING, "b": S.STARTING}


def test_last_stops_and_rule_causes_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    j.append(Event("a", S.RUNNING, S.STOPPING, Cause.COMMAND))
    j.append(Event("a", S.STOPPING, S.STOPPED, Cause.KERNEL))
    j.append(Event("a", S.RUNNING, S.STOPPING, Cause.RULE, rule="memory-guard"))
    j.append(Event("b", S.RUNNING, S.STOPPING, Cause.KERNEL, exit_code=3))
    j.append(Event("b", S.STOPPED, S.STOPPED, Cause.RULE, rule="crash",
                   notice="restart_given_up", detail="given up"))
    j.close()
    j = Journal(path)
    stops = j.last_stops()
    assert (stops["a"].cause, stops["a"].rule) == (Cause.RULE, "memory-guard")
    assert (stops["b"].cause, stops["b"].exit_code) == (Cause.KERNEL, 3)
    assert j.last_states() == {"a": S.STOPPING, "b": S.STOPPED}
    notice = j.since(after_id=4)[0]
    assert notice.cause_text == "rule:crash"
    assert notice.is_notice
    assert (notice.notice, notice.detail) == ("restart_given_up", "given up")


def test_a_journal_from_before_notices_had_a_field_is_migrated(tmp_path: Path) -> None:
    """Version 0 led a notice's detail with its kind; it gets a column of its own."""
    path = tmp_path / "j.db"
    db = sqlite3.connect(path)
    now = time.time_ns()  # retention would drop older events
    db.executescript(f"""
        CREATE TABLE events (id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL,
            container TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
            cause TEXT NOT NULL, exit_code INTEGER, signal INTEGER, detail TEXT);
        INSERT INTO events VALUES (1, {now}, 'web', 'RUNNING', 'STOPPING', 'kernel', 3, NULL, NULL);
        INSERT INTO events VALUES (2, {now}, 'web', 'STOPPED', 'STOPPED', 'rule:crash', NULL,
            NULL, 'restart_given_up: 3 restarts within 60 s');
        INSERT INTO events VALUES (3, {now}, 'web', 'STOPPED', 'STOPPED', 'rule:x', NULL, NULL,
            'log: a: b');
    """)
    db.close()
    j = Journal(path)
    first, given_up, logged = j.since()
    assert (first.notice, first.detail, first.exit_code) == (None, None, 3)
    assert (given_up.notice, given_up.detail) == ("restart_given_up", "3 restarts within 60 s")
    assert (logged.notice, logged.detail) == ("log", "a: b")  # only the first colon splits
    assert j.append(Event("web", S.STOPPED, S.STARTING, Cause.COMMAND)) == 4
    j.close()
    again = Journal(path)  # migrated once: a reopen changes nothing
    assert [e.detail for e in again.since()][1:3] == ["3 restarts within 60 s", "a: b"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone() == (again.epoch,)


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", max_events=100, max_age_s=3600)
    old = time.time_ns() - 7200 * 10**9
    for i in range(50):
        j.append(ev("old", S.STOPPED, S.STARTING, t=old + i))
    for _ in range(120):
        j.append(ev("new", S.STOPPED, S.STARTING))
    j.prune()
    kept = list(j.replay())
    assert len(kept) == 100
    assert {e.container for e in kept} == {"new"}
    assert kept[-1].id == 170


def test_corrupt_file_is_set_aside_and_ids_stay_ahead(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    for _ in range(5):
        j.append(ev("a", S.STOPPED, S.STARTING))
    j.close()
    path.write_bytes(b"this is not a database" * 100)
    j = Journal(path)
    assert j.healthy
    assert j.next_id > 5  # never reuses an id the broken journal handed out
    assert [p.name.startswith("j.db.broken-") for p in tmp_path.iterdir()].count(True) == 1
    first = j.append(ev("a", S.STOPPED, S.STARTING))
    j.close()
    assert Journal(path).next_id == first + 1


def test_full_disk_keeps_numbering_in_memory(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    bus = EventBus(j)
    assert j._db is not None
    # sqlite's own page cap gives the real SQLITE_FULL error path.
    pages = j._db.execute("PRAGMA page_count").fetchone()[0]
    j._db.execute(f"PRAGMA max_page_count = {pages}")
    ids = [bus.publish(ev("a", S.STOPPED, S.STARTING)).id for _ in range(200)]
    assert ids == list(range(1, 201))
    assert not j.healthy
    assert j.since() == []


def test_ids_handed_out_in_memory_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    bus = EventBus(j)
    assert j._db is not None
    pages = j._db.execute("PRAGMA page_count").fetchone()[0]
    j._db.execute(f"PRAGMA max_page_count = {pages}")
    issued = [bus.publish(ev("a", S.STOPPED, S.STARTING)).id for _ in range(200)]
    assert not j.healthy
    again = Journal(path)  # the next daemon; this time the disk has room
    assert again.healthy
    assert again.next_id > max(issued)
    assert EventBus(again).last_id == again.next_id - 1
    assert not (tmp_path / "j.db.unsaved").exists()


def test_bus_numbers_through_the_journal(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.append(ev("a", S.STOPPED, S.STARTING))
    bus = EventBus(j)
    assert bus.publish(ev("a", S.STARTING, S.RUNNING)).id == 2
    assert bus.last_id == 2


def test_unwritable_location_means_memory_only(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.Error):  # what the journal meets there
        sqlite3.connect(tmp_path / "missing-dir" / "x.db")
    j = Journal(tmp_path / "missing-dir" / "j.db")
    assert not j.healthy
    first = j.append(ev("a", S.STOPPED, S.STARTING))
    assert j.append(ev("a", S.STARTING, S.RUNNING)) == first + 1
