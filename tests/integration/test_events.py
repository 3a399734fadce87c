"""monitor, wait, the journal and re-adoption, on the real kernel."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from lxcflow.cgroups import open_manager
from lxcflow.daemon import handlers, server, views
from lxcflow.daemon.container import Container
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.journal import JOURNAL_FILE, Journal
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import OperationTimeout
from lxcflow.states import State
from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def events(lxc: Env, *args: str) -> list[dict[str, Any]]:
    out = lxc.ok("monitor", "--json", "--no-follow", *args)
    return [json.loads(line) for line in out.splitlines()]


def transitions(evs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["container"], e["from"], e["to"]) for e in evs]


# ---------------------------------------------------------------- CLI


def test_wait_returns_at_once_when_already_there(lxc: Env, host_root_config: Path) -> None:
    lxc.ok("create", "-n", "db", "-f", str(host_root_config))
    t0 = time.monotonic()
    r = lxc.run("wait", "-n", "db", "-s", "RUNNING|STOPPED", "-t", "30", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"db": "STOPPED"}
    assert time.monotonic() - t0 < 10


def test_wait_errors(lxc: Env, host_root_config: Path) -> None:
    lxc.ok("create", "-n", "db", "-f", str(host_root_config))
    r = lxc.run("wait", "-n", "db", "-s", "RUNNING", "-t", "0.3")
    assert r.returncode == 1
    assert r.stderr.strip() == "lxcflow wait: timed out after 0.3 s waiting for db to be RUNNING"
    r = lxc.run("wait", "-n", "db", "-s", "RUNING")
    assert r.returncode == 2
    assert "unknown state 'RUNING'" in r.stderr
    assert r.stderr.count("\n") == 1
    assert lxc.run("wait", "-n", "db/..", "-s", "RUNNING").returncode == 2
    assert lxc.run("wait", "-n", "db", "-s", "RUNNING", "-t", "nan").returncode == 2
    assert lxc.run("wait", "-n", "db", "-s", "RUNNING", "-t", "-1").returncode == 2
    assert lxc.run("wait", "-s", "RUNNING").returncode == 2


def test_monitor_errors(lxc: Env) -> None:
    r = lxc.run("monitor", "-n", "(", "--no-follow")
    assert r.returncode == 2
    assert "bad regex '('" in r.stderr
    for since in ("last tuesday", "@inf", "1e400s"):
        r = lxc.run("monitor", "--since", since)
        assert r.returncode == 2, since
        assert "bad --since" in r.stderr
    r = lxc.run("monitor", "--since", str(2**64), "--no-follow")
    assert r.returncode == 2
    assert "out of range" in r.stderr


def test_wait_for_a_name_that_does_not_exist_yet(lxc: Env, host_root_config: Path) -> None:
    waiter = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "wait", "-n", "late", "-n", "later", "-s", "RUNNING",
         "-t", "30"], env=lxc.env, stderr=subprocess.PIPE, text=True,
    )
    try:
        lxc.ok("create", "-n", "late", "-f", str(host_root_config))
        lxc.ok("start", "-n", "late", "--", "sleep", "1000")
        time.sleep(0.3)
        assert waiter.poll() is None  # all names must match
        lxc.ok("start", "-n", "later", "-f", str(host_root_config), "--", "sleep", "1000")
        assert waiter.wait(timeout=20) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_monitor_replays_then_follows(lxc: Env, host_root_config: Path) -> None:
    r = lxc.run("execute", "-n", "one", "-f", str(host_root_config), "--", "sh", "-c", "exit 3")
    assert r.returncode == 3
    first = events(lxc, "--since", "0")
    assert transitions(first) == [
        ("one", "STOPPED", "STARTING"), ("one", "STARTING", "RUNNING"),
        ("one", "RUNNING", "STOPPING"), ("one", "STOPPING", "STOPPED"),
    ]
    assert [e["id"] for e in first] == sorted(e["id"] for e in first)
    assert first[-1]["exit_code"] == 3
    text = lxc.ok("monitor", "--since", "0", "--no-follow")
    assert text.splitlines()[-2:] == ["'one' changed state to [STOPPED]",
                                      "'one' exited with status [3]"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "monitor", "--json", "-n", "^two$",
         "--since", str(first[-1]["id"])],
        env=lxc.env, stdout=subprocess.PIPE, text=True,
    )
    try:
        lxc.ok("execute", "-n", "one", "-f", str(host_root_config), "--", "true")
        lxc.ok("execute", "-n", "two", "-f", str(host_root_config), "--", "true")
        assert follower.stdout is not None
        got = [json.loads(follower.stdout.readline()) for _ in range(4)]
        assert transitions(got) == [
            ("two", "STOPPED", "STARTING"), ("two", "STARTING", "RUNNING"),
            ("two", "RUNNING", "STOPPING"), ("two", "STOPPING", "STOPPED"),
        ]
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0  # ^C ends a monitor cleanly
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    # Relative times and ids both select from the journal.
    assert len(events(lxc, "--since", "10m")) == 12
    assert transitions(events(lxc, "--since", str(first[-1]["id"] + 4), "-n", "two"))[0] == (
        "two", "STOPPED", "STARTING")


def test_ids_increase_across_daemon_restarts(lxc: Env, host_root_config: Path) -> None:
    lxc.ok("execute", "-n", "x", "-f", str(host_root_config), "--", "true")
    before = events(lxc, "--since", "0")[-1]["id"]
    lxc.kill_daemon(signal.SIGKILL)
    lxc.ok("execute", "-n", "x", "-f", str(host_root_config), "--", "true")
    after = events(lxc, "--since", "0")
    assert [e["id"] for e in after] == list(range(1, before + 5))


def test_readoption_reports_what_happened_while_away(lxc: Env, host_root_config: Path) -> None:
    for name in ("run", "frz", "dies"):
        lxc.ok("create", "-n", name, "-f", str(host_root_config))
        lxc.ok("start", "-n", name, "--", "sh", "-c", "sleep 1000; exit 7")
    mark = events(lxc, "--since", "0")[-1]["id"]
    pids = {n: json.loads(lxc.ok("info", "-n", n, "--json"))["pid"] for n in ("run", "frz", "dies")}
    lxc.kill_daemon(signal.SIGKILL)
    # While no daemon watches: one container is frozen, one's command exits 7.
    freeze = Path("/sys/fs/cgroup/unified") / lxc.paths.cgroup_parent / "frz" / "cgroup.freeze"
    freeze.write_text("1")
    child = Path(f"/proc/{pids['dies']}/task/{pids['dies']}/children").read_text().split()[0]
    os.kill(int(child), signal.SIGTERM)
    for _ in range(500):
        if not os.path.exists(f"/proc/{pids['dies']}"):
            break
        time.sleep(0.01)
    recovered = events(lxc, "--since", str(mark))  # starts a new daemon
    assert sorted(transitions(recovered)) == sorted([
        ("frz", "RUNNING", "FREEZING"), ("frz", "FREEZING", "FROZEN"),
        ("dies", "RUNNING", "STOPPING"), ("dies", "STOPPING", "STOPPED"),
    ])
    assert {e["cause"] for e in recovered} == {"recovered"}
    assert [e["exit_code"] for e in recovered if e["container"] == "dies"] == [7, 7]
    assert json.loads(lxc.ok("info", "-n", "run", "--json"))["pid"] == pids["run"]
    assert json.loads(lxc.ok("info", "-n", "frz", "--json"))["state"] == "FROZEN"
    # A second restart finds nothing new to report.
    lxc.kill_daemon(signal.SIGKILL)
    assert events(lxc, "--since", str(recovered[-1]["id"])) == []
    lxc.ok("destroy", "-n", "frz", "-f")
    lxc.ok("destroy", "-n", "run", "-f")


def test_a_lost_run_directory_is_reported_stopped(lxc: Env, host_root_config: Path) -> None:
    lxc.ok("create", "-n", "gone", "-f", str(host_root_config))
    lxc.ok("start", "-n", "gone", "--", "sleep", "1000")
    mark = events(lxc, "--since", "0")[-1]["id"]
    lxc.kill_daemon(signal.SIGKILL)
    # What a reboot does: the processes and the run directory are gone.
    manager = open_manager(parent=lxc.paths.cgroup_parent)
    cg = manager.open("gone")
    cg.kill(signal.SIGKILL)
    for _ in range(500):
        if not cg.pids():
            break
        time.sleep(0.01)
    cg.remove()
    state = json.loads((lxc.paths.rundir / "containers" / "gone" / "state.json").read_text())
    for _ in range(500):
        if not os.path.exists(f"/proc/{state['shim_pid']}"):
            break
        time.sleep(0.01)
    subprocess.run(["rm", "-rf", str(lxc.paths.rundir / "containers" / "gone")], check=True)
    assert transitions(events(lxc, "--since", str(mark))) == [
        ("gone", "RUNNING", "STOPPING"), ("gone", "STOPPING", "STOPPED"),
    ]


def test_corrupt_journal_is_reported_and_supervision_goes_on(
    lxc: Env, host_root_config: Path
) -> None:
    lxc.paths.lxcpath.mkdir(parents=True)
    (lxc.paths.lxcpath / JOURNAL_FILE).write_bytes(b"garbage" * 1000)
    lxc.ok("execute", "-n", "x", "-f", str(host_root_config), "--", "true")
    log = (lxc.paths.rundir / "daemon.log").read_text()
    assert "journal_unreadable" in log
    assert any(p.name.startswith(JOURNAL_FILE + ".broken-") for p in lxc.paths.lxcpath.iterdir())
    assert len(events(lxc, "--since", "0")) == 4


# ---------------------------------------------------------------- in-process


@pytest.fixture
async def served(lxc: Env, shim_binary: Path) -> AsyncIterator[Supervisor]:
    lxc.paths.lxcpath.mkdir(parents=True)
    bus = EventBus(Journal(lxc.paths.lxcpath / JOURNAL_FILE))
    sup = Supervisor(lxc.paths, open_manager(parent=lxc.paths.cgroup_parent),
                     shim_binary=shim_binary, bus=bus)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        dispatch = handlers.dispatcher(handlers.Services(sup))
        await nursery.start(server.serve, lxc.paths.socket, dispatch, handlers.OPEN_ENDED)
        yield sup
        nursery.cancel_scope.cancel()


async def call_wait(sup: Supervisor, names: list[str], states: str, limit: float) -> Any:
    """The wait operation exactly as the socket runs it."""
    replies: list[dict[str, Any]] = []

    async def reply(message: dict[str, Any]) -> None:
        replies.append(message)

    await handlers.HANDLERS["wait"](
        handlers.Services(sup),
        handlers.Args({"names": names, "states": [states], "timeout": limit}), [], reply,
    )
    return replies[-1]["result"]


async def until_stopped(c: Container) -> None:
    with trio.fail_after(10):
        await c.wait_until(lambda: c.state is State.STOPPED)


async def test_wait_never_misses_a_state_held_for_an_instant(
    served: Supervisor, host_root_config: Path
) -> None:
    """Wait for RUNNING, then start a command that exits at once: RUNNING lasts
    microseconds, and the wait must still see it, every time."""
    await served.create("blink", str(host_root_config))
    results: list[Any] = []

    async def waiter() -> None:
        results.append(await call_wait(served, ["blink"], "RUNNING", 10))

    for i in range(60):
        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await until_stopped(await served.start("blink", command=["true"]))
        assert results == [{"blink": "RUNNING"}] * (i + 1)


async def test_wait_times_out_with_an_error(served: Supervisor, host_root_config: Path) -> None:
    await served.create("idle", str(host_root_config))
    with pytest.raises(OperationTimeout):
        await call_wait(served, ["idle"], "RUNNING", 0.05)


async def test_a_subscriber_that_never_reads_blocks_nothing(
    served: Supervisor, lxc: Env, host_root_config: Path
) -> None:
    await served.create("busy", str(host_root_config))
    await served.start("busy", command=["sleep", "1000"])
    # A client asks for every event, then never reads a byte.
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await trio.to_thread.run_sync(stuck.connect, str(lxc.paths.socket))
    stuck.sendall(b'{"op": "monitor", "args": {}}\n')
    try:
        first = served.bus.last_id
        with trio.fail_after(60):  # 1,002 transitions; the supervisor keeps going
            for _ in range(334):
                await served.freeze("busy")
                await served.unfreeze("busy")
        assert served.bus.last_id - first == 1002
        subs = list(served.bus._subscribers)
        assert subs, "the stuck client's subscription is gone"
        for sub in subs:  # memory stays bounded: at most the buffer, the rest counted
            assert sub._receive.statistics().current_buffer_used <= 1024
        # The journal holds every event, for when the client resumes by id.
        assert len(served.bus.journal.since(after_id=first, limit=2000)) == 1002  # type: ignore[union-attr]
        # Everyone else is served as usual meanwhile.
        assert views.info(served.get("busy"))["state"] == "RUNNING"
    finally:
        stuck.close()
        await served.stop("busy", kill=True)


def test_a_stop_cut_short_by_the_daemons_death_is_finished(
    lxc: Env, host_root_config: Path
) -> None:
    lxc.ok("create", "-n", "web", "-f", str(host_root_config))
    lxc.ok("start", "-n", "web", "--", "sh", "-c", "trap '' PWR; sleep 1000 & wait")
    stopper = subprocess.Popen(
        [sys.executable, "-m", "lxcflow", "stop", "-n", "web", "-t", "60"],
        env=lxc.env, stderr=subprocess.DEVNULL,
    )
    try:
        lxc.ok("wait", "-n", "web", "-s", "STOPPING", "-t", "20")
        mark = events(lxc, "--since", "0")[-1]["id"]
        lxc.kill_daemon(signal.SIGKILL)  # mid-stop: SIGPWR sent, SIGKILL not yet
        assert stopper.wait(timeout=20) == 1
    finally:
        if stopper.poll() is None:
            stopper.kill()
            stopper.wait()
    lxc.ok("wait", "-n", "web", "-s", "STOPPED", "-t", "20")
    assert transitions(events(lxc, "--since", str(mark))) == [("web", "STOPPING", "STOPPED")]


async def test_an_abandoned_wait_or_monitor_is_dropped(
    served: Supervisor, lxc: Env, host_root_config: Path
) -> None:
    await served.create("never", str(host_root_config))
    baseline = len(served.bus._subscribers)
    clients = []
    for request in (b'{"op": "wait", "args": {"names": ["never"], "states": ["FROZEN"]}}\n',
                    b'{"op": "monitor", "args": {}}\n'):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await trio.to_thread.run_sync(s.connect, str(lxc.paths.socket))
        s.sendall(request)
        clients.append(s)
    await subscribers_become(served, baseline + 2)
    for s in clients:
        s.close()  # what ^C on `lxcflow wait` / `lxcflow monitor` does
    await subscribers_become(served, baseline)


async def subscribers_become(sup: Supervisor, count: int) -> None:
    # The server side reacts to socket I/O: give it turns until it has.
    with trio.fail_after(10):
        while len(sup.bus._subscribers) != count:  # noqa: ASYNC110 (no event to wait on)
            await trio.sleep(0.01)
