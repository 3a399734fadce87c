"""Health checks on real containers: exec probes through attach's path, tcp and
http probes inside the container's own network namespace, the verdicts as
notices, the actions they drive, and the rules that react to them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import trio

from lxcflow.daemon import views
from lxcflow.states import Event, State
from tests.integration.conftest import Env, free_port, needs_root
from tests.integration.rules_rig import Rig, collect, loaded

pytestmark = needs_root

S = State


def verdicts(events: list[Event], name: str | None = None) -> list[str]:
    return [e.notice for e in events if e.notice in ("healthy", "unhealthy")
            and (name is None or e.container == name)]  # type: ignore[misc]


async def listening(pid: int, port: int) -> None:
    """Wait until a socket in ``pid``'s network namespace listens on
    127.0.0.1:``port`` (its /proc/PID/net/tcp is that namespace's table)."""
    wanted = f"0100007F:{port:04X}"

    def listens() -> bool:
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in table)

    # Nothing tells of a socket that begins to listen: look every 10 ms.
    with trio.fail_after(10):
        while not listens():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_an_exec_probe_that_fails_makes_it_unhealthy_then_restarts_it_healthy(
    rig: Rig, lxc: Env, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"  # the container shares the host's root: it sees this
    # sleep, as an init, ignores the halt signal: a restart would wait out its grace
    await rig.sup.create("svc", str(lxc.config(
        "lxc.uts.name = svc\nlxc.init.cmd = sleep 1000\nlxc.signal.halt = SIGKILL\n")))
    probe = f'["sh", "-c", "echo probing; test ! -e {broken}"]'
    await loaded(rig, f"""
[[rule]]
name = "web-alive"
containers = "svc"
health = {{ exec = {probe}, every = "150ms", timeout = "2s", retries = 2 }}
backoff = {{ initial = "400ms" }}
actions = ["restart"]
""", "web-alive")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("svc")
        events = await collect(sub, lambda ev: verdicts(ev) == ["healthy"])
        c = rig.sup.get("svc")
        assert c.health is not None
        assert (c.health.status, c.health.last_output) == ("healthy", "probing")
        broken.touch()
        events += await collect(sub, lambda ev: "unhealthy" in verdicts(ev))
        unhealthy = events[-1]
        assert unhealthy.cause_text == "rule:web-alive"
        assert unhealthy.detail == "exit 1: probing"
        assert views.summary(c)["health"] == "unhealthy"
        # Mended only once the restart is under way: a probe that passed in
        # the backoff would call the restart off.
        more = await collect(sub, lambda ev: any(e.to_state is S.STOPPING for e in ev))
        broken.unlink()
        more += await collect(sub, lambda ev: verdicts(ev) == ["healthy"])
    # the restart came from the rule, after the backoff, and the new run is healthy
    transitions = [(e.to_state, e.cause_text) for e in more if not e.is_notice]
    assert transitions == [(S.STOPPING, "rule:web-alive"), (S.STOPPED, "kernel"),
                           (S.STARTING, "rule:web-alive"), (S.RUNNING, "kernel")]
    stopping = next(e for e in more if e.to_state is S.STOPPING)
    assert (stopping.time_ns - unhealthy.time_ns) / 1e9 >= 0.4
    # two failures in a row make it unhealthy: the failing probes in between
    # changed nothing
    assert verdicts(events) == ["healthy", "unhealthy"]
    assert rig.sup.get("svc").health.status == "healthy"  # type: ignore[union-attr]


async def test_a_probe_that_hangs_is_killed_with_its_children_at_its_timeout(rig: Rig) -> None:
    hang = '["sh", "-c", "sleep 300 & sleep 301"]'
    await loaded(rig, f"""
[[rule]]
name = "hangs"
containers = "web"
health = {{ exec = {hang}, every = "100ms", timeout = "300ms", retries = 1 }}
""", "hangs")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("web")
        events = await collect(sub, lambda ev: verdicts(ev) == ["unhealthy"])
    assert events[-1].detail == "timed out after 0.3 s"
    _, run, cgroup = rig.sup.running("web")
    await trio.sleep(0.05)  # what a probe began after the verdict is not the point
    left = [p["command"] for p in views.processes(cgroup)]
    assert not any(cmd.startswith("sleep 30") for cmd in left[1:]), left
    # the supervisor went on meanwhile: other operations answer
    await rig.sup.start("db")
    assert rig.sup.get("db").state is S.RUNNING


async def test_tcp_and_http_probes_reach_a_server_inside_the_containers_namespace(
    rig: Rig, lxc: Env
) -> None:
    port, closed = free_port(), free_port()
    server = (f"lxc.uts.name = served\nlxc.net.0.type = empty\nlxc.init.cmd = {sys.executable} "
              f"-m http.server --bind 127.0.0.1 --directory / {port}\n")
    for name in ("tcp-ok", "http-ok", "http-404", "tcp-closed"):
        await rig.sup.create(name, str(lxc.config(server, f"{name}.conf")))
    names = ("tcp-ok", "http-ok", "http-404", "tcp-closed")
    for name in names:
        await rig.sup.start(name)
    # A server is RUNNING from its exec, well before it listens: the probes
    # begin (with the rules) only once every one does, so that a first probe
    # refused in between cannot decide the verdict.
    for name in names:
        _, run, _ = rig.sup.running(name)
        await listening(run.shim.init_pid, port)
    await loaded(rig, f"""
[[rule]]
name = "tcp-ok"
containers = "tcp-ok"
health = {{ tcp = {port}, every = "100ms", timeout = "1s", retries = 1 }}

[[rule]]
name = "http-ok"
containers = "http-ok"
health = {{ http = "{port}/etc/", every = "100ms", timeout = "1s", retries = 1 }}

[[rule]]
name = "http-404"
containers = "http-404"
health = {{ http = "{port}/no/such/page", every = "100ms", timeout = "1s", retries = 1 }}

[[rule]]
name = "tcp-closed"
containers = "tcp-closed"
health = {{ tcp = {closed}, every = "100ms", timeout = "1s", retries = 1 }}
""", "tcp-ok", "http-ok", "http-404", "tcp-closed")
    with rig.sup.bus.subscribe() as sub:
        events = await collect(sub, lambda ev: all(verdicts(ev, n) for n in names), limit=30)
    said = {e.container: (e.notice, e.detail) for e in events
            if e.notice in ("healthy", "unhealthy")}
    assert said["tcp-ok"] == ("healthy", f"connected to 127.0.0.1:{port}")
    assert said["http-ok"] == ("healthy", "GET /etc/: HTTP/1.0 200 OK")
    assert said["http-404"][0] == "unhealthy"
    assert str(said["http-404"][1]).startswith("GET /no/such/page: HTTP/1.0 404")
    assert said["tcp-closed"] == ("unhealthy", f"127.0.0.1:{closed}: Connection refused")
    # nothing answers on the host's own loopback: the probes went inside
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


async def test_one_socket_serves_a_runs_probes_refused_or_not_and_leaves_no_time_wait(
    rig: Rig, lxc: Env, tmp_path: Path
) -> None:
    port = free_port()
    server = tmp_path / "late.py"  # refuses for a while, then accepts and closes
    server.write_text(
        "import socket, time\ntime.sleep(0.6)\n"
        f"s = socket.create_server(('127.0.0.1', {port}))\n"
        "while True:\n    s.accept()[0].close()\n")
    await rig.sup.create("late", str(lxc.config(
        f"lxc.uts.name = late\nlxc.net.0.type = empty\n"
        f"lxc.init.cmd = {sys.executable} {server}\n", "late.conf")))
    await loaded(rig, f"""
[[rule]]
name = "late"
containers = "late"
health = {{ tcp = {port}, every = "50ms", timeout = "1s", retries = 1 }}
""", "late")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("late")
        events = await collect(sub, lambda ev: verdicts(ev) == ["unhealthy", "healthy"])
    assert events[-1].detail == f"connected to 127.0.0.1:{port}"
    _, run, _ = rig.sup.running("late")
    await trio.sleep(0.5)  # ten probes more, each a connection
    c = rig.sup.get("late")
    assert c.health is not None
    assert c.health.status == "healthy"
    # Each probe's connection was reset, not closed: nothing waits out
    # TIME_WAIT (state 06) in the container's namespace, and at most the
    # probe under way is connected there.
    states = [line.split()[3] for line in
              Path(f"/proc/{run.shim.init_pid}/net/tcp").read_text().splitlines()[1:]]
    assert "06" not in states
    assert states.count("0A") == 1  # the server's listener
    assert len(states) <= 3


async def test_on_healthy_starts_the_app_once_the_db_is_healthy(rig: Rig, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    await loaded(rig, f"""
[[rule]]
name = "db-ready"
containers = "db"
health = {{ exec = ["test", "-e", "{ready}"], every = "100ms", timeout = "1s", retries = 50 }}

[[rule]]
name = "app-after-db"
containers = "db"
on = "HEALTHY"
actions = [{{ start = "app" }}]
""", "db-ready", "app-after-db")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("db")
        with trio.move_on_after(0.6):
            early = await collect(sub, lambda ev: any(e.container == "app" for e in ev))
            raise AssertionError(f"app started before db was healthy: {early}")
        assert rig.sup.get("app").state is S.STOPPED
        assert rig.sup.get("db").health.status == "starting"  # type: ignore[union-attr]
        ready.touch()
        events = await collect(sub, lambda ev: any(
            e.container == "app" and e.to_state is S.RUNNING and not e.is_notice for e in ev))
    healthy = next(e for e in events if e.notice == "healthy")
    starting = next(e for e in events if e.container == "app" and e.to_state is S.STARTING)
    assert healthy.container == "db"
    assert healthy.id < starting.id
    assert starting.cause_text == "rule:app-after-db"


async def test_a_frozen_container_is_not_probed_and_keeps_its_health(rig: Rig) -> None:
    await loaded(rig, """
[[rule]]
name = "alive"
containers = "web"
health = { exec = ["true"], every = "100ms", timeout = "200ms", retries = 1 }
""", "alive")
    with rig.sup.bus.subscribe() as sub:
        await rig.sup.start("web")
        await collect(sub, lambda ev: verdicts(ev) == ["healthy"])
        await rig.sup.freeze("web")
        with trio.move_on_after(1.0):
            events = await collect(sub, lambda ev: bool(verdicts(ev)))
            raise AssertionError(f"a frozen container got a verdict: {events}")
        c = rig.sup.get("web")
        assert c.health is not None
        assert c.health.status == "healthy"
        await rig.sup.unfreeze("web")
        await rig.sup.stop("web", kill=True)
    assert c.health is None  # a run's health ends with it


def run_daemon(lxc: Env, rules: Path) -> subprocess.Popen[bytes]:
    """The test's own daemon on ``rules``, ready when this returns."""
    ready_r, ready_w = os.pipe()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "daemon", "--rules", str(rules),
         "--ready-fd", str(ready_w)],
        env=lxc.env, pass_fds=(ready_w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        assert ready.read() == b"ready\n"
    return daemon


def test_wait_healthy_info_and_ls_through_the_cli(lxc: Env, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    rules = lxc.base / "rules"
    rules.mkdir()
    (rules / "health.toml").write_text(f"""
[[rule]]
name = "db-ready"
containers = "db"
health = {{ exec = ["test", "-e", "{ready}"], every = "100ms", timeout = "1s", retries = 100 }}
""")
    config = lxc.config("lxc.uts.name = db\nlxc.init.cmd = sleep 1000\n")
    daemon = run_daemon(lxc, rules)
    waiter = None
    try:
        lxc.ok("create", "-n", "db", "-f", str(config))
        lxc.ok("create", "-n", "other", "-f", str(config))
        # no rule probes it: no wait, and the reason
        r = lxc.run("wait", "-n", "db", "-n", "other", "--healthy", "-t", "30")
        assert (r.returncode, r.stderr) == (
            1, "lxcflow wait: no health rule probes 'other': nothing can find it healthy\n")
        for both_or_neither in (("--healthy", "-s", "RUNNING"), ()):
            r = lxc.run("wait", "-n", "db", *both_or_neither)
            assert (r.returncode, r.stderr) == (
                2, "lxcflow wait: give -s/--states or --healthy (one of them)\n")
        # begun before the container runs, it returns once the probe passes
        waiter = subprocess.Popen(
            [sys.executable, "-m", "lxcflow", "wait", "-n", "db", "--healthy", "-t", "30"],
            env=lxc.env, stderr=subprocess.PIPE, text=True)
        lxc.ok("start", "-n", "db")
        lxc.ok("wait", "-n", "db", "-s", "RUNNING", "-t", "10")
        r = lxc.run("wait", "-n", "db", "--healthy", "-t", "0.5")
        assert (r.returncode, r.stderr) == (
            1, "lxcflow wait: timed out after 0.5 s waiting for db to be RUNNING and healthy\n")
        assert waiter.poll() is None
        info = json.loads(lxc.ok("info", "-n", "db", "--json"))
        assert info["health"] == "starting"
        assert info["health_check"]["probe"] == f"exec test -e {ready}"
        assert info["health_check"]["last_ok"] is False
        ready.touch()
        assert waiter.wait(timeout=20) == 0, waiter.stderr.read() if waiter.stderr else ""
        # already healthy: at once
        assert lxc.run("wait", "-n", "db", "--healthy", "-t", "5").returncode == 0
        info = json.loads(lxc.ok("info", "-n", "db", "--json"))
        assert (info["health"], info["health_check"]["rule"]) == ("healthy", "db-ready")
        text = lxc.ok("info", "-n", "db")
        assert f"Health:         healthy (exec test -e {ready}, rule db-ready)" in text
        assert " Last probe:    passed " in text
        rows = [line.split() for line in lxc.ok("ls", "-f").splitlines()]
        assert rows[0][:3] == ["NAME", "STATE", "HEALTH"]
        assert rows[1][:3] == ["db", "RUNNING", "healthy"]
        assert rows[2][:3] == ["other", "STOPPED", "-"]
        assert "    db: healthy" in lxc.ok("rules", "list").splitlines()
        notices = [json.loads(line) for line in
                   lxc.ok("monitor", "--since", "0", "--no-follow", "--json").splitlines()]
        healthy = [e for e in notices if e["notice"] == "healthy"]
        assert [(e["container"], e["kind"], e["cause"]) for e in healthy] == [
            ("db", "notice", "rule:db-ready")]
        said = lxc.ok("monitor", "--since", "0", "--no-follow").splitlines()
        assert "'db' healthy [rule:db-ready]" in said
        lxc.ok("stop", "-n", "db", "-k")
        assert json.loads(lxc.ok("info", "-n", "db", "--json"))["health"] is None
    finally:
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        daemon.terminate()
        daemon.wait(timeout=20)
