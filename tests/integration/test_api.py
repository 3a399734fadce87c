"""The control socket: root-only, size-limited, and unharmed by bad requests."""

from __future__ import annotations

import json
import os
import socket
import stat

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def exchange(lxc: Env, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(lxc.paths.socket))
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def test_socket_is_root_only(lxc: Env) -> None:
    lxc.ok("ls")  # spawns the daemon
    mode = os.stat(lxc.paths.socket).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert os.stat(lxc.paths.socket).st_uid == 0
    assert stat.S_IMODE(os.stat(lxc.paths.rundir).st_mode) == 0o700


def test_malformed_requests_get_errors_and_the_daemon_lives(lxc: Env) -> None:
    lxc.ok("ls")
    cases = {
        b"not json\n": "malformed request",
        b'{"op": "explode"}\n': "unknown operation 'explode'",
        b'{"op": "info", "args": {}}\n': "missing argument 'name'",
        b'{"op": "info", "args": {"name": 5}}\n': "argument 'name' must be str",
        b'{"op": "info", "args": {"name": "../etc"}}\n': "invalid container name",
        b'{"op": "kill", "args": {"name": "x", "signal": 999}}\n': "999 is not a signal number",
        b'{"op": "execute", "args": {"name": "x", "command": ["true"]}}\n': "stdin, stdout",
        b"x" * 70000: "request too large",
    }
    for payload, message in cases.items():
        reply = exchange(lxc, payload)
        assert reply["ok"] is False
        assert message in reply["error"]["message"], (payload[:40], reply)
    assert exchange(lxc, b'{"op": "ping"}\n')["ok"] is True
    assert lxc.ok("ls") == ""
