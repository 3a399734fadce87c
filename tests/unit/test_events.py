"""The event bus numbers events in order and never blocks on a slow subscriber."""

from __future__ import annotations

from pathlib import Path

import trio

from lxcflow.daemon.events import EventBus
from lxcflow.runstate import ExitStatus
from lxcflow.states import Cause, Event, State


def event(n: int) -> Event:
    return Event(f"c{n}", State.STOPPED, State.STARTING, Cause.COMMAND)


async def test_ids_are_consecutive_and_delivered_in_order() -> None:
    bus = EventBus()
    with bus.subscribe() as sub:
        sent = [bus.publish(event(i)) for i in range(5)]
        got = [await sub.receive() for _ in range(5)]
    assert [e.id for e in sent] == [1, 2, 3, 4, 5]
    assert got == sent


async def test_a_full_subscriber_misses_events_but_never_blocks() -> None:
    bus = EventBus()
    with bus.subscribe(size=3) as slow, bus.subscribe(size=100) as fast:
        for i in range(10):  # publish is synchronous: it cannot wait for anyone
            bus.publish(event(i))
        assert slow.missed == 7
        assert fast.missed == 0
        assert [(await slow.receive()).container for _ in range(3)] == ["c0", "c1", "c2"]


async def test_unsubscribed_receive_nothing() -> None:
    bus = EventBus()
    with bus.subscribe() as sub:
        pass
    bus.publish(event(1))
    assert sub.missed == 0
    with trio.move_on_after(0.01) as scope:
        await sub.receive()
    assert scope.cancelled_caught


def test_exit_status_file(tmp_path: Path) -> None:
    assert ExitStatus.read(tmp_path) is None
    (tmp_path / "exit").write_text("exit 3\n")
    assert ExitStatus.read(tmp_path) == ExitStatus(code=3, signal=None)
    (tmp_path / "exit").write_text("signal 9\n")
    assert ExitStatus.read(tmp_path) == ExitStatus(code=None, signal=9)
    (tmp_path / "exit").write_text("garbage")
    assert ExitStatus.read(tmp_path) is None
