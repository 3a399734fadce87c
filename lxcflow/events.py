"""The event bus: every transition goes out to every subscriber, in order.

A slow subscriber never blocks the supervisor: each has a bounded buffer and
is told how many events it missed when that buffer overflows.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import trio

from lxcflow.states import Event

log = structlog.get_logger("lxcflow.events")


class Subscription:
    """A subscriber's view of the bus: iterate it, or call :meth:`receive`."""

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

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.receive()


class EventBus:
    """Assigns event ids and fans events out to subscribers."""

    def __init__(self, first_id: int = 1) -> None:
        self._ids = itertools.count(first_id)
        self._subscribers: set[Subscription] = set()

    def publish(self, event: Event) -> Event:
        """Number the event, log it and deliver it; returns the numbered event."""
        event = dataclasses.replace(event, id=next(self._ids))
        log.info(
            "transition",
            container=event.container,
            from_state=event.from_state.value,
            state=event.to_state.value,
            cause=event.cause.value,
            exit_code=event.exit_code,
            signal=event.signal,
            detail=event.detail,
            event_id=event.id,
        )
        for sub in self._subscribers:
            sub._offer(event)
        return event

    @contextmanager
    def subscribe(self, size: int = 1024) -> Iterator[Subscription]:
        sub = Subscription(size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
