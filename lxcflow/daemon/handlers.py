"""What each request on the control socket means: check it, call, reply.

Every argument is checked here (by :mod:`lxcflow.validate`'s rules) before
it reaches the supervisor. This is also where the daemon's parts meet: a
user's stop goes to the restart policies first, then to the supervisor;
the supervisor itself knows nothing of rules.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from lxcflow import protocol
from lxcflow.daemon import attach, autostart, batch, console, health, replay, views
from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.server import Dispatch, Reply
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import (
    LxcflowError,
    NotFound,
    OperationTimeout,
    ProtocolError,
    UsageError,
    WrongState,
)
from lxcflow.runtime.spec import RunMode
from lxcflow.states import State, parse_states
from lxcflow.validate import container_name, remote_name, seconds, signal_number, user_id

if TYPE_CHECKING:
    from lxcflow.daemon.fleet.link import Fleet


@dataclass(frozen=True, slots=True)
class Services:
    """The parts a request may reach."""

    supervisor: Supervisor
    rules: RuleEngine | None = None  # None: no rule engine runs
    fleet: Fleet | None = None  # None: a single host (no --nats)

    def the_fleet(self) -> Fleet:
        """The fleet link, for requests that need one.

        Raises:
            LxcflowError: this daemon runs without --nats.
        """
        if self.fleet is None:
            raise LxcflowError("this daemon is a single host: start it with --nats URL "
                               "(or LXCFLOW_NATS) for the fleet")
        return self.fleet


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

    def name(self) -> str:
        return container_name(self.get("name", str))


async def user_stop(s: Services, name: str, *, grace: float = 60.0, kill: bool = False) -> None:
    """A user's stop: final for every restart policy, so they hear of it
    first; it also cancels a restart one has pending, which makes stopping
    a STOPPED container succeed then."""
    sup = s.supervisor
    c = sup.get(name)
    cancelled = s.rules.user_stopped(name) if s.rules is not None else False
    try:
        await sup.stop(name, grace=grace, kill=kill)
    except WrongState:
        if not (cancelled and c.state is State.STOPPED):
            raise


async def _create(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    await s.supervisor.create(a.name(), a.get("config", str, None),
                              template=a.get("template", str, None),
                              template_args=a.strings("template_args"),
                              unprivileged=a.get("unprivileged", bool, False))
    await reply(protocol.ok(None))


async def _on_each(s: Services, a: Args, reply: Reply,
                   act: Callable[[str], Awaitable[object]]) -> bool:
    """Do a request that names several containers (``names``: names and
    globs) to each of them, and reply; False when it names one (``name``)."""
    if "names" not in a.raw:
        return False
    names, wrong = batch.resolve(a.strings("names"), s.supervisor.containers)
    failed = await batch.each(names, act)
    await reply(protocol.ok({"done": len(names) - len(failed),
                             "failed": [[p, e] for p, e in {**wrong, **failed}.items()]}))
    return True


async def _destroy(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    force = a.get("force", bool, False)

    async def destroy(name: str) -> None:
        if (force and s.rules is not None
                and s.supervisor.state_of(name) not in (None, State.STOPPED)):
            s.rules.user_stopped(name)  # destroy -f stops it first: a user's stop
        await s.supervisor.destroy(name, force=force)

    if not await _on_each(s, a, reply, destroy):
        await destroy(a.name())
        await reply(protocol.ok(None))


async def _start(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    command, config = a.strings("command"), a.get("config", str, None)
    if "names" in a.raw and (command or config):
        raise UsageError("a command or -f starts one container, not several")

    async def start(name: str) -> int | None:
        c = await s.supervisor.start(name, mode=RunMode.SYSTEM, command=command,
                                     config_file=config)
        return c.run.init_pid if c.run else None

    if not await _on_each(s, a, reply, start):
        await reply(protocol.ok({"pid": await start(a.name())}))


def _string_map(a: Args, key: str) -> dict[str, str]:
    value = a.get(key, dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ProtocolError(f"argument {key!r} must map strings to strings")
    return value


async def _execute(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    if len(fds) != 3:
        raise ProtocolError("execute needs the caller's stdin, stdout and stderr")
    env = _string_map(a, "env")
    c = await s.supervisor.start(
        a.name(), mode=RunMode.APP, command=a.strings("command"),
        config_file=a.get("config", str, None), stdio=(fds[0], fds[1], fds[2]),
        cwd=a.get("cwd", str, None), env=env,
    )
    for fd in fds:  # the shim holds them now; ours would keep the caller's pipes open
        os.close(fd)
    fds.clear()
    await reply(protocol.ok({"pid": c.run.init_pid if c.run else None}, more=True))
    await c.wait_until(lambda: c.state is State.STOPPED)
    exit = c.last_exit
    await reply(protocol.ok({
        "exit_code": exit.code if exit else None,
        "signal": exit.signal if exit else None,
    }))


async def _attach(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    if len(fds) != 3:
        raise ProtocolError("attach needs the caller's stdin, stdout and stderr")
    cwd = a.get("cwd", str, None)
    attached = await attach.start(
        s.supervisor, a.name(), command=a.strings("command"), stdio=fds,
        caller_env=_string_map(a, "env"), set_env=_string_map(a, "set"),
        uid=user_id(a.get("uid", int, 0), "uid"), gid=user_id(a.get("gid", int, 0), "gid"),
        cwd=cwd, cwd_strict=a.get("cwd_strict", bool, False), tty=a.get("tty", bool, False),
    )
    for fd in fds:  # the command holds them now
        os.close(fd)
    fds.clear()
    await reply(protocol.ok({"pid": attached.pid}, more=True))
    code, sig = await attach.finish(attached)
    await reply(protocol.ok({"exit_code": code, "signal": sig}))


async def _console(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(console.terminal(s.supervisor, a.name(), a.get("tty", int, 1))))


async def _logs(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(console.log(s.supervisor, a.name())))


async def _autostart(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    action = a.get("action", str, "start")
    if action not in autostart.ACTIONS:
        raise UsageError(f"unknown autostart action {action!r}")
    grace = seconds(a.get("timeout", float, 60.0))
    found, broken = autostart.configs(s.supervisor)
    entries = autostart.select(found, groups=a.strings("groups"), every=a.get("all", bool, False))
    if action == "list":
        results: list[dict[str, object]] = [e.to_dict() for e in entries]
    else:
        async def stop(name: str, kill: bool) -> None:
            await user_stop(s, name, grace=grace, kill=kill)

        results = await autostart.run(s.supervisor, action, entries, stop=stop,
                                      reboot_within=grace)
    await reply(protocol.ok({"containers": results, "unreadable": broken}))


async def _stop(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    grace = seconds(a.get("timeout", float, 60.0))
    reboot, kill = a.get("reboot", bool, False), a.get("kill", bool, False)
    if reboot and kill:
        raise UsageError("give -r (reboot) or -k (kill), not both")

    async def stop(name: str) -> None:
        if reboot:
            await s.supervisor.reboot(name, within=grace)
        else:
            await user_stop(s, name, grace=grace, kill=kill)

    if not await _on_each(s, a, reply, stop):
        await stop(a.name())
        await reply(protocol.ok(None))


async def _kill(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    sig = signal_number(a.get("signal", int, int(signal.SIGKILL)))
    init_only = a.get("init_only", bool, False)

    async def kill(name: str) -> int:
        return await s.supervisor.kill(name, sig, init_only=init_only)

    if not await _on_each(s, a, reply, kill):
        await reply(protocol.ok({"signalled": await kill(a.name())}))


async def _freeze(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    if not await _on_each(s, a, reply, s.supervisor.freeze):
        await s.supervisor.freeze(a.name())
        await reply(protocol.ok(None))


async def _unfreeze(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    if not await _on_each(s, a, reply, s.supervisor.unfreeze):
        await s.supervisor.unfreeze(a.name())
        await reply(protocol.ok(None))


async def _info(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    info = views.info(s.supervisor.get(a.name()))
    if s.fleet is not None:
        info["fleet"] = s.fleet.describe()
    await reply(protocol.ok(info))


async def _list(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    containers = sorted(s.supervisor.containers.values(), key=lambda c: c.name)
    rows = [views.summary(c) for c in containers]
    if a.get("fleet", bool, False):
        from lxcflow.daemon.fleet import waiting

        await reply(protocol.ok(waiting.fleet_list(s.the_fleet(), rows)))
        return
    await reply(protocol.ok(rows))


async def _top(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    interval = seconds(a.get("interval", float, 1.0), "top's interval")
    if interval < 0.1:
        raise UsageError("top's interval must be at least 0.1 s")
    while True:  # until the client hangs up
        containers = sorted(s.supervisor.containers.values(), key=lambda c: c.name)
        rows = await views.read_each(containers, views.top_row)
        await reply(protocol.ok({"time_ns": time.time_ns(), "containers": rows}, more=True))
        await trio.sleep(interval)


async def _ps(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    _, _, cgroup = s.supervisor.running(a.name())
    await reply(protocol.ok(views.processes(cgroup)))


async def _priority(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok(s.supervisor.priority(a.name(), a.get("value", int, None))))


async def _cgroup(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    value = s.supervisor.cgroup_attr(a.name(), a.get("key", str), a.get("value", str, None))
    await reply(protocol.ok(value))


def _regex(text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise UsageError(f"bad regex {text!r}: {e}") from None


async def _monitor(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    pattern = _regex(a.get("regex", str, None))
    since_id = a.get("since_id", int, None)
    since_ns = a.get("since_ns", int, None)
    for value in (since_id, since_ns):
        if value is not None and not 0 <= value < 2**63:
            raise UsageError(f"--since {value} is out of range")

    async def send(item: dict[str, Any]) -> None:
        await reply(protocol.ok(item, more=True))

    follow = a.get("follow", bool, True)
    if a.get("fleet", bool, False):
        last = await s.the_fleet().monitor(send, pattern=pattern, since_seq=since_id,
                                           since_ns=since_ns, follow=follow)
    else:
        last = await replay.monitor(s.supervisor.bus, send, pattern=pattern, since_id=since_id,
                                    since_ns=since_ns, follow=follow)
    await reply(protocol.ok({"last_id": last}))


async def _wait(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    names, remote = [], []
    for text in a.strings("names"):
        host, name = remote_name(text)
        if host is None or (s.fleet is not None and host == s.fleet.host):
            names.append(name)
        else:
            remote.append((host, name))
    if not names and not remote:
        raise UsageError("wait needs at least one container name")
    healthy = a.get("healthy", bool, False)
    try:
        wanted = parse_states("|".join(a.strings("states"))) if not healthy else frozenset(
            {State.RUNNING})
    except ValueError as e:
        raise UsageError(f"{e} (states: {'|'.join(s.value for s in State)})") from None
    if not wanted:
        raise UsageError("wait needs at least one state")
    thaw = a.get("thaw", bool, False)
    if remote and thaw:
        raise UsageError("--thaw thaws this host's containers only; it cannot wait on HOST:NAME")
    if healthy:
        rules = s.rules.rules if s.rules is not None else []
        for name in names:
            if health.rule_for(name, rules) is None:
                raise NotFound(f"no health rule probes {name!r}: nothing can find it healthy",
                               container=name)
    timeout = a.get("timeout", float, None)
    deadline = trio.current_time() + seconds(timeout) if timeout is not None else math.inf
    fleet = s.the_fleet() if remote else None
    reached: dict[str, str | None] = {}

    async def here() -> None:
        states = await replay.wait(s.supervisor, names, wanted, deadline=deadline, thaw=thaw,
                                   healthy=healthy)
        reached.update({n: st.value if st else None for n, st in states.items()})

    async def there() -> None:
        from lxcflow.daemon.fleet import waiting

        assert fleet is not None
        reached.update(await waiting.wait(fleet.view, remote, wanted, deadline=deadline,
                                          healthy=healthy))

    try:
        if not remote:
            await here()
        elif not names:
            await there()
        else:
            await _both(here, there)
    except OperationTimeout as e:
        raise OperationTimeout(f"timed out after {timeout:g} s {e}") from None
    await reply(protocol.ok(reached))


async def _both(*jobs: Callable[[], Awaitable[None]]) -> None:
    """Run ``jobs`` together; the first error of one is the error (the
    others are cancelled)."""
    failure: list[BaseException] = []

    async def run(job: Callable[[], Awaitable[None]], cancel: trio.CancelScope) -> None:
        try:
            await job()
        except LxcflowError as e:
            failure.append(e)
            cancel.cancel()

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(run, job, nursery.cancel_scope)
    if failure:
        raise failure[0]


async def _bridge_add(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    from lxcflow import network  # pyroute2 costs a quarter second: only when used

    await trio.to_thread.run_sync(network.bridge_add, a.get("name", str),
                                  a.get("ipv4", str, None), a.get("uplink", str, None))
    await reply(protocol.ok(None))


async def _bridge_del(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    from lxcflow import network

    await trio.to_thread.run_sync(network.bridge_del, a.get("name", str))
    await reply(protocol.ok(None))


async def _bridges(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    from lxcflow import network

    await reply(protocol.ok(await trio.to_thread.run_sync(network.bridges)))


async def _rules(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    if s.rules is None:
        raise LxcflowError("no rule engine runs in this daemon")
    await reply(protocol.ok(s.rules.describe()))


async def _ping(s: Services, a: Args, fds: list[int], reply: Reply) -> None:
    await reply(protocol.ok({"pid": os.getpid()}))


Handler = Callable[[Services, Args, list[int], Reply], Awaitable[None]]

HANDLERS: dict[str, Handler] = {
    "create": _create,
    "destroy": _destroy,
    "start": _start,
    "execute": _execute,
    "attach": _attach,
    "console": _console,
    "logs": _logs,
    "autostart": _autostart,
    "stop": _stop,
    "kill": _kill,
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "info": _info,
    "list": _list,
    "ps": _ps,
    "top": _top,
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

#: requests that may run for as long as the client likes (dropped when it hangs up)
OPEN_ENDED = frozenset({"monitor", "wait", "attach", "top"})


def dispatcher(s: Services) -> Dispatch:
    """What the socket server calls for each request, with ``s`` bound."""

    async def dispatch(op: str, raw: dict[str, Any], fds: list[int], reply: Reply) -> None:
        handler = HANDLERS.get(op)
        if handler is None:
            raise ProtocolError(f"unknown operation {op!r}")
        await handler(s, Args(raw), fds, reply)

    return dispatch
