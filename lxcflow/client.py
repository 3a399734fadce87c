"""The synchronous side of the control socket, for the CLI and for scripts.

Standard library only, and cheap to import: every ``lxcflow`` command pays
for it, so it talks through ``_socket`` itself (socket.py imports enum and
selectors, about 17 ms). When no daemon answers, one is started in the
background and waited for on a pipe (it writes ``ready`` once it listens),
unless spawning is off.
"""

from __future__ import annotations

import _socket
import sys

from lxcflow import protocol
from lxcflow.errors import DaemonUnavailable, ProtocolError, from_dict
from lxcflow.paths import Paths

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any


class Client:
    """One connection to the daemon; requests are answered in order.

    Args:
        paths: where the socket is (and the lxcpath a spawned daemon gets).
        spawn: start a daemon when none answers.
    """

    def __init__(self, paths: Paths, *, spawn: bool = True) -> None:
        self.paths = paths
        self.spawn = spawn
        self._sock: _socket.socket | None = None
        self._buf = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def fileno(self) -> int:
        """The connection's socket, for select() while a stream is open."""
        assert self._sock is not None, "no request sent yet"
        return self._sock.fileno()

    def reply_buffered(self) -> bool:
        """Whether a whole reply was read already (select() would not see it)."""
        return b"\n" in self._buf

    def call(self, op: str, args: dict[str, Any] | None = None, fds: Sequence[int] = ()) -> Any:
        """Send one request and return its (only or last) result.

        Raises:
            LxcflowError: the daemon's error, rebuilt as its own class.
        """
        return list(self.stream(op, args, fds))[-1]

    def stream(
        self, op: str, args: dict[str, Any] | None = None, fds: Sequence[int] = ()
    ) -> Iterator[Any]:
        """Send one request and yield each reply's result as it arrives."""
        sock = self._connect()
        data = protocol.encode({"op": op, "args": args or {}})
        if fds:
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)  # C ints
            sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        else:
            sock.sendall(data)
        while True:
            reply = self._read_reply()
            if not reply.get("ok"):
                raise from_dict(reply.get("error") or {})
            yield reply.get("result")
            if not reply.get("more"):
                return

    def _read_reply(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise DaemonUnavailable("the daemon closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            reply = protocol.decode(line)
        except ValueError:
            raise ProtocolError("malformed reply from the daemon") from None
        if not isinstance(reply, dict):
            raise ProtocolError("malformed reply from the daemon")
        return reply

    def _connect(self) -> _socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            self._sock = _dial(self.paths)
        except (FileNotFoundError, ConnectionRefusedError):
            if not self.spawn:
                raise DaemonUnavailable(
                    f"no daemon answers on {self.paths.socket_address} (and --no-spawn was given)"
                ) from None
            spawn_daemon(self.paths)
            try:
                self._sock = _dial(self.paths)
            except OSError as e:
                raise DaemonUnavailable(f"cannot reach the daemon: {e.strerror}") from None
        except PermissionError:
            raise DaemonUnavailable(
                f"permission denied on {self.paths.socket_address}: lxcflow needs root"
            ) from None
        return self._sock


def _dial(paths: Paths) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(paths.socket_address)
    except BaseException:
        sock.close()
        raise
    return sock


def spawn_daemon(paths: Paths) -> None:
    """Start ``lxcflow daemon`` detached and wait until it listens.

    Raises:
        DaemonUnavailable: it could not start (its own reason is included).
    """
    import os  # only this path pays for them (os alone is about 2 ms)
    import subprocess

    paths.rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = paths.rundir / "daemon.log"
    ready_r, ready_w = os.pipe()
    cmd = [
        sys.executable, "-m", "lxcflow", "daemon", "--ready-fd", str(ready_w),
        "-P", str(paths.lxcpath), "--socket", paths.socket_address,
        "--cgroup-parent", paths.cgroup_parent,
    ]
    with open(log_path, "ab") as log:
        # Fork once more so the daemon is never our child: a long-lived client
        # would otherwise keep it as a zombie once it exits.
        middle = os.fork()
        if middle == 0:
            try:
                subprocess.Popen(
                    cmd, pass_fds=(ready_w,), start_new_session=True,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )
            finally:
                os._exit(0)
        os.close(ready_w)
        os.waitpid(middle, 0)
    with os.fdopen(ready_r, "rb") as ready:
        answer = ready.read().decode(errors="replace").strip()
    if answer == "ready":
        return
    if "already running" in answer:
        return  # another client won the race; its daemon will answer
    reason = answer.removeprefix("error ") or "it exited at once"
    raise DaemonUnavailable(f"cannot start the daemon: {reason} (see {log_path})")

