"""The CLI: signals, parsing, the fast launcher, and what a command may import."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxcflow import launcher
from lxcflow.cli import parse_args


def test_global_options_before_or_after_the_command() -> None:
    a = parse_args(["-P", "/x", "info", "-n", "web"])
    b = parse_args(["info", "-n", "web", "-P", "/x"])
    assert a.lxcpath == b.lxcpath == "/x"


def test_command_after_double_dash() -> None:
    a = parse_args(["execute", "-n", "w", "--", "ls", "-l"])
    assert a.command == ["ls", "-l"]


def test_client_imports_neither_trio_nor_pyroute2() -> None:
    code = (
        "import sys, lxcflow.cli, lxcflow.client;"
        "print(sorted(m for m in ('trio', 'pyroute2', 'structlog') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: modules a common command must not import: each costs milliseconds at start
HEAVY = ("argparse", "re", "json", "pathlib", "socket", "selectors", "enum", "signal", "typing",
         "dataclasses", "os", "array", "collections", "subprocess", "trio", "pyroute2",
         "structlog", "curses", "lxcflow.top")
INFO = {"name": "web", "state": "RUNNING", "pid": 42, "ipv4": ["198.18.0.2"], "interfaces": [],
        "cpu_ns": 1_500_000_000, "memory_bytes": 2048, "frozen_by": None, "frozen_total_ns": 0,
        "last_exit": None}


@pytest.fixture
def fake_daemon(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A socket that answers one request with INFO: its path, and the requests it read."""
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    requests: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as lines:
            requests.append(lines.readline())
            conn.sendall(json.dumps({"ok": True, "result": INFO}).encode() + b"\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield path, requests
    finally:
        thread.join(timeout=10)
        server.close()


@pytest.fixture
def fast_lxcflow(tmp_path: Path) -> Path:
    dest = tmp_path / "lxcflow"
    launcher.write(str(dest))
    return dest


def test_the_launcher_runs_this_python_isolated(fast_lxcflow: Path) -> None:
    lines = fast_lxcflow.read_text().splitlines()
    assert lines[0] == f"#!{sys.executable} -IS"
    assert len(lines) == 5  # Python compiles the script on every run
    assert os.access(fast_lxcflow, os.X_OK)
    r = subprocess.run([str(fast_lxcflow), "--help"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("usage: lxcflow [options] COMMAND ...")


def test_the_launcher_refuses_a_python_a_shebang_cannot_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/opt/my python/bin/python")
    with pytest.raises(ValueError, match="cannot go in a shebang line"):
        launcher.write(str(tmp_path / "lxcflow"))
    assert list(tmp_path.iterdir()) == []
    assert launcher.main([]) == 2


def test_info_through_the_launcher_imports_nothing_heavy(
    fast_lxcflow: Path, fake_daemon: tuple[Path, list[bytes]]
) -> None:
    sock, requests = fake_daemon
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", str(fast_lxcflow),
         "--no-spawn", "--socket", str(sock), "info", "-n", "web"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(requests[0]) == {"op": "info", "args": {"name": "web"}}
    assert r.stdout.splitlines() == [
        "Name:           web", "State:          RUNNING", "PID:            42",
        "IP:             198.18.0.2", "CPU use:        1.50 seconds",
        "Memory use:     2.00 KiB",
    ]
    imported = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert sorted(imported.intersection(HEAVY)) == []


def test_commands_needing_site_packages_find_them_from_the_launcher(fast_lxcflow: Path) -> None:
    r = subprocess.run([str(fast_lxcflow), "checkconfig"], capture_output=True, text=True,
                       timeout=30)
    assert "Traceback" not in r.stderr
    assert "PID namespace:" in r.stdout
