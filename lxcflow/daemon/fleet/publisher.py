"""The journal, event by event, onto the fleet's stream: none lost, none twice, in order.

One publish is in flight at a time, each with the message id
``host:epoch:id``, so JetStream's de-duplication drops a resend and the
stream's order per host is the journal's. The last acknowledged id is kept
in the journal (``meta``) and the journal's retention never prunes past it.
At every connect the stream's last message for this host is read too: it
may be ahead of the kept id (the daemon died between the acknowledgement
and writing it down), and the de-duplication window only covers two minutes.
"""

from __future__ import annotations

import json

import structlog
import trio

from lxcflow.daemon.events import EventBus
from lxcflow.daemon.fleet import naming
from lxcflow.daemon.journal import Journal
from lxcflow.nats.jetstream import JetStream

log = structlog.get_logger("lxcflow.fleet")

#: events read from the journal at a time
PAGE = 256


class JournalPublisher:
    """Publishes ``bus``'s journal as ``host``'s events to ``stream``."""

    def __init__(self, bus: EventBus, journal: Journal, host: str, stream: str) -> None:
        self.bus = bus
        self.journal = journal
        self.host = host
        self.stream = stream
        #: the last event id the stream has (as far as this daemon knows)
        self.acked = journal.published()
        #: events published (acknowledged) since the daemon started
        self.published = 0

    def _keep(self) -> None:
        self.journal.set_published(self.acked)

    @property
    def unpublished(self) -> int:
        """Events numbered but not yet acknowledged."""
        return max(0, self.bus.last_id - self.acked)

    async def resume(self, js: JetStream) -> None:
        """Learn from the stream where this host's events end."""
        last = await js.last(self.stream, naming.host_events(self.host))
        if last is None:
            return
        parsed = naming.parse_message_id(last.headers.get("Nats-Msg-Id", ""))
        if parsed is not None and parsed[1] == self.journal.epoch and parsed[2] > self.acked:
            log.info("fleet_resumed_past_record", kept=self.acked, stream_has=parsed[2])
            self.acked = parsed[2]
            self._keep()

    async def run(self, js: JetStream) -> None:
        """Publish until cancelled (or the connection fails)."""
        await self.resume(js)
        try:
            while True:
                while self.bus.last_id <= self.acked:
                    await self.bus.wait_changed()
                events = self.journal.since(after_id=self.acked, limit=PAGE)
                if not events:
                    # Numbered but never stored (the journal failed): they
                    # cannot be sent; say so rather than spin.
                    log.error("fleet_events_unpublishable", after=self.acked,
                              through=self.bus.last_id, reason="the journal did not keep them")
                    self.acked = self.bus.last_id
                    continue
                for event in events:
                    body = event.to_dict()
                    body["host"] = self.host
                    await js.publish(naming.event_subject(self.host, event.container),
                                     json.dumps(body, separators=(",", ":")).encode(),
                                     msg_id=naming.message_id(self.host, self.journal.epoch,
                                                              event.id))
                    self.acked = event.id
                    self.published += 1
                self._keep()
                await trio.lowlevel.checkpoint()
        finally:
            self._keep()
