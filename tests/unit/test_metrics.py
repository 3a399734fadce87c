"""Metrics: the address option, and the text as Prometheus's own parser reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lxcflow.daemon.container import Container
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.metrics import Metrics
from lxcflow.daemon.metrics_text import FAMILIES, ContainerLines
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


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as prometheus_client's own parser reads the text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_scrape_reads_back_through_the_librarys_parser() -> None:
    bus = EventBus()
    containers = {f"c{i:04}": Container(f"c{i:04}", bus) for i in range(300)}
    containers["c0001"].transition(State.STARTING, Cause.COMMAND)
    containers["c0002"].restarts = 3
    containers["c0003"].health = HealthRecord("r", "tcp 1", started=0.0, status="healthy")
    sup = SimpleNamespace(containers=containers, bus=bus, on_operation=None)
    metrics = Metrics(cast(Any, sup), None)
    sup.on_operation("start", 0.02)
    text = (await metrics.render()).decode()
    samples = samples_of(text)
    for name, kind, _ in FAMILIES:  # each family once, the empty ones too
        assert text.count(f"# TYPE {name} {kind}\n") == 1
        assert text.count(f"# HELP {name} ") == 1
    states = [(dict(labels)["name"], dict(labels)["state"], v) for (n, labels), v in
              samples.items() if n == "lxcflow_container_state"]
    assert len(states) == 300 * len(State)
    assert sorted((name, state) for name, state, v in states if v == 1) == sorted(
        [("c0001", "STARTING")] + [(n, "STOPPED") for n in containers if n != "c0001"])
    assert samples[("lxcflow_container_restarts_total", (("name", "c0002"),))] == 3
    assert samples[("lxcflow_container_restarts_total", (("name", "c0004"),))] == 0
    assert samples[("lxcflow_container_healthy", (("name", "c0003"),))] == 1
    assert sum(1 for n, _ in samples if n == "lxcflow_container_healthy") == 1
    assert samples[("lxcflow_container_frozen_seconds_total", (("name", "c0000"),))] == 0
    assert samples[("lxcflow_operation_seconds_count", (("op", "start"),))] == 1
    assert samples[("lxcflow_events_total", (("to", "STARTING"),))] == 1
    # a stopped container has no figures
    assert not any(n.startswith("container_") for n, _ in samples)


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "new\nline", "plain-name_1.2"])
def test_label_values_are_escaped_as_the_parser_unescapes_them(name: str) -> None:
    lines = ContainerLines()
    lines.add(Container(name, EventBus()))
    samples = samples_of(lines.text())
    assert samples[("lxcflow_container_restarts_total", (("name", name),))] == 0


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
    served = {name for name, _ in samples_of((await metrics.render()).decode())}
    # the families a running container fills, and what a rule engine and
    # an operation add
    served |= {name for name, _, _ in FAMILIES}
    served |= {"lxcflow_restart_budget_tokens", "lxcflow_operation_seconds_bucket"}
    asked = {word for expr in dashboard_expressions()
             for word in _WORD.findall(re.sub(r'"[^"]*"|\[[^\]]*\]|\$\w+', "", expr))}
    assert asked - PROMQL <= served, asked - PROMQL - served
    assert {"container_memory_working_set_bytes", "lxcflow_container_state",
            "lxcflow_operation_seconds_bucket"} <= asked
