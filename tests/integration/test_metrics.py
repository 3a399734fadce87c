"""``daemon --metrics``: the text format read back, and Debian's Prometheus
scraping the daemon (started here on loopback, stopped after)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Env, free_port, needs_root

pytestmark = needs_root

PROMETHEUS = "/usr/bin/prometheus"
DASHBOARD = Path(__file__).resolve().parents[2] / "lxcflow" / "grafana" / "lxcflow.json"


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample: (name, sorted labels) -> value."""
        with urllib.request.urlopen(self.url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = response.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def metrics_daemon(lxc: Env) -> Iterator[Daemon]:
    """The test's own daemon, serving metrics on a free loopback port, and
    a rule that restarts what exits non-zero."""
    rules = lxc.base / "rules"
    rules.mkdir()
    (rules / "restart.toml").write_text(
        '[[rule]]\nname = "again"\ncontainers = "crashy"\nrestart = "on-failure"\n'
        'backoff = { initial = "50ms" }\n')
    port = free_port()
    ready_r, ready_w = os.pipe()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "daemon", "--rules", str(rules), "--metrics",
         f"127.0.0.1:{port}", "--ready-fd", str(ready_w)],
        env=lxc.env, pass_fds=(ready_w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(ready_w)
    try:
        with os.fdopen(ready_r, "rb") as ready:
            assert ready.read() == b"ready\n"
        yield Daemon(daemon, f"http://127.0.0.1:{port}/metrics")
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)


def value(samples: dict, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]  # type: ignore[no-any-return]


def test_metrics_in_cadvisors_names_and_the_supervisors_own(
    lxc: Env, metrics_daemon: Daemon, bridge: str
) -> None:
    net = (f"lxc.uts.name = n\nlxc.init.cmd = sleep 1000\nlxc.net.0.type = veth\n"
           f"lxc.net.0.link = {bridge}\nlxc.net.0.flags = up\nlxc.net.0.name = eth0\n"
           "lxc.net.0.ipv4.address = 198.18.70.20/24\n")
    lxc.ok("create", "-n", "web", "-f", str(lxc.config(net, "net.conf")))
    plain = lxc.config("lxc.uts.name = p\nlxc.init.cmd = sleep 1000\n")
    lxc.ok("create", "-n", "idle", "-f", str(plain))
    lxc.ok("create", "-n", "crashy", "-f", str(plain))
    lxc.ok("start", "-n", "web")
    lxc.ok("start", "-n", "idle")
    lxc.ok("freeze", "-n", "idle")
    time.sleep(0.2)
    # 1000 bytes out of the container, to the bridge's own address
    lxc.ok("attach", "-n", "web", "--", sys.executable, "-c",
           "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
           ".sendto(b'x' * 1000, ('198.18.70.1', 9))")
    # a crash the policy restarts: two restarts, then the user stops it
    lxc.ok("start", "-n", "crashy", "--", "sh", "-c", "sleep 0.2; exit 3")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        samples = metrics_daemon.scrape()
        if value(samples, "lxcflow_container_restarts_total", name="crashy") >= 2:
            break
        time.sleep(0.1)
    lxc.run("stop", "-n", "crashy", "-k")

    samples = metrics_daemon.scrape()
    assert value(samples, "lxcflow_container_restarts_total", name="crashy") >= 2
    assert value(samples, "lxcflow_container_restarts_total", name="web") == 0
    for state in ("RUNNING", "FROZEN"):
        assert value(samples, "lxcflow_container_state", name="web", state=state) == (
            state == "RUNNING")
        assert value(samples, "lxcflow_container_state", name="idle", state=state) == (
            state == "FROZEN")
    assert value(samples, "lxcflow_container_frozen_seconds_total", name="idle") >= 0.2
    assert value(samples, "lxcflow_container_frozen_seconds_total", name="web") == 0
    usage = value(samples, "container_memory_usage_bytes", name="web")
    working = value(samples, "container_memory_working_set_bytes", name="web")
    assert 0 < working <= usage
    assert value(samples, "container_processes", name="web") == 1
    assert value(samples, "container_cpu_usage_seconds_total", name="web") > 0
    sent = value(samples, "container_network_transmit_bytes_total", name="web", interface="eth0")
    assert sent >= 1000 + 28  # the datagram and its UDP and IP headers
    assert ("container_network_receive_bytes_total",
            (("interface", "eth0"), ("name", "web"))) in samples
    assert value(samples, "lxcflow_events_total", to="FROZEN") == 1
    assert value(samples, "lxcflow_journal_last_event_id") >= 10
    assert 0 < value(samples, "lxcflow_restart_budget_tokens") <= 120
    assert value(samples, "lxcflow_operation_seconds_count", op="start") >= 4
    assert value(samples, "lxcflow_operation_seconds_count", op="freeze") == 1
    assert value(samples, "lxcflow_operation_seconds_bucket", op="freeze", le="+Inf") == 1
    # no health rule probes these: no health sample
    assert not any(name == "lxcflow_container_healthy" for name, _ in samples)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(metrics_daemon.url.replace("/metrics", "/"), timeout=5)
    assert missing.value.code == 404


def test_the_daemon_refuses_an_address_in_use_naming_it(lxc: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = lxc.run("daemon", "--metrics", f"127.0.0.1:{port}", timeout=30)
    assert r.returncode == 1
    assert f"--metrics 127.0.0.1:{port}: Address already in use" in r.stderr
    for bad in ("9464", "localhost:", "127.0.0.1:99999", ":80"):
        r = lxc.run("daemon", "--metrics", bad)
        assert r.returncode == 2, bad
        assert r.stderr.strip() == (f"lxcflow daemon: --metrics {bad!r}: give HOST:PORT, "
                                    "like 127.0.0.1:9464")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A config file and storage directory for Debian's Prometheus."""
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"{PROMETHEUS} is missing: make test installs Debian's prometheus")
    base = tmp_path / "prometheus"
    base.mkdir()
    yield f"127.0.0.1:{free_port()}", base
    shutil.rmtree(base, ignore_errors=True)


def test_prometheus_scrapes_the_daemon_and_answers_queries(
    lxc: Env, metrics_daemon: Daemon, prometheus: tuple[str, Path]
) -> None:
    listen, base = prometheus
    config = base / "prometheus.yml"
    target = urllib.parse.urlsplit(metrics_daemon.url).netloc
    config.write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: lxcflow
    static_configs:
      - targets: ["{target}"]
""")
    lxc.ok("create", "-n", "db", "-f", str(lxc.config("lxc.uts.name = d\n"
                                                      "lxc.init.cmd = sleep 1000\n")))
    lxc.ok("start", "-n", "db")
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
         f"--web.listen-address={listen}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def query(expr: str) -> list[dict]:
            url = f"http://{listen}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
            assert body["status"] == "success"
            return body["data"]["result"]  # type: ignore[no-any-return]

        deadline = time.monotonic() + 60
        found: list[dict] = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.5)
            try:
                found = query('lxcflow_container_state{name="db",state="RUNNING"}')
            except OSError:
                continue  # not listening yet
        assert found, "Prometheus never stored a scrape of the daemon"
        assert found[0]["value"][1] == "1"
        assert found[0]["metric"]["job"] == "lxcflow"
        [working] = query('container_memory_working_set_bytes{name="db"}')
        assert float(working["value"][1]) > 0
        [up] = query('up{job="lxcflow"}')
        assert up["value"][1] == "1"
        # the shipped dashboard's queries are PromQL this Prometheus takes
        board = json.loads(DASHBOARD.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                query(target["expr"].replace("$name", ".*"))
    finally:
        server.terminate()
        server.wait(timeout=20)
