"""One trio connection to a NATS server: dial, authenticate, publish, subscribe, request.

Its tasks (the reader, the pinger) live in a nursery the connection owns;
:func:`connect` is an async context manager whose body runs inside it. When
the connection dies (the server closes it, goes silent past
``max_outstanding`` pings, or speaks nonsense) the body is cancelled and
:class:`NatsUnavailable` comes out of the ``async with``: the caller decides
whether and when to dial again. There is no hidden reconnect.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import secrets
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
import trio

from lxcflow.nats import protocol
from lxcflow.nats.creds import Credentials
from lxcflow.nats.protocol import Control, Info, Msg
from lxcflow.nats.servers import Server

log = structlog.get_logger("lxcflow.nats")

CLIENT_NAME = "lxcflow"
#: seconds one write may wait for the server to take it
SEND_TIMEOUT = 10.0


class NatsError(Exception):
    """Something NATS said or did not say; ``str()`` is one line."""


class NatsUnavailable(NatsError):
    """No server could be reached, or the connection was lost: worth retrying."""


class NatsTimeout(NatsUnavailable):
    """A request got no reply in time."""


class NatsRefused(NatsError):
    """The server refused us (credentials, TLS): retrying the same will not help."""


class Subscription:
    """Messages on one subject, in order, as the reader hands them over.
    Unbounded: the reader never waits for a subscriber (JetStream's flow
    control bounds what a consumer pushes)."""

    def __init__(self, sid: int, subject: str) -> None:
        self.sid = sid
        self.subject = subject
        self._send, self._receive = trio.open_memory_channel[Msg](math.inf)

    def _deliver(self, msg: Msg) -> None:
        self._send.send_nowait(msg)

    async def next(self) -> Msg:
        return await self._receive.receive()


class Connection:
    """A live connection; made by :func:`connect`."""

    def __init__(self, stream: trio.abc.Stream, server: Server, info: dict[str, Any],
                 parser: protocol.Parser) -> None:
        self.stream = stream
        self.server = server
        #: the server's INFO: ``server_name``, ``version``, ``connect_urls``, ...
        self.info = info
        self._parser = parser
        self._send_lock = trio.StrictFIFOLock()
        self._sids = itertools.count(1)
        self._subs: dict[int, Subscription] = {}
        self._outstanding = 0
        self._inbox = f"_INBOX.{secrets.token_hex(8)}"
        self._inbox_sid: int | None = None
        self._tokens = itertools.count(1)
        self._replies: dict[str, tuple[trio.Event, list[Msg]]] = {}
        self._scope = trio.CancelScope()
        #: why the connection ended (None while it lives)
        self.lost: NatsError | None = None

    # -------------------------------------------------------------- sending

    async def _send(self, data: bytes) -> None:
        if self.lost is not None:
            raise self.lost
        try:
            # Never cut short by a caller's cancellation: half a frame on the
            # wire would be garbage to the server for every other user of
            # the connection. A send the server does not take within
            # SEND_TIMEOUT ends the connection instead.
            with trio.CancelScope(shield=True), trio.fail_after(SEND_TIMEOUT):
                async with self._send_lock:
                    await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                trio.TooSlowError) as e:
            error = NatsUnavailable(f"{self.server}: connection lost ({e or 'send stalled'})")
            self.abort(error)
            raise error from None

    async def publish(self, subject: str, data: bytes, *, reply: str | None = None,
                      headers: dict[str, str] | None = None) -> None:
        """Send one message (fire and forget)."""
        await self._send(protocol.publish(subject, data, reply=reply, headers=headers))

    async def request(self, subject: str, data: bytes, *, headers: dict[str, str] | None = None,
                      within: float = 5.0) -> Msg:
        """Publish with a reply subject and return the first reply.

        Raises:
            NatsTimeout: none within ``within`` seconds.
            NatsUnavailable: no one listens (status 503), or the connection died.
        """
        return (await self.request_many([(subject, data, headers)], within=within))[0]

    async def request_many(self, messages: list[tuple[str, bytes, dict[str, str] | None]], *,
                           within: float = 5.0) -> list[Msg]:
        """Publish ``(subject, data, headers)`` each with its own reply
        subject, in order and in one write, then wait for every reply (in
        the same order): one round trip for the lot.

        Raises:
            NatsTimeout: not all replied within ``within`` seconds.
            NatsUnavailable: no one listens (status 503), or the connection died.
        """
        if self._inbox_sid is None:
            self._inbox_sid = next(self._sids)
            await self._send(protocol.subscribe(f"{self._inbox}.*", self._inbox_sid))
        waiting = []
        frames = []
        for subject, data, headers in messages:
            token = f"{self._inbox}.{next(self._tokens)}"
            done, slot = trio.Event(), list[Msg]()
            self._replies[token] = (done, slot)
            waiting.append((token, subject, done, slot))
            frames.append(protocol.publish(subject, data, reply=token, headers=headers))
        try:
            await self._send(b"".join(frames))
            with trio.move_on_after(within):
                for _, _, done, _ in waiting:
                    await done.wait()
        finally:
            for token, _, _, _ in waiting:
                del self._replies[token]
        if self.lost is not None:
            raise self.lost
        replies = []
        for _, subject, _, slot in waiting:
            if not slot:
                raise NatsTimeout(f"{self.server}: no reply to {subject} within {within:g} s")
            if slot[0].status == 503:
                raise NatsUnavailable(f"{self.server}: no responders for {subject} (is "
                                      "JetStream enabled?)")
            replies.append(slot[0])
        return replies

    @asynccontextmanager
    async def subscribe(self, subject: str) -> AsyncIterator[Subscription]:
        """Messages on ``subject`` while the block runs. The ``SUB`` is sent
        first: whatever is published after it reaches this subscription."""
        sub = Subscription(next(self._sids), subject)
        self._subs[sub.sid] = sub
        try:
            await self._send(protocol.subscribe(subject, sub.sid))
            yield sub
        finally:
            del self._subs[sub.sid]
            if self.lost is None:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0), \
                        contextlib.suppress(NatsError):
                    await self._send(protocol.unsubscribe(sub.sid))

    # -------------------------------------------------------------- tasks

    def abort(self, error: NatsError) -> None:
        """End the connection because of ``error`` (it comes out of :func:`connect`)."""
        if self.lost is None:
            self.lost = error
            log.warning("nats_connection_lost", server=str(self.server), error=str(error))
        self._scope.cancel()
        for done, _ in self._replies.values():
            done.set()

    def _dispatch(self, msg: Msg) -> None:
        if msg.sid == self._inbox_sid:
            waiting = self._replies.get(msg.subject)
            if waiting is not None and not waiting[1]:
                waiting[1].append(msg)
                waiting[0].set()
            return
        sub = self._subs.get(msg.sid)
        if sub is not None:
            sub._deliver(msg)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise NatsUnavailable(f"{self.server}: the server closed the connection")
                for frame in self._parser.feed(data):
                    if isinstance(frame, Msg):
                        self._dispatch(frame)
                    elif isinstance(frame, Control):
                        await self._control(frame)
                    elif isinstance(frame, Info):
                        self.info = {**self.info, **frame.fields}  # cluster changes
        except NatsError as e:
            self.abort(e)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self.abort(NatsUnavailable(f"{self.server}: connection lost ({e})"))
        except protocol.ProtocolViolation as e:
            self.abort(NatsUnavailable(f"{self.server}: {e}"))

    async def _control(self, frame: Control) -> None:
        if frame.op == "PING":
            await self._send(protocol.PONG)
        elif frame.op == "PONG":
            self._outstanding = 0
        elif frame.op == "-ERR":
            if frame.text.lower().startswith("permissions violation"):
                log.error("nats_permission_denied", server=str(self.server), error=frame.text)
                return  # the server keeps the connection; the request times out
            raise _refusal_or_loss(self.server, frame.text)

    async def _ping_loop(self, interval: float, max_outstanding: int) -> None:
        while True:
            await trio.sleep(interval)
            if self._outstanding >= max_outstanding:
                self.abort(NatsUnavailable(
                    f"{self.server}: no answer to {max_outstanding} pings in a row"))
                return
            self._outstanding += 1
            try:
                await self._send(protocol.PING)
            except NatsError:
                return


def _reason(error: OSError) -> str:
    """Why a dial failed: trio's "all attempts failed" hides the errno's text."""
    cause = error.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return error.strerror or str(error)


#: how nats-server's -ERR says it will not take these credentials (an
#: "Authentication Timeout", a slow CONNECT, is not one of them)
REFUSALS = ("authorization violation", "user authentication expired",
            "user authentication revoked", "account authentication expired")


def _refusal_or_loss(server: Server, text: str) -> NatsError:
    if text.lower().startswith(REFUSALS):
        return NatsRefused(f"{server} refused the credentials: {text}")
    return NatsUnavailable(f"{server}: {text}")


@asynccontextmanager
async def connect(
    servers: Sequence[Server],
    *,
    creds: Credentials | None = None,
    connect_timeout: float = 2.0,
    ping_interval: float = 2.0,
    max_outstanding: int = 3,
) -> AsyncIterator[Connection]:
    """Dial the first server of ``servers`` that answers; run the body connected.

    Raises:
        NatsRefused: a server refused the credentials or its TLS certificate
            did not verify.
        NatsUnavailable: none answered, or the connection was lost while the
            body ran (the body was cancelled).
    """
    errors = []
    conn: Connection | None = None
    for server in servers:
        try:
            with trio.fail_after(connect_timeout):
                conn = await _dial(server, creds)
            break
        except trio.TooSlowError:
            errors.append(f"{server}: no answer within {connect_timeout:g} s")
        except OSError as e:
            errors.append(f"{server}: {_reason(e)}")
        except NatsUnavailable as e:
            errors.append(str(e))
    if conn is None:
        raise NatsUnavailable("; ".join(errors))
    try:
        async with trio.open_nursery() as nursery:
            with conn._scope:
                nursery.start_soon(conn._read_loop)
                nursery.start_soon(conn._ping_loop, ping_interval, max_outstanding)
                try:
                    yield conn
                finally:
                    nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The connection's own tasks never raise: what is in here is the
        # body's error, which the caller expects as it was raised.
        if len(group.exceptions) != 1:
            raise
        raise group.exceptions[0] from None
    finally:
        await trio.aclose_forcefully(conn.stream)
    if conn.lost is not None:
        raise conn.lost


async def _dial(server: Server, creds: Credentials | None) -> Connection:
    """Connect, read INFO, upgrade to TLS if either side wants it, CONNECT
    and wait for the PONG that says the server took it."""
    stream: trio.abc.Stream = await trio.open_tcp_stream(server.host, server.port)
    parser = protocol.Parser()
    try:
        info = await _next_frame(stream, parser, server)
        if not isinstance(info, Info):
            raise NatsUnavailable(f"{server}: no INFO from the server")
        fields = info.fields
        if server.tls or fields.get("tls_required"):
            stream = trio.SSLStream(stream, ssl.create_default_context(),
                                    server_hostname=server.host)
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError as e:
                cause = e.__cause__
                if isinstance(cause, ssl.SSLCertVerificationError):
                    raise NatsRefused(f"{server}: TLS: the server's certificate did not verify "
                                      f"({cause.verify_message})") from None
                raise NatsUnavailable(f"{server}: TLS handshake failed ({cause or e})") from None
        options: dict[str, Any] = {
            "verbose": False, "pedantic": False, "headers": True, "no_responders": True,
            "protocol": 1, "lang": "python-lxcflow", "version": "1", "name": CLIENT_NAME,
            "tls_required": isinstance(stream, trio.SSLStream),
        }
        if server.user is not None:
            options.update(user=server.user, **{"pass": server.password or ""})
        if server.token is not None:
            options["auth_token"] = server.token
        if creds is not None:
            nonce = fields.get("nonce")
            if not nonce:
                raise NatsRefused(f"{server} asks for no signature: it is not set up "
                                  "for nkey or JWT users")
            options.update(creds.sign(nonce))
        await stream.send_all(protocol.connect(options))
        while True:
            frame = await _next_frame(stream, parser, server)
            if isinstance(frame, Control) and frame.op == "PONG":
                break
            if isinstance(frame, Control) and frame.op == "-ERR":
                raise _refusal_or_loss(server, frame.text)
    except (trio.BrokenResourceError, OSError) as e:
        await trio.aclose_forcefully(stream)
        raise NatsUnavailable(f"{server}: connection lost during the handshake ({e})") from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return Connection(stream, server, fields, parser)


async def _next_frame(stream: trio.abc.Stream, parser: protocol.Parser,
                      server: Server) -> protocol.Frame:
    frames: list[protocol.Frame] = []
    while not frames:
        data = await stream.receive_some(65536)
        if not data:
            raise NatsUnavailable(f"{server}: the server closed the connection")
        try:
            frames = parser.feed(data)
        except protocol.ProtocolViolation as e:
            raise NatsUnavailable(f"{server}: {e}") from None
    if len(frames) > 1:
        raise NatsUnavailable(f"{server}: spoke before it was asked")
    return frames[0]
