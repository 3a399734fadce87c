"""Other hosts' events from the fleet's stream: to the rules, once each, and to
``monitor --fleet``.

The rules read the stream from where they stopped: the stream sequence of
the last event handed over is written to the journal *before* its rules
fire, so an event replayed after an outage or a restart fires nothing a
second time (a daemon killed in between loses that one firing instead).
A daemon that never read the stream (or had no rule naming another host)
starts at its end: old history triggers nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
import trio

from lxcflow.daemon.fleet import naming
from lxcflow.daemon.journal import Journal
from lxcflow.nats.jetstream import JetStream
from lxcflow.states import Event

log = structlog.get_logger("lxcflow.fleet")

#: meta key of the rules' place in the stream, as "<stream created time> <sequence>"
POSITION_KEY = "nats_rules_seq"

#: another host's event -> what firing its rules would do (None: no rule fires)
Match = Callable[[str, Event], Callable[[], None] | None]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RemoteEvents:
    """Hands ``stream``'s events of hosts other than ``host`` to the rules ``match`` finds.

    It reads only while ``wanted()`` (some rule names another host's
    container): reading every host's events back, this one's included, was
    about a quarter of a daemon's CPU per published event in a catch-up.
    ``changed()`` returns when the rules may have changed.
    """

    def __init__(self, journal: Journal, host: str, stream: str, match: Match,
                 wanted: Callable[[], bool], changed: Callable[[], Awaitable[None]]) -> None:
        self.journal = journal
        self.host = host
        self.stream = stream
        self.match = match
        self.wanted = wanted
        self.changed = changed
        #: stream sequence of the last event handed over
        self.position = 0

    async def _start(self, js: JetStream) -> tuple[str, int]:
        info = await js.api(f"STREAM.INFO.{self.stream}")
        created, last = str(info.get("created", "")), int(info["state"]["last_seq"])
        kept_created, _, kept = (self.journal.meta(POSITION_KEY) or "").partition(" ")
        if kept_created == created and kept.isdigit():
            return created, min(int(kept), last)  # a purged stream's sequence went back
        return created, last  # never read this stream: from its end

    async def run(self, js: JetStream) -> None:
        """Hand over events while rules want them, until the connection ends."""
        while True:
            if not self.wanted():
                # A rule that comes later starts at the stream's end, not
                # with what happened while no rule wanted it.
                self.journal.set_meta(POSITION_KEY, "")
                while not self.wanted():
                    await self.changed()
            await self._read(js)

    async def _read(self, js: JetStream) -> None:
        """Read from where the rules stopped until no rule wants events."""
        created, self.position = await self._start(js)
        self.journal.set_meta(POSITION_KEY, f"{created} {self.position}")
        config = {"deliver_policy": "by_start_sequence", "opt_start_seq": self.position + 1,
                  "filter_subject": naming.ALL_EVENTS}
        kept_at = trio.current_time()
        async with js.consume(self.stream, config) as consumer:
            try:
                while self.wanted():
                    delivery = await consumer.next()
                    self.position = delivery.seq
                    fire = self._match(delivery.subject, delivery.data)
                    # Written before a rule fires. An event that fires
                    # nothing may be read again after a crash, so for those
                    # once a second is enough (a write each was most of the
                    # cost of reading this host's own events back).
                    if fire is not None or trio.current_time() - kept_at > 1.0:
                        self.journal.set_meta(POSITION_KEY, f"{created} {self.position}")
                        kept_at = trio.current_time()
                    if fire is not None:
                        fire()
            finally:
                self.journal.set_meta(POSITION_KEY, f"{created} {self.position}")

    def _match(self, subject: str, data: bytes) -> Callable[[], None] | None:
        where = naming.split_event_subject(subject)
        if where is None or where[0] == self.host:
            return None
        try:
            event = Event.from_dict(json.loads(data))
        except ValueError as e:
            log.warning("fleet_bad_event", subject=subject, error=str(e))
            return None
        return self.match(where[0], event)


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


async def monitor(
    js: JetStream,
    stream: str,
    send: Send,
    *,
    pattern: re.Pattern[str] | None,
    since_seq: int | None,
    since_ns: int | None,
    follow: bool,
) -> int:
    """Stream the fleet's events (``host:container`` matching ``pattern``):
    from after stream sequence ``since_seq`` or from ``since_ns``, then live
    while ``follow``. Returns the last stream sequence sent."""
    config: dict[str, Any] = {"filter_subject": naming.ALL_EVENTS}
    if since_seq is not None:
        config.update(deliver_policy="by_start_sequence", opt_start_seq=since_seq + 1)
    elif since_ns is not None:
        config.update(deliver_policy="by_start_time", opt_start_time=rfc3339(since_ns))
    elif not follow:
        return 0
    else:
        config["deliver_policy"] = "new"
    last = since_seq or 0
    async with js.consume(stream, config) as consumer:
        done = not follow and consumer.pending_at_start == 0
        while not done:
            delivery = await consumer.next()
            last = delivery.seq
            done = not follow and delivery.pending == 0
            try:
                item = json.loads(delivery.data)
            except ValueError:
                continue
            where = f"{item.get('host')}:{item.get('container')}"
            if pattern is None or pattern.search(where):
                item["seq"] = delivery.seq
                await send(item)
    return last
