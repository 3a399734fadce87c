"""The daemon's link to NATS: connect, prepare the stream and bucket, run the
fleet's tasks while connected, and say loudly when there is no link.

At daemon start a refused credential or a stream of the wrong shape stops
the daemon; an unreachable broker does not: the daemon works on as a single
host, logs it, shows it in ``info`` and catches up when NATS returns.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.fleet import feed, naming
from lxcflow.daemon.fleet.feed import RemoteEvents
from lxcflow.daemon.fleet.publisher import JournalPublisher
from lxcflow.daemon.fleet.statebook import StateBook
from lxcflow.daemon.fleet.view import FleetView
from lxcflow.daemon.journal import Journal
from lxcflow.daemon.options import FleetOptions
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import LxcflowError
from lxcflow.nats.connection import Connection, NatsError, NatsRefused, NatsUnavailable, connect
from lxcflow.nats.jetstream import JetStream, JetStreamError

log = structlog.get_logger("lxcflow.fleet")

#: seconds between attempts to reach NATS, doubling up to the second: a
#: refused connect costs next to nothing, and the cap is how long a daemon
#: may stay alone after the broker is back
RETRY = (0.1, 2.0)
#: a session that lasted this long (s) was a working link: retry at once after it
STEADY_S = 10.0
#: JetStream keeps a message id this long by default (nats-server's 2 minutes)
DUPLICATE_WINDOW_NS = 120 * 10**9


class SetupRefused(NatsError):
    """JetStream refused the stream or bucket (a stream with other subjects,
    replicas it cannot place): trying again will not change that."""


@dataclass(slots=True)
class LinkStatus:
    """What ``info`` says of the link."""

    connected: bool = False
    server: str | None = None
    #: since when (ns since the epoch) it is connected, or not
    since_ns: int = 0
    error: str | None = None


class Fleet:
    """This daemon as one host of the fleet described by ``options``."""

    def __init__(self, options: FleetOptions, sup: Supervisor, journal: Journal,
                 rules: RuleEngine | None = None) -> None:
        self.options = options
        self.host = options.host
        self.sup = sup
        self.view = FleetView()
        self.status = LinkStatus(since_ns=time.time_ns())
        self.publisher = JournalPublisher(sup.bus, journal, options.host, options.stream)
        self.states = StateBook(sup, options.host, options.bucket)
        self.remote = RemoteEvents(journal, options.host, options.stream, rules.match_remote,
                                   rules.names_other_hosts, rules.wait_changed) \
            if rules is not None else None
        self._js: JetStream | None = None
        self._linked_at: float | None = None  # when the current attempt's session began
        self._last_logged: str | None = None  # the last way of failing logged

    # ----------------------------------------------------------- lifetime

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Stay linked until cancelled. Started once the first attempt is
        over, connected or not.

        Raises:
            LxcflowError: at the first attempt, credentials refused or a
                stream of the wrong shape (the daemon must not start).
        """
        self._task_status: trio.TaskStatus[None] | None = task_status
        delay = RETRY[0]
        while True:
            self._linked_at = None
            try:
                async with connect(self.options.servers, creds=self.options.creds) as conn:
                    await self._session(conn)
            except (NatsRefused, SetupRefused) as e:
                if self._task_status is not None:
                    raise LxcflowError(f"NATS: {e}") from None
                self._down(e, "fleet_refused")
            except NatsError as e:
                self._down(e, "fleet_unreachable")
            except Exception as e:  # a bug in setting up: loud, and tried again
                log.exception("fleet_failed", error=repr(e))
                self._down(NatsUnavailable(repr(e)), "fleet_unreachable")
            self._started()
            # After a session that lasted, at once; after a failed attempt
            # (or a session that failed as soon as it began, as on a
            # broker whose store is full), less and less often.
            delay = RETRY[0] if self._lasted() else min(delay * 2, RETRY[1])
            await trio.sleep(delay)

    def _lasted(self) -> bool:
        """Whether the last attempt was a working link for a while."""
        return self._linked_at is not None and \
            trio.current_time() - self._linked_at >= STEADY_S

    def _started(self) -> None:
        """The first attempt is over: the daemon may say it is ready."""
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None

    def _down(self, error: NatsError, what: str) -> None:
        """The link is gone (or still not there): say so once per way of failing."""
        self._js = None
        # Since when it has been down: kept across attempts that fail alike.
        was_up = self.status.connected or self.status.error is None
        since = time.time_ns() if was_up else self.status.since_ns
        news = str(error) != self._last_logged or self._lasted()
        self.status = LinkStatus(False, None, since, str(error))
        if news:
            self._last_logged = str(error)
            log.warning(what, nats=self.options.url, error=str(error),
                        consequence="working as a single host until NATS answers")

    async def _session(self, conn: Connection) -> None:
        js = JetStream(conn)
        await self._prepare(js)
        await self.publisher.resume(js)  # before the daemon numbers anything more
        self._linked_at = trio.current_time()
        self._js = js
        self.status = LinkStatus(True, str(conn.server), time.time_ns())
        log.info("fleet_connected", host=self.host, server=str(conn.server),
                 version=conn.info.get("version"), unpublished=self.publisher.unpublished)
        self._started()
        self.view.reset()

        async def guarded(job: Callable[..., Awaitable[None]], *args: Any) -> None:
            """Whatever ends a job ends the session: it starts over on a new
            connection. Nothing of the fleet may take the daemon down."""
            try:
                await job(*args)
            except NatsError as e:
                conn.abort(e)
            except Exception as e:  # a bug: loud, and the session starts over
                log.exception("fleet_task_failed", task=job.__qualname__, error=repr(e))
                conn.abort(NatsUnavailable(f"{job.__qualname__} failed: {e!r}"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guarded, self.publisher.run, js)
            nursery.start_soon(guarded, self.view.follow, js, self.options.bucket)
            nursery.start_soon(guarded, self.states.run, js, self.view)
            nursery.start_soon(guarded, self.states.heartbeat, js)
            if self.remote is not None:
                nursery.start_soon(guarded, self._feed_rules, js)

    async def _feed_rules(self, js: JetStream) -> None:
        assert self.remote is not None
        await self.sup.ready.wait()  # the rules act once what ran is adopted
        await self.remote.run(js)

    async def _prepare(self, js: JetStream) -> None:
        """The stream and the bucket, created if missing; a stream with other
        subjects is refused."""
        o = self.options
        try:
            info = await js.ensure_stream({
                "name": o.stream, "subjects": [naming.ALL_EVENTS], "retention": "limits",
                "storage": "file", "num_replicas": o.replicas, "discard": "old",
                "duplicate_window": DUPLICATE_WINDOW_NS,
            })
            subjects = info["config"].get("subjects") or []
            if naming.ALL_EVENTS not in subjects:
                raise SetupRefused(f"stream {o.stream} exists with subjects "
                                     f"{', '.join(subjects) or 'none'}, not {naming.ALL_EVENTS}")
            await js.ensure_bucket(o.bucket, replicas=o.replicas)
        except JetStreamError as e:
            if e.code == 503:  # JetStream not ready (a cluster electing its leader)
                raise NatsUnavailable(str(e)) from None
            raise SetupRefused(str(e)) from None

    # ----------------------------------------------------------- requests

    def describe(self) -> dict[str, Any]:
        """The link as ``info`` shows it."""
        s = self.status
        return {"host": self.host, "nats": self.options.url, "connected": s.connected,
                "server": s.server, "since_ns": s.since_ns, "error": s.error,
                "unpublished": self.publisher.unpublished}

    def jetstream(self) -> JetStream:
        """The live connection's JetStream.

        Raises:
            LxcflowError: not connected now.
        """
        if self._js is None:
            raise LxcflowError(f"not connected to NATS ({self.status.error or 'connecting'})")
        return self._js

    async def monitor(self, send: feed.Send, *, pattern: re.Pattern[str] | None,
                      since_seq: int | None, since_ns: int | None, follow: bool) -> int:
        """``monitor --fleet``: see :func:`feed.monitor`."""
        try:
            return await feed.monitor(self.jetstream(), self.options.stream, send,
                                      pattern=pattern, since_seq=since_seq, since_ns=since_ns,
                                      follow=follow)
        except NatsError as e:
            raise LxcflowError(f"NATS: {e}") from None
