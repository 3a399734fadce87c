"""Metrics: the address option, and rendering in slices giving the same text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import generate_latest

from lxcflow.daemon.container import Container
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.metrics import RENDER_SLICE, Metrics
from lxcflow.daemon.options import Address
from lxcflow.errors import UsageError
from lxcflow.rules.health import HealthRecord
from lxcflow.states import Cause, State


def test_metrics_address() -> None:
    assert Address.parse("127.0.0.1:9464") == Address("127.0.0.1", 9464)
    assert Address.parse("[::1]:9464") == Address("::1", 9464)
    assert str(Address("::1", 9464)) == "[::1]:9464"
    assert str(Address.parse("localhost:80")) == "localhost:80"
    for bad in ("9464", "host:", ":9464", "h:0", "h:65536", "h:http", "h:-1"):
        with pytest.raises(UsageError, match="give HOST:PORT"):
            Address.parse(bad)


async def test_a_scrape_rendered_in_slices_reads_as_one_rendered_whole() -> None:
    bus = EventBus()
    containers = {f"c{i:04}": Container(f"c{i:04}", bus) for i in range(RENDER_SLICE // 3)}
    containers["c0001"].transition(State.STARTING, Cause.COMMAND)
    containers["c0002"].restarts = 3
    sup = SimpleNamespace(containers=containers, bus=bus, on_operation=None)
    metrics = Metrics(cast(Any, sup), None)
    sup.on_operation("start", 0.02)
    families = await metrics.families()
    # lxcflow_container_state has 7 samples a container: several slices
    assert max(len(f.samples) for f in families) > 2 * RENDER_SLICE

    class Whole:
        def collect(self) -> list[Any]:
            return families

    assert await metrics.render() == generate_latest(Whole())
    text = (await metrics.render()).decode()
    assert text.count("# TYPE lxcflow_container_state gauge") == 1
    assert 'lxcflow_container_state{name="c0001",state="STARTING"} 1.0' in text
    assert 'lxcflow_container_restarts_total{name="c0002"} 3.0' in text
    assert 'lxcflow_operation_seconds_count{op="start"} 1.0' in text
    assert 'lxcflow_events_total{to="STARTING"} 1.0' in text


DASHBOARD = Path(__file__).resolve().parents[2] / "lxcflow" / "grafana" / "lxcflow.json"
_WORD = re.compile(r"[a-z_][a-z0-9_]*")
#: PromQL's own words the dashboard uses
PROMQL = {"max", "by", "increase", "rate", "histogram_quantile", "sum", "name", "state", "op",
          "le", "to", "notice", "interface", "label_values"}


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


async def test_the_grafana_dashboard_asks_only_for_metrics_the_daemon_serves() -> None:
    bus = EventBus()
    box = Container("box", bus)
    box.health = HealthRecord("r", "tcp 1", started=0.0)
    box.notice("healthy", None, Cause.RULE)
    sup = SimpleNamespace(containers={"box": box}, bus=bus, on_operation=None)
    metrics = Metrics(cast(Any, sup), None)
    served = {s.name for f in await metrics.families() for s in f.samples}
    # the per-container figures a running container adds (see _Families.add)
    served |= {"container_cpu_usage_seconds_total", "container_memory_usage_bytes",
               "container_memory_working_set_bytes", "container_processes",
               "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
               "lxcflow_restart_budget_tokens", "lxcflow_operation_seconds_bucket"}
    asked = {word for expr in dashboard_expressions()
             for word in _WORD.findall(re.sub(r'"[^"]*"|\[[^\]]*\]|\$\w+', "", expr))}
    assert asked - PROMQL <= served, asked - PROMQL - served
    assert {"container_memory_working_set_bytes", "lxcflow_container_state",
            "lxcflow_operation_seconds_bucket"} <= asked
