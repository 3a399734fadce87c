"""The event bus: every transition goes out to every subscriber, in order.

A slow subscriber never blocks the supervisor: each has a bounded buffer and
is told how many events it missed when that buffer overflows.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import trio

from lxcflow.daemon.journal import Journal
from lxcflow.states import Event, State

log = structlog.get_logger("lxcflow.events")


class Subscription:
    """A subscriber's view of the bus: :meth:`receive` the next event."""

    def __init__(self, size: int) -> None:
        self._send, self._receive = trio.open_memory_channel[Event](size)
        #: events dropped because this subscriber's buffer was full
        self.missed = 0

    def _offer(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.missed += 1

    async def receive(self) -> Event:
        return await self._receive.receive()

    async def receive_counting(self, missed_event: str) -> Event:
        """The next event; events dropped before it are logged as ``missed_event``."""
        event = await self.receive()
        if self.missed:
            log.error(missed_event, missed=self.missed)
            self.missed = 0
        return event

    @property
    def buffered(self) -> int:
        """Events received and not yet read."""
        return self._receive.statistics().current_buffer_used

    def receive_nowait(self) -> Event | None:
        """The next buffered event, or None if there is none."""
        try:
            return self._receive.receive_nowait()
        except trio.WouldBlock:
            return None


class EventBus:
    """Numbers events (through the journal when there is one) and fans them out.

    Args:
        journal: where events are stored and numbered; None keeps ids in memory.
    """

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self._ids = itertools.count(1)
        self._subscribers: set[Subscription] = set()
        self._changed = trio.Event()
        #: id of the last event published (0: none ever)
        self.last_id = journal.next_id - 1 if journal else 0
        #: transitions published, by the state they went to; notices, by kind
        self.transitions_to: collections.Counter[State] = collections.Counter()
        self.notices: collections.Counter[str] = collections.Counter()

    def publish(self, event: Event) -> Event:
        """Number the event, store, log and deliver it; returns the numbered event."""
        event_id = self.journal.append(event) if self.journal else next(self._ids)
        event = dataclasses.replace(event, id=event_id)
        self.last_id = event_id
        if event.is_notice:
            self.notices[event.notice or ""] += 1
            log.info("notice", container=event.container, notice=event.notice,
                     state=event.to_state.value, cause=event.cause_text, detail=event.detail,
                     event_id=event.id)
        else:
            self.transitions_to[event.to_state] += 1
            log.info(
                "transition",
                container=event.container,
                from_state=event.from_state.value,
                state=event.to_state.value,
                cause=event.cause_text,
                exit_code=event.exit_code,
                signal=event.signal,
                detail=event.detail,
                event_id=event.id,
            )
        for sub in self._subscribers:
            sub._offer(event)
        self.poke()
        return event

    def poke(self) -> None:
        """Wake :meth:`wait_changed` callers (also for changes that are not
        transitions, such as a container created or destroyed)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Return after the next publish or poke."""
        await self._changed.wait()

    @contextmanager
    def subscribe(self, size: int = 1024) -> Iterator[Subscription]:
        """Receive every event published from now on (at most ``size`` unread)."""
        sub = Subscription(size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
