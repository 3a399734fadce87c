"""What a daemon restart and a client's hang-up must not cost, on the real kernel.

* A stopped container's last exit is part of what ``info`` and ``ls`` report;
  a new daemon (after SIGTERM or SIGKILL of the old one, any number of
  times) reports it just the same.
* A client that goes away in the middle of a request is normal: the daemon
  logs it in one debug line (``client_hung_up``), never as an internal
  error with a traceback, and goes on serving.
"""

from __future__ import annotations

import json
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

#: a command that is killed by a signal: PID 1 of its namespace ignores the
#: signals it sends itself (``kill -9 $$`` does nothing there), but not a fault.
#: No core file: the host's core_pattern may be a plain file name.
SEGFAULT = ["sh", "-c", f"ulimit -c 0; exec {shlex.quote(sys.executable)} -c "
            "'import ctypes; ctypes.string_at(0)'"]


# ---------------------------------------------------------------- last exit


def last_exits(lxc: Env, name: str) -> dict[str, Any]:
    """What ``info``, ``info --json`` and ``ls --json`` say about how ``name`` last ended."""
    text = lxc.ok("info", "-n", name)
    rows = [line.split(":", 1) for line in text.splitlines() if ":" in line]
    shown = {key.strip(): value.strip() for key, value in rows}
    info = json.loads(lxc.ok("info", "-n", name, "--json"))
    listed = {row["name"]: row for row in json.loads(lxc.ok("ls", "--json"))}
    assert name in listed, listed
    return {
        "info: State": shown.get("State"),
        "info: Last exit": shown.get("Last exit", "(no such line)"),
        "info --json: state": info["state"],
        "info --json: last_exit": info.get("last_exit", "(no such field)"),
        "ls --json: state": listed[name]["state"],
        "ls --json: last_exit": listed[name].get("last_exit", "(no such field)"),
    }


def reported(expected: dict[str, int | None]) -> dict[str, Any]:
    """What :func:`last_exits` must find for a STOPPED container that ended so."""
    code, sig = expected["code"], expected["signal"]
    how = f"code {code}" if sig is None else f"signal {sig}"
    return {
        "info: State": "STOPPED", "info: Last exit": how,
        "info --json: state": "STOPPED", "info --json: last_exit": expected,
        "ls --json: state": "STOPPED", "ls --json: last_exit": expected,
    }


def assert_reported(seen: dict[str, dict[str, Any]], expected: dict[str, int | None]) -> None:
    """Every view at every step says what ``expected`` says; else one line per wrong view."""
    want = reported(expected)
    wrong = [f"{when}: {view} is {got!r}, not {want[view]!r}"
             for when, views in seen.items() for view, got in views.items() if got != want[view]]
    assert not wrong, "\n".join(wrong)


def restart_daemon(lxc: Env, sig: int) -> None:
    """End the daemon with ``sig``; the next CLI call starts a new one."""
    old = lxc.daemon_pid()
    assert old is not None
    lxc.kill_daemon(sig)
    assert not Path(f"/proc/{old}").exists(), f"daemon {old} outlived {sig!r}"
    r = lxc.run("ls", "--no-spawn")
    assert r.returncode == 1, r
    assert "no daemon answers" in r.stderr, r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize(("command", "expected"), [
    (["sh", "-c", "exit 3"], {"code": 3, "signal": None}),
    (SEGFAULT, {"code": None, "signal": signal.SIGSEGV.value}),
], ids=["exit-3", "segfault"])
def test_last_exit_survives_daemon_restarts(
    lxc: Env, host_root_config: Path, sig: signal.Signals, command: list[str],
    expected: dict[str, int | None],
) -> None:
    lxc.ok("create", "-n", "x", "-f", str(host_root_config))
    lxc.ok("start", "-n", "x", "--", *command)
    lxc.ok("wait", "-n", "x", "-s", "STOPPED", "-t", "20")
    # Everything gathered first, compared once: a failure shows every view at every step.
    seen = {"before any restart": last_exits(lxc, "x")}
    for n in (1, 2):
        restart_daemon(lxc, sig)
        seen[f"after {sig.name} restart #{n}"] = last_exits(lxc, "x")
    assert_reported(seen, expected)


def test_a_new_run_replaces_the_remembered_exit(lxc: Env, host_root_config: Path) -> None:
    lxc.ok("create", "-n", "x", "-f", str(host_root_config))
    lxc.ok("start", "-n", "x", "--", "sh", "-c", "exit 3")
    lxc.ok("wait", "-n", "x", "-s", "STOPPED", "-t", "20")
    restart_daemon(lxc, signal.SIGTERM)
    lxc.ok("start", "-n", "x", "--", "sh", "-c", "exit 5")
    lxc.ok("wait", "-n", "x", "-s", "STOPPED", "-t", "20")
    seen = {"after the second run": last_exits(lxc, "x")}
    restart_daemon(lxc, signal.SIGKILL)
    seen["after a restart"] = last_exits(lxc, "x")
    assert_reported(seen, {"code": 5, "signal": None})


# ---------------------------------------------------------------- hang-ups


def request(op: str, **args: Any) -> bytes:
    return json.dumps({"op": op, "args": args}).encode() + b"\n"


LIST = request("list")
RULES = request("rules")
PING = request("ping")
#: replays the journal at once, then follows: the daemon has something to write
MONITOR = request("monitor", since_id=0, follow=True)

#: how an internal error (a bug) is logged
FAILED = ("request_failed", "connection_failed")


class LoggedDaemon:
    """``lxcflow daemon`` as our own child, logging JSON at debug level to a file."""

    def __init__(self, lxc: Env) -> None:
        self.lxc = lxc
        self.log = lxc.base / "daemon.log"
        hooks, rules = lxc.base / "hooks", lxc.base / "rules"
        hooks.mkdir()  # empty: no host-wide hook runs on our events
        rules.mkdir()  # empty: `rules` has an answer
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lxcflow", "daemon", "--log-format", "json",
                 "--log-level", "debug", "--hooks", str(hooks), "--rules", str(rules)],
                env=lxc.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,  # a ^C of the test reaches it only through stop()
            )
        try:
            deadline = time.monotonic() + 20
            while True:
                assert self.proc.poll() is None, f"the daemon exited:\n{self.text()}"
                try:
                    if self.call(PING)["ok"]:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"the daemon never answered:\n{self.text()}"
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # A blocking connect waits while the daemon's backlog is full (one
            # with a Python timeout fails at once with EAGAIN), for 10 s at most.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
            s.connect(str(self.lxc.paths.socket))
            s.settimeout(10)
        except BaseException:
            s.close()
            raise
        return s

    def call(self, line: bytes) -> Any:
        """One request on a new connection, its (first) reply read in full."""
        with self.connect() as s:
            s.sendall(line)
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("the daemon closed the connection")
                buf += chunk
            return json.loads(buf.split(b"\n", 1)[0])

    def connections(self) -> int:
        """Connections to the daemon it has not closed yet (queued ones too):
        its side of each is bound to the socket's path, in /proc/net/unix."""
        path = str(self.lxc.paths.socket)
        count = 0
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split(None, 7)
            listening = len(fields) > 3 and int(fields[3], 16) & 0x10000  # __SO_ACCEPTCON
            if len(fields) == 8 and fields[7] == path and not listening:
                count += 1
        return count

    def wait_all_closed(self, timeout: float = 5.0) -> None:
        """Return once the daemon has done with (and closed) every connection."""
        deadline = time.monotonic() + timeout
        while (left := self.connections()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not left, f"the daemon still holds {left} connections after {timeout:g} s"

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def records(self) -> list[dict[str, Any]]:
        """Each log line as JSON; a line that is not JSON as {"raw": line}."""
        out = []
        for line in self.text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            out.append(record if isinstance(record, dict) else {"raw": line})
        return out

    def assert_no_internal_error(self) -> None:
        records = self.records()
        failed = [r for r in records if r.get("event") in FAILED]
        assert not failed, "a client's hang-up was logged as an internal error:\n" + "\n".join(
            json.dumps(r)[:3000] for r in failed[:2])
        text = self.text()
        assert "Traceback" not in text, f"a traceback in the daemon's log:\n{text[-4000:]}"
        errors = [r for r in records if r.get("level") in ("error", "critical", "exception")]
        assert not errors, f"errors in the daemon's log: {errors[:3]}"

    def assert_serving(self) -> None:
        assert self.proc.poll() is None, f"the daemon exited:\n{self.text()[-4000:]}"
        assert self.call(PING)["result"]["pid"] == self.proc.pid
        assert isinstance(json.loads(self.lxc.ok("ls", "--json", "--no-spawn")), list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it is still stopped
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def logged_daemon(lxc: Env, host_root_config: Path) -> Iterator[LoggedDaemon]:
    d = LoggedDaemon(lxc)
    try:
        # Something in the journal, so that a monitor from id 0 has replies to write.
        lxc.ok("execute", "-n", "ev", "-f", str(host_root_config), "--no-spawn", "--", "true")
        yield d
    finally:
        d.stop()


def hang_up_at_once(d: LoggedDaemon, line: bytes) -> None:
    """Send one request and close before any reply can be read."""
    s = d.connect()
    try:
        s.sendall(line)
    finally:
        s.close()


def reset(s: socket.socket) -> None:
    """Close with SO_LINGER {on, 0}. On a Unix socket it is the unread reply
    that makes the daemon's side see ECONNRESET; the linger is for good measure."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_a_reply_to_a_client_gone_is_logged_as_a_hang_up(logged_daemon: LoggedDaemon) -> None:
    d = logged_daemon
    # Request and close at once, many times: most replies hit a closed socket.
    for _ in range(150):
        hang_up_at_once(d, LIST)
        hang_up_at_once(d, RULES)
    # The same with the daemon stopped until every client is gone: each reply
    # is written to a socket closed for certain (EPIPE).
    d.wait_all_closed()
    d.proc.send_signal(signal.SIGSTOP)
    try:
        for line in (LIST, RULES, MONITOR) * 3:
            hang_up_at_once(d, line)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    d.wait_all_closed()

    d.assert_no_internal_error()
    hung_up = [r for r in d.records() if r.get("event") == "client_hung_up"]
    assert hung_up, ("no `client_hung_up` record in the daemon's log; its events: "
                     f"{sorted({str(r.get('event', r.get('raw'))) for r in d.records()})}")
    for r in hung_up:
        assert r.get("level") == "debug", r
        assert "exception" not in r, r  # one line, no traceback
        assert "exc_info" not in r, r
        assert r.get("op") in ("list", "rules", "monitor"), r
    assert {r.get("op") for r in hung_up} >= {"list", "rules"}, hung_up
    d.assert_serving()


def test_a_monitor_reset_by_its_client_is_no_internal_error(
    logged_daemon: LoggedDaemon,
) -> None:
    d = logged_daemon
    for _ in range(5):
        s = d.connect()
        s.sendall(MONITOR)
        readable, _, _ = select.select([s], [], [], 10)
        assert readable, "the monitor's replay never arrived"
        reset(s)  # its replay unread: ECONNRESET on the daemon's side
    d.wait_all_closed()
    d.assert_no_internal_error()
    hung_up = [r for r in d.records()
               if r.get("event") == "client_hung_up" and r.get("op") == "monitor"]
    assert len(hung_up) == 5, hung_up  # one line for each, at debug level
    assert all(r.get("level") == "debug" and "exception" not in r for r in hung_up), hung_up
    d.assert_serving()
