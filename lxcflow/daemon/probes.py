"""Running one health probe against a running container, bounded by its timeout.

An ``exec`` probe goes through attach's path (the container's namespaces,
cgroup and confinement); at its timeout its whole process group dies, the
command's children with it. ``tcp`` and ``http`` probes connect to
127.0.0.1 inside the container's network namespace: the socket is made by a
worker thread that has entered it (a socket belongs to the namespace it was
made in), and used from the trio thread, which never moves.

Nothing here raises for the container's own failings: every outcome is a
:class:`ProbeResult`.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass

import trio

from lxcflow.daemon import attach
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import LxcflowError
from lxcflow.rules.health import MAX_OUTPUT, Probe
from lxcflow.runtime.attach import SETUP_FAILED
from lxcflow.runtime.netns import tcp_socket_in

_STATUS_RE = re.compile(rb"HTTP/\d(?:\.\d)? ([0-9]{3})[^\r\n]*")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    output: str  # what the probe said, or why it failed


async def run(sup: Supervisor, name: str, probe: Probe, *, within: float) -> ProbeResult:
    """Probe ``name`` once; a probe still going after ``within`` seconds fails."""
    with trio.move_on_after(within):
        try:
            if probe.kind == "exec":
                return await _exec(sup, name, probe.command)
            return await _connect(sup, name, probe)
        except LxcflowError as e:  # it stopped or froze meanwhile, say
            return ProbeResult(False, str(e))
        except OSError as e:  # the shim or a socket could not be made
            return ProbeResult(False, f"cannot probe: {_reason(e)}")
    return ProbeResult(False, f"timed out after {within:g} s")


async def _exec(sup: Supervisor, name: str, command: tuple[str, ...]) -> ProbeResult:
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        attached = await attach.start(sup, name, command=command, stdio=(null, out_w, out_w),
                                      caller_env={}, set_env={})
    except BaseException:
        os.close(out_r)
        raise
    finally:
        os.close(out_w)
        os.close(null)
    output = bytearray()
    reaped = False
    try:
        async with trio.lowlevel.FdStream(out_r) as stream:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, stream, output)
                code, sig = await attached.wait()
                reaped = True
                # A child it left behind may hold the pipe open: what is in
                # it now is all the probe said.
                nursery.cancel_scope.cancel()
            _drain(stream.fileno(), output)
    finally:
        if not reaped:
            # The shim leads the process group its command and the
            # command's children are in (until they leave it themselves).
            _kill_group(attached.pid)
            with trio.CancelScope(shield=True):
                await attached.wait()
    text = output.decode(errors="replace").strip()
    if code == 0:
        return ProbeResult(True, text)
    if code == SETUP_FAILED:
        return ProbeResult(False, text or "the probe could not be started")
    how = f"exit {code}" if sig is None else f"killed by signal {sig}"
    return ProbeResult(False, f"{how}: {text}" if text else how)


async def _collect(stream: trio.lowlevel.FdStream, output: bytearray) -> None:
    while chunk := await stream.receive_some(65536):
        output.extend(chunk[: MAX_OUTPUT - len(output)])


def _drain(fd: int, output: bytearray) -> None:
    """What a (non-blocking) pipe holds now, without waiting."""
    try:
        while len(output) < MAX_OUTPUT and (chunk := os.read(fd, 65536)):
            output.extend(chunk[: MAX_OUTPUT - len(output)])
    except OSError:
        pass  # empty (EAGAIN), or closed already


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def _connect(sup: Supervisor, name: str, probe: Probe) -> ProbeResult:
    _, run, _ = sup.running(name)
    # Its own copy: the run may end (and close its pidfd) while the thread works.
    pidfd = os.dup(run.shim.init_pidfd)
    try:
        raw = await trio.to_thread.run_sync(tcp_socket_in, pidfd)
    finally:
        os.close(pidfd)
    with trio.socket.from_stdlib_socket(raw) as sock:
        try:
            await sock.connect(("127.0.0.1", probe.port))
        except OSError as e:
            return ProbeResult(False, f"127.0.0.1:{probe.port}: {_reason(e)}")
        if probe.kind == "tcp":
            return ProbeResult(True, f"connected to 127.0.0.1:{probe.port}")
        return await _http_get(sock, probe)


async def _http_get(sock: trio.socket.SocketType, probe: Probe) -> ProbeResult:
    request = (f"GET {probe.path} HTTP/1.0\r\nHost: 127.0.0.1:{probe.port}\r\n"
               "User-Agent: lxcflow-probe\r\nConnection: close\r\n\r\n").encode()
    try:
        await sock.send(request)
        head = b""
        while b"\r\n" not in head and len(head) < MAX_OUTPUT:
            chunk = await sock.recv(MAX_OUTPUT)
            if not chunk:
                break
            head += chunk
    except OSError as e:
        return ProbeResult(False, f"GET {probe.path}: {_reason(e)}")
    m = _STATUS_RE.match(head)
    if m is None:
        return ProbeResult(False, f"GET {probe.path}: not an HTTP response")
    status = int(m[1])
    line = m[0].decode(errors="replace")
    return ProbeResult(200 <= status < 400, f"GET {probe.path}: {line}")


def _reason(e: OSError) -> str:
    """The kernel's words for it (trio's connect wraps them in its own)."""
    return os.strerror(e.errno) if e.errno else str(e)
