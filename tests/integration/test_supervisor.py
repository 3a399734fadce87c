"""The supervisor in-process on the real kernel: events, ordering, leaks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from lxcflow.cgroups import CgroupManager, Layout, detect_layout, open_manager
from lxcflow.daemon import supervisor
from lxcflow.daemon.events import Subscription
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import ConfigError, StartFailed, WrongState
from lxcflow.runstate import ExitStatus
from lxcflow.runtime.shim import Shim
from lxcflow.runtime.spec import RunMode
from lxcflow.states import Cause, Event, State
from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

S = State


def manager(layout: str, parent: str) -> CgroupManager:
    """This machine is hybrid; its parts also drive the other two layouts for real:
    the cgroup2 mount as a unified root, the v1 controllers as a legacy host."""
    if layout == "hybrid":
        return open_manager(parent=parent)
    if layout == "unified":
        return CgroupManager(Path("/sys/fs/cgroup/unified"), parent, Layout.UNIFIED)
    return CgroupManager(Path("/sys/fs/cgroup"), parent, Layout.LEGACY)


@pytest.fixture(params=["hybrid", "unified", "legacy"])
async def sup(
    request: pytest.FixtureRequest, lxc: Env, shim_binary: Path
) -> AsyncIterator[Supervisor]:
    if detect_layout() is not Layout.HYBRID and request.param != "hybrid":
        pytest.skip("driving other layouts for real needs a hybrid host")
    s = Supervisor(lxc.paths, manager(request.param, lxc.paths.cgroup_parent),
                   shim_binary=shim_binary)
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        yield s
        nursery.cancel_scope.cancel()


def drain(sub: Subscription) -> list[Event]:
    out = []
    while (event := sub.receive_nowait()) is not None:
        out.append(event)
    return out


def pairs(events: list[Event]) -> list[tuple[State, State]]:
    return [(e.from_state, e.to_state) for e in events]


async def test_full_lifecycle_emits_one_event_per_transition(
    sup: Supervisor, host_root_config: Path
) -> None:
    await sup.create("web", str(host_root_config))
    with sup.bus.subscribe() as sub:
        await sup.start("web", command=["sh", "-c", "while :; do :; done"])
        await sup.freeze("web")
        await sup.unfreeze("web")
        await sup.stop("web", kill=True)
        events = drain(sub)
    assert pairs(events) == [
        (S.STOPPED, S.STARTING), (S.STARTING, S.RUNNING),
        (S.RUNNING, S.FREEZING), (S.FREEZING, S.FROZEN), (S.FROZEN, S.RUNNING),
        (S.RUNNING, S.STOPPING), (S.STOPPING, S.STOPPED),
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert events[-1].signal == 9
    assert [e.cause for e in events] == [
        Cause.COMMAND, Cause.KERNEL, Cause.COMMAND, Cause.KERNEL, Cause.COMMAND,
        Cause.COMMAND, Cause.KERNEL,
    ]


async def test_failed_start_goes_through_aborting(sup: Supervisor, host_root_config: Path) -> None:
    await sup.create("web", str(host_root_config))
    with sup.bus.subscribe() as sub:
        with pytest.raises(StartFailed, match="cannot execute /nonexistent"):
            await sup.start("web", command=["/nonexistent"])
        events = drain(sub)
    assert pairs(events) == [(S.STOPPED, S.STARTING), (S.STARTING, S.ABORTING),
                             (S.ABORTING, S.STOPPED)]
    assert "cannot execute /nonexistent" in (events[1].detail or "")
    assert sup.get("web").state is S.STOPPED
    assert sup.cgroups.names() == []


async def test_refuses_to_boot_the_hosts_own_init(
    sup: Supervisor, host_root_config: Path
) -> None:
    await sup.create("web", str(host_root_config))
    with pytest.raises(ConfigError, match="refusing to boot the host's own /sbin/init"):
        await sup.start("web")
    assert sup.get("web").state is S.STOPPED
    assert sup.cgroups.names() == []


async def test_natural_death_reports_exit_code(sup: Supervisor, host_root_config: Path) -> None:
    await sup.create("web", str(host_root_config))
    with sup.bus.subscribe() as sub:
        c = await sup.start("web", command=["sh", "-c", "exit 42"])
        with trio.fail_after(10):
            await c.wait_until(lambda: c.state is S.STOPPED)
        events = drain(sub)
    assert pairs(events)[-2:] == [(S.RUNNING, S.STOPPING), (S.STOPPING, S.STOPPED)]
    assert events[-1].exit_code == 42
    assert events[-1].cause is Cause.KERNEL


ENDINGS = [
    # mode, how the command ends, whether an adopted run's init pidfd tells, the status
    (RunMode.SYSTEM, "exit 3", True, ExitStatus(3, None)),
    # reboot(2) leaves the pidfd an exit 0 or SIGKILL: those go to the record
    (RunMode.SYSTEM, "exit 0", False, ExitStatus(0, None)),
    (RunMode.SYSTEM, "KILL", False, ExitStatus(None, 9)),
    (RunMode.APP, "exit 3", True, ExitStatus(3, None)),
    (RunMode.APP, "exit 200", False, ExitStatus(200, None)),
    (RunMode.APP, "kill -TERM $$", False, ExitStatus(None, 15)),
]


@pytest.mark.parametrize("adopted", [False, True], ids=["own", "adopted"])
@pytest.mark.parametrize(("mode", "ending", "told", "status"), ENDINGS)
async def test_the_exit_reported_at_the_death_is_the_keepers_record(
    lxc: Env, shim_binary: Path, host_root_config: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, adopted: bool,
    mode: RunMode, ending: str, told: bool, status: ExitStatus,
) -> None:
    """STOPPING carries the status as soon as the keeper has reaped the init:
    from the keeper's report pipe for a run this daemon started, from the
    init's own pidfd for one it adopted where that can tell (else the
    record is waited for); always the one the keeper records."""
    reported: list[int | None] = []
    seen: list[ExitStatus | None] = []
    recorded: list[ExitStatus | None] = []
    real_report, real_seen, real_read = (Shim.keeper_status, supervisor.seen_exit,
                                         supervisor.ExitStatus.read)

    async def spy_report(shim: Shim) -> int | None:
        reported.append(await real_report(shim))
        return reported[-1]

    def spy_seen(mode: RunMode, raw: int | None) -> ExitStatus | None:
        seen.append(real_seen(mode, raw))
        return seen[-1]

    def spy_record(run_dir: Path) -> ExitStatus | None:
        recorded.append(real_read(run_dir))
        return recorded[-1]

    monkeypatch.setattr(Shim, "keeper_status", spy_report)
    monkeypatch.setattr(supervisor, "seen_exit", spy_seen)
    monkeypatch.setattr(supervisor.ExitStatus, "read", spy_record)
    flag = tmp_path / "end"
    command = ["sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.02; done; "
                           + ("sleep 100" if ending == "KILL" else ending)]

    async def the_end(sup: Supervisor) -> list[Event]:
        c = sup.get("web")
        assert c.state is S.RUNNING
        with sup.bus.subscribe() as sub:
            flag.touch()
            if ending == "KILL":
                await trio.sleep(0.1)
                c.run.shim.signal_init(9)  # type: ignore[union-attr]
            with trio.fail_after(10):
                await c.wait_until(lambda: c.state is S.STOPPED)
            return drain(sub)

    manager = open_manager(parent=lxc.paths.cgroup_parent)
    sup = Supervisor(lxc.paths, manager, shim_binary=shim_binary)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.create("web", str(host_root_config))
        c = await sup.start("web", mode=mode, command=command)
        shim_pid = c.run.shim.pid  # type: ignore[union-attr]
        if not adopted:
            events = await the_end(sup)
        nursery.cancel_scope.cancel()  # adopted: the container outlives it
    if adopted:
        sup = Supervisor(lxc.paths, manager, shim_binary=shim_binary)
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            events = await the_end(sup)
            nursery.cancel_scope.cancel()
        # A daemon that adopts is not the shim's parent; this process is
        # (the shim has exited: WNOHANG reaps it without blocking).
        os.waitpid(shim_pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: never blocks)
    stopping, stopped = events
    assert (stopping.to_state, stopped.to_state) == (S.STOPPING, S.STOPPED)
    for e in (stopping, stopped):
        assert ExitStatus(e.exit_code, e.signal) == status
    assert recorded == [status]
    if adopted:
        assert reported == [None]  # no report pipe: the pidfd's turn
        assert seen == [status if told else None]
    else:
        assert len(reported) == 1
        assert reported[0] is not None
        assert ExitStatus.of_wait_status(reported[0]) == status
        assert seen == []


async def test_devices_are_confined_on_every_layout(sup: Supervisor,
                                                   host_root_config: Path) -> None:
    """The v1 devices controller on hybrid and legacy, a cgroup2 device
    program on unified: /dev/null opens, /dev/kmsg does not."""
    await sup.create("web", str(host_root_config))
    c = await sup.start("web", command=[
        "sh", "-c", "head -c0 /dev/null || exit 1; head -c0 /dev/kmsg 2>/dev/null && exit 2;"
        " exit 3"])
    with trio.fail_after(10):
        await c.wait_until(lambda: c.state is S.STOPPED)
    assert c.last_exit is not None
    assert c.last_exit.code == 3


async def test_freeze_from_outside_is_observed(sup: Supervisor, host_root_config: Path) -> None:
    await sup.create("web", str(host_root_config))
    if sup.cgroups.layout is Layout.LEGACY:
        pytest.skip("freezer.state has no change notification to observe")
    c = await sup.start("web", command=["sleep", "1000"])
    freeze = Path("/sys/fs/cgroup/unified") / sup.paths.cgroup_parent / "web" / "cgroup.freeze"
    with sup.bus.subscribe() as sub:
        freeze.write_text("1")
        with trio.fail_after(5):
            await c.wait_until(lambda: c.state is S.FROZEN)
        freeze.write_text("0")
        with trio.fail_after(5):
            await c.wait_until(lambda: c.state is S.RUNNING)
        events = drain(sub)
    assert pairs(events) == [(S.RUNNING, S.FREEZING), (S.FREEZING, S.FROZEN),
                             (S.FROZEN, S.RUNNING)]
    assert {e.cause for e in events} == {Cause.KERNEL}
    await sup.stop("web", kill=True)


async def test_operations_on_one_container_are_serialised(
    sup: Supervisor, host_root_config: Path
) -> None:
    await sup.create("web", str(host_root_config))
    await sup.start("web", command=["sleep", "1000"])
    outcomes: list[str] = []

    async def attempt(op: str) -> None:
        try:
            if op == "stop":
                await sup.stop("web", kill=True)
            else:
                await sup.freeze("web")
            outcomes.append(op)
        except WrongState:
            outcomes.append(f"{op}:refused")

    with sup.bus.subscribe() as sub:
        async with trio.open_nursery() as n:
            for op in ("freeze", "stop", "freeze"):
                n.start_soon(attempt, op)
        events = drain(sub)
    assert sup.get("web").state is S.STOPPED
    assert "stop" in outcomes
    # Every event continues from the previous one: no interleaved transitions.
    for before, after in zip(events, events[1:], strict=False):
        assert before.to_state is after.from_state


def _fds() -> set[tuple[str, str]]:
    """This process's open fds, with what each refers to."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:
            pass  # the listing's own fd, closed by now
    return out


def _zombie_children() -> list[str]:
    me = os.getpid()
    out = []
    for task in os.listdir(f"/proc/{me}/task"):
        for child in Path(f"/proc/{me}/task/{task}/children").read_text().split():
            stat = Path(f"/proc/{child}/stat").read_text()
            if stat[stat.rindex(")") + 2] == "Z":
                out.append(child)
    return out


async def test_no_leaks_over_many_cycles(sup: Supervisor, lxc: Env) -> None:
    rootfs = lxc.base / "rootfs"
    binds = [d for d in ("bin", "lib", "lib64", "usr") if Path("/" + d).exists()]
    for d in binds:
        (rootfs / d).mkdir(parents=True)
    config = lxc.config(
        f"lxc.rootfs.path = {rootfs}\n"
        + "".join(f"lxc.mount.entry = /{d} {d} none ro,bind 0 0\n" for d in binds)
    )
    await sup.create("cyc", str(config))
    mounts_before = Path("/proc/self/mountinfo").read_text().count("\n")
    # One warm-up cycle: the first start opens the inotify instance and such.
    c = await sup.start("cyc", command=["sleep", "1000"])
    await sup.stop("cyc", kill=True)
    fds_before = _fds()
    for i in range(25):
        c = await sup.start("cyc", command=["sleep", "1000"])
        if i % 2:
            await sup.freeze("cyc")
        await sup.stop("cyc", grace=0.05)
        assert c.state is S.STOPPED
    with pytest.raises(StartFailed):  # failed starts must not leak either
        await sup.start("cyc", command=["/nonexistent"])
    # Only new fds are leaks: an earlier test's pyroute2 socket may close
    # (from its own thread) meanwhile.
    assert _fds() - fds_before == set()
    assert _zombie_children() == []
    assert sup.cgroups.names() == []
    assert list((sup.paths.rundir / "containers").iterdir()) == []
    assert Path("/proc/self/mountinfo").read_text().count("\n") == mounts_before
