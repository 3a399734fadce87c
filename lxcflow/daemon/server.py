"""The control socket's transport: connections, JSON lines, fd passing, hang-ups.

What a request means is :mod:`lxcflow.daemon.handlers`' business; this
module gets lines and file descriptors in and replies out, one request
after another per connection. Whatever a client sends, it gets an error
reply and the daemon lives on; a client that goes away is normal, and is
logged as such (at debug level, in one line).
"""

from __future__ import annotations

import array
import os
import socket as _socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from lxcflow import protocol
from lxcflow.errors import (
    LxcflowError,
    ProtocolError,
)

log = structlog.get_logger("lxcflow.api")

Reply = Callable[[dict[str, Any]], Awaitable[None]]


#: handles one request: operation, arguments, the fds it came with, and how to reply
Dispatch = Callable[[str, dict[str, Any], list[int], Reply], Awaitable[None]]


async def serve(
    path: Path,
    dispatch: Dispatch,
    open_ended: frozenset[str],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``path`` (mode 0600) and serve connections until cancelled.

    Requests named in ``open_ended`` may run as long as the client likes and
    are dropped when it hangs up.
    """
    sock = trio.socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    old = os.umask(0o177)  # no window where the socket is open to others
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(128)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    conn, _ = await sock.accept()
                except OSError as e:
                    # Out of fds (EMFILE) and the like: refuse this client,
                    # keep serving the others once something is freed.
                    log.error("accept_failed", error=str(e))
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(Connection(conn, dispatch, open_ended).run)
    finally:
        sock.close()
        path.unlink(missing_ok=True)


class Connection:
    """One client: requests are handled one after another, in order."""

    def __init__(
        self, sock: trio.socket.SocketType, dispatch: Dispatch, open_ended: frozenset[str]
    ) -> None:
        self.sock = sock
        self.dispatch = dispatch
        self.open_ended = open_ended

    async def run(self) -> None:
        buf = b""
        fds: list[int] = []
        try:
            while True:
                if b"\n" not in buf:
                    data, new_fds = await self._receive()
                    fds += new_fds
                    if not data:
                        return
                    if len(fds) > protocol.MAX_FDS:
                        await self._send(protocol.error(ProtocolError("too many file descriptors")))
                        return
                    buf += data
                    if b"\n" not in buf and len(buf) > protocol.MAX_LINE:
                        await self._send(protocol.error(ProtocolError("request too large")))
                        return
                    continue
                line, buf = buf.split(b"\n", 1)
                request_fds, fds = fds, []
                try:
                    await self._handle(line, request_fds)
                finally:
                    for fd in request_fds:
                        os.close(fd)
        except OSError:
            pass  # the client went away; that is its business
        except Exception as e:  # a bug in one connection must not take the daemon down
            log.exception("connection_failed", error=str(e))
        finally:
            for fd in fds:
                os.close(fd)
            self.sock.close()

    async def _receive(self) -> tuple[bytes, list[int]]:
        space = _socket.CMSG_SPACE(protocol.MAX_FDS * 4)
        data, ancdata, _flags, _addr = await self.sock.recvmsg(protocol.MAX_LINE, space)
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds += got.tolist()
        for fd in fds:
            # recvmsg gives no MSG_CMSG_CLOEXEC: keep these out of other shims.
            os.set_inheritable(fd, False)
        return data, fds

    async def _send(self, message: dict[str, Any]) -> None:
        data = memoryview(protocol.encode(message))
        while data:
            data = data[await self.sock.send(data) :]

    async def _handle(self, line: bytes, fds: list[int]) -> None:
        op = None
        try:
            op, args = protocol.decode_request(line)
            work = self.dispatch(op, args, fds, self._send)
            if op in self.open_ended:
                await self._until_hangup(work)
            else:
                await work
        except LxcflowError as e:
            await self._send(protocol.error(e))
        except Exception as e:
            gone = _hang_up(e)
            if gone is not None:
                log.debug("client_hung_up", op=op, error=str(gone))
                raise gone from None  # ends the connection (see run)
            # A bug must not take the daemon down.
            log.exception("request_failed", error=str(e))
            await self._send(protocol.error(LxcflowError(f"internal error: {e}")))

    async def _until_hangup(self, work: Awaitable[None]) -> None:
        """Run an open-ended request, and drop it if the client goes away.

        A `wait` for a state that never comes, or a `monitor` on a quiet
        system, would otherwise outlive its ^C'd client forever.
        """

        gone: list[OSError] = []

        async def watch(cancel_scope: trio.CancelScope) -> None:
            # MSG_PEEK: bytes from the client stay for the next request.
            try:
                if await self.sock.recv(1, _socket.MSG_PEEK):
                    return
                gone.append(BrokenPipeError("the client closed the connection"))
            except OSError as e:
                gone.append(e)  # reset: gone just the same
            cancel_scope.cancel()

        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                await work
            except Exception as e:  # re-raised bare, not wrapped in a group
                failure = e
            nursery.cancel_scope.cancel()
        # One hang-up, reported once by _handle, whichever side saw it first.
        if failure is not None:
            raise failure
        if gone:
            raise gone[0]


def _hang_up(e: BaseException) -> OSError | None:
    """The error, if ``e`` says only that the client went away (also when
    it comes wrapped in an exception group from a nursery)."""
    if isinstance(e, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
        return e
    if isinstance(e, BaseExceptionGroup):
        found = [_hang_up(inner) for inner in e.exceptions]
        if found and all(found):
            return found[0]
    return None
