"""This host's current states in the fleet's bucket, and its heartbeat.

Each container's key (``<host>.<container>``) holds what ``ls`` shows of it
(state, pid, last exit, health).
Each transition is a put of its own, in order, with the state it went to
(the rest of the row as the container is now), so a watcher elsewhere sees
every state; a health verdict rewrites the row. Containers created or
destroyed (which publish no transition) are found by comparing everything,
on a poke and every 5 s. At a (re)connect only the current rows are
written: what happened while NATS was away collapses to one put per
container (the events themselves are all in the stream).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import structlog
import trio

from lxcflow.daemon import views
from lxcflow.daemon.fleet import naming
from lxcflow.daemon.fleet.view import FleetView
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.nats.jetstream import JetStream
from lxcflow.states import State

log = structlog.get_logger("lxcflow.fleet")

#: seconds between heartbeats (a host is lost after three are missed)
HEARTBEAT_S = 5.0


class StateBook:
    """Writes ``sup``'s containers under ``host`` in ``bucket``."""

    def __init__(self, sup: Supervisor, host: str, bucket: str) -> None:
        self.sup = sup
        self.host = host
        self.bucket = bucket
        #: container -> the row last written (this connection)
        self._written: dict[str, dict[str, Any]] = {}

    def row(self, name: str, state: State | None = None) -> dict[str, Any] | None:
        """What ``name``'s key should hold now (None: it should not exist),
        with ``state`` in place of the current one if given."""
        c = self.sup.containers.get(name)
        if c is None:
            return None
        row: dict[str, Any] = views.summary(c)
        row["host"] = self.host
        if state is not None:
            row["state"] = state.value
        del row["ipv4"], row["ephemeral"]
        return row

    def _change(self, name: str, state: State | None = None) -> tuple[str, bytes | None] | None:
        """The put (a value) or delete (None) that brings ``name``'s key up
        to date, if any; counted as written."""
        row = self.row(name, state)
        old = self._written.get(name)
        key = naming.state_key(self.host, name)
        if row is None and old is not None:
            del self._written[name]
            return key, None
        if row is not None and row != old:
            self._written[name] = row
            return key, json.dumps(row, separators=(",", ":")).encode()
        return None

    async def _write(self, js: JetStream, changes: list[tuple[str, bytes | None] | None]) -> None:
        # In order and in one round trip; a failure ends the session, and
        # the next one compares everything again.
        todo = [change for change in changes if change is not None]
        if todo:
            await js.put_many(self.bucket, todo)

    async def _write_all(self, js: JetStream) -> None:
        await self._write(js, [self._change(name) for name in
                               sorted(set(self.sup.containers) | set(self._written))])

    async def run(self, js: JetStream, view: FleetView) -> None:
        """Keep the bucket up to date until the connection ends."""
        self._written.clear()
        await self.sup.ready.wait()  # before adoption, states are not known yet
        await view.caught_up.wait()
        # What the bucket holds for this host, so stale keys are deleted too.
        for (host, name), entry in list(view.entries.items()):
            if host == self.host:
                self._written[name] = entry.value
        with self.sup.bus.subscribe(size=65536) as sub:
            await self._write_all(js)
            while True:
                events = []
                while (event := sub.receive_nowait()) is not None:
                    events.append(event)
                if events:
                    # One put per transition, in order: a watcher elsewhere
                    # sees each state, even one held for an instant.
                    await self._write(js, [self._change(
                        e.container, None if e.is_notice else e.to_state) for e in events])
                elif sub.missed:
                    sub.missed = 0
                    await self._write_all(js)
                else:
                    with trio.move_on_after(HEARTBEAT_S):
                        await self.sup.bus.wait_changed()
                    if not sub.buffered:  # a poke (created, destroyed), or time for a check
                        await self._write_all(js)

    async def heartbeat(self, js: JetStream) -> None:
        """Say this host is alive, every :data:`HEARTBEAT_S`, until the connection ends."""
        while True:
            body = {"host": self.host, "time_ns": time.time_ns(), "pid": os.getpid()}
            await js.put_many(self.bucket, [(self.host, json.dumps(body).encode())])
            await trio.sleep(HEARTBEAT_S)
