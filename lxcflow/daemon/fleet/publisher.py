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

    def _keep(self) -> None:
        self.journal.set_published(self.acked)

    @property
    def unpublished(self) -> int:
        """Events numbered but not yet acknowledged."""
        return max(0, self.bus.last_id - self.acked)

    async def resume(self, js: JetStream) -> None:
        """Learn from the stream where this host's events end, and go on
        from there. Called at every connect, before anything is published
        (and at the daemon's start, before it adopts anything)."""
        last = await js.last(self.stream, naming.host_events(self.host))
        parsed = naming.parse_message_id(last.headers.get("Nats-Msg-Id", "")) if last else None
        if last is None or parsed is None or parsed[1] != self.journal.epoch:
            return  # none of this journal's yet (or none left): the record stands
        stream_has = parsed[2]
        if stream_has == self.acked:
            return
        if stream_has < self.acked:
            # The stream lost what it had acknowledged (its store went
            # back): what the journal still holds is sent again.
            log.warning("fleet_stream_behind", kept=self.acked, stream_has=stream_has)
            self.acked = stream_has
        elif self._same_event(stream_has, last.data):
            # Acknowledged, but the daemon died before it wrote that down.
            log.info("fleet_resumed_from_stream", kept=self.acked, stream_has=stream_has)
            self.acked = stream_has
        else:
            # The journal lost its last commits (power gone before the WAL
            # reached the disk) after the stream took them: its ids after
            # the record may name other events than the stream's. A new
            # epoch keeps them apart; numbering goes on past the stream's.
            log.warning("journal_behind_stream", kept=self.acked, stream_has=stream_has,
                        journal_last=self.bus.last_id, consequence="a new journal epoch")
            self.journal.new_epoch()
            if stream_has > self.bus.last_id:
                self.journal.skip_past(stream_has)
                self.bus.last_id = stream_has
        self._keep()

    def _same_event(self, event_id: int, data: bytes) -> bool:
        """Whether the journal's event ``event_id`` is the one the stream holds."""
        mine = self.journal.since(after_id=event_id - 1, limit=1)
        try:
            theirs = json.loads(data)
        except ValueError:
            return False
        return bool(mine) and mine[0].id == event_id and (
            mine[0].time_ns, mine[0].container, mine[0].to_state.value) == (
            theirs.get("time_ns"), theirs.get("container"), theirs.get("to"))

    async def run(self, js: JetStream) -> None:
        """Publish until cancelled (or the connection fails); :meth:`resume` first."""
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
                self._keep()
                await trio.lowlevel.checkpoint()
        finally:
            self._keep()
