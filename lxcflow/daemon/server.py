"""The daemon's side of the control socket: requests in, supervisor calls, replies out.

Every request is validated here before it reaches the supervisor; whatever
a client sends, it gets an error reply and the daemon lives on.
"""

from __future__ import annotations

import array
import contextlib
import math
import os
import re
import signal
import socket as _socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from lxcflow import protocol
from lxcflow.config import validate_name
from lxcflow.daemon.events import Subscription
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import (
    LxcflowError,
    OperationTimeout,
    ProtocolError,
    UsageError,
    WrongState,
)
from lxcflow.states import Event, State, parse_states

log = structlog.get_logger("lxcflow.api")

Reply = Callable[[dict[str, Any]], Awaitable[None]]


async def serve(
    supervisor: Supervisor,
    path: Path,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``path`` (mode 0600) and serve connections until cancelled."""
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
                nursery.start_soon(Connection(supervisor, conn).run)
    finally:
        sock.close()
        path.unlink(missing_ok=True)


class Connection:
    """One client: requests are handled one after another, in order."""

    def __init__(self, supervisor: Supervisor, sock: trio.socket.SocketType) -> None:
        self.sup = supervisor
        self.sock = sock

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
        try:
            op, args = protocol.decode_request(line)
            handler = HANDLERS.get(op)
            if handler is None:
                raise ProtocolError(f"unknown operation {op!r}")
            if op in OPEN_ENDED:
                await self._until_hangup(handler(self.sup, Args(args), fds, self._send))
            else:
                await handler(self.sup, Args(args), fds, self._send)
        except LxcflowError as e:
            await self._send(protocol.error(e))
        except Exception as e:  # a bug must not take the daemon down
            log.exception("request_failed", error=str(e))
            await self._send(protocol.error(LxcflowError(f"internal error: {e}")))


    async def _until_hangup(self, work: Awaitable[None]) -> None:
        """Run an open-ended request, and drop it if the client goes away.

        A `wait` for a state that never comes, or a `monitor` on a quiet
        system, would otherwise outlive its ^C'd client forever.
        """

        async def watch(cancel_scope: trio.CancelScope) -> None:
            # MSG_PEEK: bytes from the client stay for the next request.
            if not await self.sock.recv(1, _socket.MSG_PEEK):
                cancel_scope.cancel()

        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                await work
            except Exception as e:  # re-raised bare, not wrapped in a group
                failure = e
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure


#: requests that may run for as long as the client likes
OPEN_ENDED = frozenset({"monitor", "wait"})


class Args:
    """Typed access to a request's arguments; wrong types are the client's error."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.raw or self.raw[key] is None:
            if default is ...:
                raise ProtocolError(f"missing argument {key!r}")
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError(f"argument {key!r} must be {kind.__name__}")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"argument {key!r} must be a list of strings")
        return value


async def _create(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await sup.create(a.get("name", str), a.get("config", str))
    await reply(protocol.ok(None))


async def _destroy(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await sup.destroy(a.get("name", str), force=a.get("force", bool, False))
    await reply(protocol.ok(None))


async def _start(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    c = await sup.start(
        a.get("name", str), mode="system", command=a.strings("command"),
        config_file=a.get("config", str, None),
    )
    await reply(protocol.ok({"pid": c.shim.init_pid if c.shim else None}))


async def _execute(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    if len(fds) != 3:
        raise ProtocolError("execute needs the caller's stdin, stdout and stderr")
    env = a.get("env", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ProtocolError("argument 'env' must map strings to strings")
    c = await sup.start(
        a.get("name", str), mode="app", command=a.strings("command"),
        config_file=a.get("config", str, None), stdio=(fds[0], fds[1], fds[2]),
        cwd=a.get("cwd", str, None), env=env,
    )
    for fd in fds:  # the shim holds them now; ours would keep the caller's pipes open
        os.close(fd)
    fds.clear()
    await reply(protocol.ok({"pid": c.shim.init_pid if c.shim else None}, more=True))
    await c.wait_until(lambda: c.state is State.STOPPED)
    exit = c.last_exit
    await reply(protocol.ok({
        "exit_code": exit.code if exit else None,
        "signal": exit.signal if exit else None,
    }))


async def _stop(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    grace = a.get("timeout", float, 60.0)
    if not grace >= 0:  # also refuses NaN
        raise UsageError("timeout must be a number of seconds, not negative")
    await sup.stop(a.get("name", str), grace=grace, kill=a.get("kill", bool, False))
    await reply(protocol.ok(None))


async def _kill(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    sig = a.get("signal", int, int(signal.SIGKILL))
    if not 1 <= sig < signal.NSIG:
        raise UsageError(f"invalid signal number {sig}")
    count = await sup.kill(a.get("name", str), sig, init_only=a.get("init_only", bool, False))
    await reply(protocol.ok({"signalled": count}))


async def _freeze(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await sup.freeze(a.get("name", str))
    await reply(protocol.ok(None))


async def _unfreeze(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await sup.unfreeze(a.get("name", str))
    await reply(protocol.ok(None))


async def _info(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(sup.info(a.get("name", str))))


async def _list(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(sup.list_containers()))


async def _ps(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(sup.ps(a.get("name", str))))


async def _priority(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(sup.priority(a.get("name", str), a.get("value", int, None))))


async def _cgroup(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    value = sup.cgroup_attr(a.get("name", str), a.get("key", str), a.get("value", str, None))
    await reply(protocol.ok(value))


def _regex(text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise UsageError(f"bad regex {text!r}: {e}") from None


async def _monitor(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    """Stream events: journaled ones first (``since_id`` / ``since_ns``), then live.

    Subscribing comes before reading the journal, and anything already sent
    is skipped by id, so nothing falls between the two or arrives twice. A
    subscriber that falls behind catches up from the journal.
    """
    pattern = _regex(a.get("regex", str, None))
    since_id = a.get("since_id", int, None)
    since_ns = a.get("since_ns", int, None)
    for value in (since_id, since_ns):
        if value is not None and not 0 <= value < 2**63:
            raise UsageError(f"--since {value} is out of range")
    follow = a.get("follow", bool, True)
    journal = sup.bus.journal
    last = sup.bus.last_id if since_id is None and since_ns is None else (since_id or 0)

    async def send(event: Event) -> None:
        nonlocal last
        last = event.id
        if pattern is None or pattern.search(event.container):
            await reply(protocol.ok(event.to_dict(), more=True))

    async def replay(**where: int) -> None:
        assert journal is not None
        for event in journal.replay(**where):
            await send(event)
        if not journal.healthy:  # it failed mid-replay: say so, never skip silently
            await reply(protocol.ok({"missed": None}, more=True))

    with sup.bus.subscribe() as sub:
        if since_id is not None or since_ns is not None:
            if journal is None or not journal.healthy:
                raise LxcflowError("the journal is unavailable: no past events to replay")
            await replay(after_id=last, from_ns=since_ns or 0)
        while follow:
            if sub.missed:
                missed, sub.missed = sub.missed, 0
                if journal is not None and journal.healthy:
                    await replay(after_id=last)
                else:
                    await reply(protocol.ok({"missed": missed}, more=True))
            event = await sub.receive()
            if event.id > last:
                await send(event)
    await reply(protocol.ok({"last_id": last}))


async def _wait(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    """Return once every named container is in one of the states (at once if so).

    Subscribing before reading the current states, then replaying each
    event in order, is what makes it race-free: a state held only for an
    instant still counts. With ``thaw``, frozen containers are thawed first.
    """
    names = a.strings("names")
    if not names:
        raise UsageError("wait needs at least one container name")
    for name in names:
        validate_name(name)
    try:
        wanted = parse_states("|".join(a.strings("states")))
    except ValueError as e:
        raise UsageError(f"{e} (states: {'|'.join(s.value for s in State)})") from None
    if not wanted:
        raise UsageError("wait needs at least one state")
    timeout = a.get("timeout", float, None)
    if timeout is not None and not timeout >= 0:  # also refuses NaN
        raise UsageError("timeout must be a number of seconds, not negative")

    def done() -> bool:
        return all(current[n] in wanted for n in names)

    with sup.bus.subscribe(size=65536) as sub:
        current = {name: sup.state_of(name) for name in names}
        if a.get("thaw", bool, False):
            # A user's request, like ``unfreeze``: whoever froze it, it thaws.
            for name in names:
                if current[name] is State.FROZEN:
                    with contextlib.suppress(WrongState):  # changed meanwhile
                        await sup.unfreeze(name)
        with trio.move_on_after(timeout if timeout is not None else math.inf):
            while not done():
                await sup.bus.wait_changed()
                if _apply_events(sub, current, done):
                    break
                for name in names:  # created meanwhile (no transition), or events missed
                    if current[name] is None or sub.missed:
                        current[name] = sup.state_of(name)
                sub.missed = 0
    if not done():
        raise OperationTimeout(
            f"timed out after {timeout:g} s waiting for {', '.join(names)} to be "
            f"{'|'.join(sorted(s.value for s in wanted))}"
        )
    await reply(protocol.ok({n: s.value if s else None for n, s in current.items()}))


def _apply_events(
    sub: Subscription, current: dict[str, State | None], done: Callable[[], bool]
) -> bool:
    """Replay buffered events in order; True as soon as ``done()`` holds."""
    while (event := sub.receive_nowait()) is not None:
        if event.container in current:
            current[event.container] = event.to_state
            if done():
                return True
    return False


async def _bridge_add(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    from lxcflow import network  # pyroute2 costs a quarter second: only when used

    await trio.to_thread.run_sync(network.bridge_add, a.get("name", str),
                                  a.get("ipv4", str, None), a.get("uplink", str, None))
    await reply(protocol.ok(None))


async def _bridge_del(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    from lxcflow import network

    await trio.to_thread.run_sync(network.bridge_del, a.get("name", str))
    await reply(protocol.ok(None))


async def _bridges(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    from lxcflow import network

    await reply(protocol.ok(await trio.to_thread.run_sync(network.bridges)))


async def _rules(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    if sup.rules_report is None:
        raise LxcflowError("no rule engine runs in this daemon")
    await reply(protocol.ok(sup.rules_report()))


async def _ping(sup: Supervisor, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok({"pid": os.getpid()}))


HANDLERS: dict[str, Callable[[Supervisor, Args, list[int], Reply], Awaitable[None]]] = {
    "create": _create,
    "destroy": _destroy,
    "start": _start,
    "execute": _execute,
    "stop": _stop,
    "kill": _kill,
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "info": _info,
    "list": _list,
    "ps": _ps,
    "priority": _priority,
    "cgroup": _cgroup,
    "monitor": _monitor,
    "wait": _wait,
    "rules": _rules,
    "bridge_add": _bridge_add,
    "bridge_del": _bridge_del,
    "bridges": _bridges,
    "ping": _ping,
}
