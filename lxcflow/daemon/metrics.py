"""Prometheus metrics: ``lxcflow daemon --metrics HOST:PORT`` serves ``/metrics``.

The container figures use cAdvisor's names (``container_cpu_usage_seconds_total``,
``container_memory_working_set_bytes``, ...) with a ``name`` label, so the
dashboards and alerts written for them work; the supervisor's own are
``lxcflow_*``. The per-container families are written by
:mod:`metrics_text` (thousands of samples a scrape); prometheus_client
renders the daemon-wide ones and keeps the operations' histogram. The HTTP
server is the daemon's own, on its trio loop (the library's is threaded). A
scrape reads cgroupfs and sysfs a millisecond's worth of containers at a
time, giving the loop back in between, so a transition that happens
meanwhile waits for one slice, not for the whole scrape.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
import trio
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.metrics_text import ContainerLines
from lxcflow.daemon.options import Address
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.daemon.views import read_each
from lxcflow.errors import LxcflowError
from lxcflow.states import State

log = structlog.get_logger("lxcflow.metrics")

#: seconds a client has to send its request
REQUEST_TIMEOUT = 10.0
MAX_REQUEST = 8192
#: start, stop, freeze and unfreeze take milliseconds to a minute
OPERATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0, 60.0)


class Metrics:
    """What ``/metrics`` shows, gathered from the supervisor and the rule engine."""

    def __init__(self, supervisor: Supervisor, engine: RuleEngine | None) -> None:
        self.sup = supervisor
        self.engine = engine
        self.operations = Histogram(
            "lxcflow_operation_seconds", "Start, stop, freeze and unfreeze, from the request "
            "to the kernel's confirmation, as the daemon measured them", ["op"],
            registry=None, buckets=OPERATION_BUCKETS)
        supervisor.on_operation = self._observe

    def _observe(self, op: str, seconds: float) -> None:
        self.operations.labels(op).observe(seconds)

    # ----------------------------------------------------------- gathering

    def daemon_families(self) -> list[Metric]:
        """The families of the daemon as a whole (a few dozen samples)."""
        bus = self.sup.bus
        events = CounterMetricFamily("lxcflow_events", "Transitions published, by the state "
                                     "they went to", labels=["to"])
        for state in State:
            events.add_metric([state.value], bus.transitions_to[state])
        notices = CounterMetricFamily("lxcflow_notices", "Notices published, by kind",
                                      labels=["notice"])
        for kind, count in sorted(bus.notices.items()):
            notices.add_metric([kind], count)
        last = GaugeMetricFamily("lxcflow_journal_last_event_id",
                                 "The id of the last event published", value=bus.last_id)
        out: list[Metric] = [events, notices, last]
        if self.engine is not None:
            out.append(GaugeMetricFamily(
                "lxcflow_restart_budget_tokens", "Restarts the host-wide budget lets go at "
                "once (negative: owed to restarts waiting)",
                value=self.engine.budget_tokens()))
        out.extend(self.operations.collect())
        return out

    async def render(self) -> bytes:
        """The text format: every container's families, then the daemon's."""
        lines = ContainerLines()
        await read_each(sorted(self.sup.containers.values(), key=lambda c: c.name), lines.add)
        return lines.text().encode() + generate_latest(_Collector(self.daemon_families()))

    # ----------------------------------------------------------- serving

    async def serve(
        self, listeners: list[trio.SocketListener],
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer ``GET /metrics`` on ``listeners`` until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(self._answer, listeners, handler_nursery=nursery)

    async def _answer(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    head = await _request_head(stream)
                    if head is None:
                        return
                    method, _, rest = head.partition(b" ")
                    path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
                    if method not in (b"GET", b"HEAD"):
                        await _respond(stream, 405, b"only GET\n", head_only=False)
                    elif path != b"/metrics":
                        await _respond(stream, 404, b"see /metrics\n", head_only=method == b"HEAD")
                    else:
                        await _respond(stream, 200, await self.render(),
                                       content_type=CONTENT_TYPE_LATEST,
                                       head_only=method == b"HEAD")
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the scraper hung up


class _Collector:
    """Families already gathered, as generate_latest takes them."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def _request_head(stream: trio.SocketStream) -> bytes | None:
    """The request line, once the whole head has come; None if it never does."""
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk or len(data) > MAX_REQUEST:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].rstrip(b"\r")


async def _respond(
    stream: trio.SocketStream, status: int, body: bytes, *, head_only: bool,
    content_type: str = "text/plain; charset=utf-8",
) -> None:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    await stream.send_all(head if head_only else head + body)


async def listen(address: Address) -> list[trio.SocketListener]:
    """Bind ``address`` before the daemon says it is ready.

    Raises:
        LxcflowError: it cannot be bound (in use, say), naming it.
    """
    try:
        return await trio.open_tcp_listeners(address.port, host=address.host)
    except OSError as e:
        raise LxcflowError(f"--metrics {address}: {e.strerror or e}") from None
