"""Every host's containers, as the fleet's key-value bucket has them, mirrored here.

One consumer per connection reads the bucket: first the last value of
every key, then each change as it is made, in the stream's order. Waits
and ``ls --fleet`` read this mirror. A wait subscribes before it reads the
mirror and then applies each change in order, so a state that held for an
instant still counts and nothing falls between the read and the watch.
While NATS is away the mirror stays as it was last seen (hosts go ``lost``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from lxcflow.daemon.fleet import naming
from lxcflow.nats.jetstream import KV_OPERATION, JetStream

log = structlog.get_logger("lxcflow.fleet")

#: a host whose heartbeat is older than this is ``lost``
LOST_AFTER_S = 15.0


@dataclass(frozen=True, slots=True)
class Entry:
    """A container's last published row."""

    host: str
    name: str
    value: dict[str, Any]

    @property
    def state(self) -> str | None:
        return self.value.get("state")

    @property
    def healthy(self) -> bool:
        return self.value.get("state") == "RUNNING" and self.value.get("health") == "healthy"


@dataclass(frozen=True, slots=True)
class Change:
    """One key's new value (``entry`` None: deleted)."""

    key: tuple[str, str]
    entry: Entry | None


class FleetView:
    """The mirror; fed by :meth:`follow` while connected."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}
        #: host -> time (ns since the epoch, by the server) of its last heartbeat
        self.heartbeats: dict[str, int] = {}
        self._watchers: set[trio.MemorySendChannel[Change]] = set()
        #: set once the first full read of the bucket is in
        self.caught_up = trio.Event()

    def lost(self, host: str, now_ns: int | None = None) -> bool:
        seen = self.heartbeats.get(host)
        now = time.time_ns() if now_ns is None else now_ns
        return seen is None or now - seen > LOST_AFTER_S * 1e9

    @contextmanager
    def watch(self) -> Iterator[trio.MemoryReceiveChannel[Change]]:
        """Every change from now on, in order (read the mirror after this)."""
        send, receive = trio.open_memory_channel[Change](math.inf)
        self._watchers.add(send)
        try:
            yield receive
        finally:
            self._watchers.discard(send)

    def apply(self, key: str, data: bytes, headers: dict[str, str], time_ns: int) -> None:
        """One message of the bucket (``time_ns``: when the server took it)."""
        host, name = naming.split_key(key)
        if name is None:
            self.heartbeats[host] = time_ns
            return
        if headers.get(KV_OPERATION) in ("DEL", "PURGE"):
            self._drop((host, name))
            return
        try:
            entry = Entry(host, name, json.loads(data))
        except ValueError:
            log.warning("fleet_bad_state", key=key)
            return
        self.entries[(host, name)] = entry
        self._tell(Change((host, name), entry))

    def _drop(self, key: tuple[str, str]) -> None:
        if self.entries.pop(key, None) is not None:
            self._tell(Change(key, None))

    def _tell(self, change: Change) -> None:
        for watcher in self._watchers:
            watcher.send_nowait(change)

    async def follow(self, js: JetStream, bucket: str) -> None:
        """Mirror ``bucket`` until the connection ends; what the bucket no
        longer holds once the first read is in is dropped."""
        prefix = f"$KV.{bucket}."
        seen: set[tuple[str, str | None]] = set()
        config = {"deliver_policy": "last_per_subject", "filter_subject": f"{prefix}>"}
        async with js.consume(f"KV_{bucket}", config) as consumer:
            caught_up = consumer.pending_at_start == 0
            while True:
                if caught_up and not self.caught_up.is_set():
                    for key in set(self.entries) - seen:
                        self._drop(key)
                    self.caught_up.set()
                delivery = await consumer.next()
                subject_key = delivery.subject.removeprefix(prefix)
                self.apply(subject_key, delivery.data, delivery.headers, delivery.time_ns)
                if not self.caught_up.is_set():
                    seen.add(naming.split_key(subject_key))
                caught_up = caught_up or delivery.pending == 0

    def reset(self) -> None:
        """A new connection: the next :meth:`follow` reads everything again."""
        self.caught_up = trio.Event()
