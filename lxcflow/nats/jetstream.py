"""JetStream over a :class:`~lxcflow.nats.connection.Connection`: its JSON
API (``$JS.API.*``), acknowledged publishes, stored-message reads, push
consumers read in order, and key-value buckets (a stream named ``KV_NAME``
with subjects ``$KV.NAME.>``, one message kept per key).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from lxcflow.nats import protocol
from lxcflow.nats.connection import Connection, NatsError, NatsTimeout, NatsUnavailable

#: JetStream's error codes this client tells apart
STREAM_NOT_FOUND = 10059
NO_MESSAGE_FOUND = 10037
#: tries at making a consumer, and how long each may take
CREATE_ATTEMPTS = 8
CREATE_TIMEOUT = 1.0
#: values kept per key (nats's KV history)
KV_HISTORY = 8
#: the KV headers: what a key's message means
KV_OPERATION = "KV-Operation"


class JetStreamError(NatsError):
    """An API request JetStream answered with an error."""

    def __init__(self, op: str, error: dict[str, Any]) -> None:
        self.code = int(error.get("code", 0))
        self.err_code = int(error.get("err_code", 0))
        self.description = str(error.get("description", "unknown error"))
        super().__init__(f"JetStream {op}: {self.description} ({self.code}/{self.err_code})")


class ConsumerGap(NatsUnavailable):
    """A push consumer skipped a delivery (the server lost or dropped one):
    read again from the last stream sequence seen."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A message as the stream keeps it: what the fleet reads of one."""

    data: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message a consumer delivered: the stream's sequence and time, and
    how many more matched when it was sent (0: caught up)."""

    subject: str
    seq: int
    data: bytes
    headers: dict[str, str]
    time_ns: int
    pending: int


class JetStream:
    """JetStream's API on ``conn``; every request waits at most ``timeout``."""

    def __init__(self, conn: Connection, *, timeout: float = 5.0) -> None:
        self.conn = conn
        self.timeout = timeout

    async def api(self, op: str, body: dict[str, Any] | None = None, *,
                  within: float | None = None) -> dict[str, Any]:
        """``$JS.API.<op>`` with ``body``; the response.

        Raises:
            JetStreamError: JetStream answered with an error.
            NatsUnavailable: no JetStream answers, or the connection died.
        """
        data = json.dumps(body).encode() if body is not None else b""
        reply = await self.conn.request(f"$JS.API.{op}", data, within=within or self.timeout)
        try:
            response = json.loads(reply.data)
        except ValueError:
            raise NatsUnavailable(f"JetStream {op}: a reply that is not JSON") from None
        if "error" in response:
            raise JetStreamError(op.split(".")[0].lower(), response["error"])
        return response

    async def ensure_stream(self, config: dict[str, Any]) -> dict[str, Any]:
        """The stream ``config["name"]``, created with ``config`` if missing;
        its info. An existing stream is taken as it is (the caller checks)."""
        name = config["name"]
        try:
            return await self.api(f"STREAM.INFO.{name}")
        except JetStreamError as e:
            if e.err_code != STREAM_NOT_FOUND:
                raise
        return await self.api(f"STREAM.CREATE.{name}", config)

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None) -> None:
        """Publish and wait for the stream's acknowledgement (a message
        whose ``msg_id`` the stream has seen within its de-duplication window
        is acknowledged and not stored again)."""
        await self.publish_many(
            [(subject, data, {"Nats-Msg-Id": msg_id} if msg_id is not None else None)])

    async def publish_many(self, messages: list[tuple[str, bytes, dict[str, str] | None]]
                           ) -> None:
        """Publish ``(subject, data, headers)`` in order, all at once, and
        wait for every acknowledgement. For messages whose order across a
        failure does not matter (a key's newer value wins anyway): a failed
        one may be followed by stored ones.

        Raises:
            JetStreamError: the stream refused one (the first such is raised).
        """
        replies = await self.conn.request_many(messages, within=self.timeout)
        for (subject, _, _), reply in zip(messages, replies, strict=True):
            try:
                ack = json.loads(reply.data)
            except ValueError:
                raise NatsUnavailable(f"publish to {subject}: an acknowledgement that is not "
                                      "JSON") from None
            if "error" in ack:
                raise JetStreamError("publish", ack["error"])

    async def last(self, stream: str, subject: str) -> Stored | None:
        """The stream's last message on ``subject`` (wildcards allowed), or None."""
        try:
            response = await self.api(f"STREAM.MSG.GET.{stream}", {"last_by_subj": subject})
        except JetStreamError as e:
            if e.err_code == NO_MESSAGE_FOUND:
                return None
            raise
        m = response["message"]
        headers: dict[str, str] = {}
        if m.get("hdrs"):
            _, _, headers = protocol.parse_headers(base64.b64decode(m["hdrs"]))
        return Stored(base64.b64decode(m.get("data") or ""), headers)

    @asynccontextmanager
    async def consume(self, stream: str, config: dict[str, Any], *,
                      heartbeat: float = 2.0) -> AsyncIterator[Consumer]:
        """An ephemeral push consumer of ``stream`` made with ``config``
        (``deliver_policy``, ``filter_subject``, ...), read in order, with
        flow control and idle heartbeats. The server deletes it a few
        seconds after the block ends and its subscription goes (no request
        on the way out: the block may end because the connection did)."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            # A fresh inbox each time, dropped when the attempt fails: a
            # consumer whose creation timed out may still come to life, and
            # with no one listening the server deletes it.
            inbox = f"_INBOX.{secrets.token_hex(8)}"
            async with self.conn.subscribe(inbox) as sub:
                body = {"stream_name": stream, "config": {
                    "deliver_subject": inbox, "ack_policy": "none", "replay_policy": "instant",
                    "flow_control": True, "idle_heartbeat": int(heartbeat * 1e9),
                    "mem_storage": True, "num_replicas": 1,
                    "inactive_threshold": int(max(5.0, 3 * heartbeat) * 1e9), **config}}
                try:
                    # nats-server 2.9 places an ephemeral consumer on a random
                    # peer of a clustered stream, one that is down included,
                    # and never answers then: ask again, it picks anew.
                    created = await self.api(f"CONSUMER.CREATE.{stream}", body,
                                             within=CREATE_TIMEOUT)
                except NatsTimeout:
                    if attempt == CREATE_ATTEMPTS:
                        raise
                    continue
                yield Consumer(self, sub, created, heartbeat)
                return

    # ---------------------------------------------------------- key-value

    async def ensure_bucket(self, bucket: str, *, replicas: int = 1) -> dict[str, Any]:
        """The key-value bucket ``bucket``, created if missing, keeping the
        last :data:`KV_HISTORY` values of each key: with one, a value
        replaced before a watching consumer got to it is never delivered
        (two puts in a row to one key lost the first to a watcher here)."""
        return await self.ensure_stream({
            "name": f"KV_{bucket}", "subjects": [f"$KV.{bucket}.>"], "retention": "limits",
            "max_msgs_per_subject": KV_HISTORY, "discard": "new", "allow_rollup_hdrs": True,
            "deny_delete": True, "deny_purge": False, "allow_direct": True,
            "storage": "file", "num_replicas": replicas,
        })

    async def put_many(self, bucket: str, items: list[tuple[str, bytes | None]]) -> None:
        """Set (or, for None, delete) each key in order, in one round trip."""
        await self.publish_many([
            (f"$KV.{bucket}.{key}", value or b"",
             {KV_OPERATION: "DEL"} if value is None else None) for key, value in items])


class Consumer:
    """A push consumer's deliveries, in stream order; see :meth:`JetStream.consume`."""

    def __init__(self, js: JetStream, sub: Any, created: dict[str, Any], heartbeat: float) -> None:
        self.js = js
        self.sub = sub
        self.name: str = created["name"]
        #: messages that matched when the consumer was made
        self.pending_at_start: int = int(created.get("num_pending", 0))
        self._heartbeat = heartbeat
        self._delivered = 0

    async def next(self) -> Delivery:
        """The next message.

        Raises:
            ConsumerGap: a delivery was skipped.
            NatsUnavailable: neither messages nor heartbeats for three
                heartbeat intervals, or the connection died.
        """
        while True:
            with trio.move_on_after(3 * self._heartbeat) as silent:
                msg = await self.sub.next()
            if silent.cancelled_caught:
                raise NatsUnavailable(f"consumer {self.name}: silent for "
                                      f"{3 * self._heartbeat:g} s")
            if msg.status == 100:
                # Flow control: we have read up to here. A heartbeat carries
                # the subject again if the server waits for a reply it missed.
                answer = msg.reply or msg.headers.get("Nats-Consumer-Stalled")
                if answer:
                    await self.js.conn.publish(answer, b"")
                last = msg.headers.get("Nats-Last-Consumer")
                if last is not None and int(last) != self._delivered:
                    raise ConsumerGap(f"consumer {self.name}: delivered {last}, "
                                      f"read {self._delivered}")
                continue
            if msg.status is not None:
                raise NatsUnavailable(f"consumer {self.name}: status {msg.status} "
                                      f"{msg.description}")
            meta = _ack_metadata(msg.reply)
            if meta is None:
                continue  # not a JetStream delivery
            stream_seq, consumer_seq, time_ns, pending = meta
            if consumer_seq != self._delivered + 1:
                raise ConsumerGap(f"consumer {self.name}: expected delivery "
                                  f"{self._delivered + 1}, got {consumer_seq}")
            self._delivered = consumer_seq
            return Delivery(msg.subject, stream_seq, msg.data, msg.headers, time_ns, pending)


def _ack_metadata(reply: str | None) -> tuple[int, int, int, int] | None:
    """Stream sequence, consumer sequence, time and pending, from
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>``
    or the newer form with ``<domain>.<account hash>`` after ``ACK`` and a
    random token at the end."""
    if reply is None or not reply.startswith("$JS.ACK."):
        return None
    tokens = reply.split(".")
    first = 5 if len(tokens) == 9 else 7 if len(tokens) >= 12 else None
    if first is None:
        return None
    try:
        return tuple(int(t) for t in tokens[first:first + 4])  # type: ignore[return-value]
    except ValueError:
        return None
