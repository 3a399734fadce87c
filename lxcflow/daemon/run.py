"""One run of one container: what it holds while it runs, and how it lets go.

A :class:`Run` exists from the moment the shim reported the exec until
teardown: "running" is ``container.run is not None``. A start that fails
half-way releases what it made with :func:`release`, which is what
:meth:`Run.teardown` does with all of it.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
import trio

from lxcflow.cgroups import CgroupManager, ContainerCgroup
from lxcflow.daemon.timer import PreciseTimer
from lxcflow.daemon.watch import Watch
from lxcflow.errors import CgroupError
from lxcflow.runstate import Interface, RunState
from lxcflow.runtime.shim import Shim
from lxcflow.runtime.spec import RunMode

T = TypeVar("T")


class CgroupTree:
    """Cgroup mkdir/rmdir batches, off the event loop and one at a time.

    Creating or removing one container's cgroups takes about 2.6 / 3.2 ms
    on this hybrid machine (nine hierarchies): inline, that stalls every
    other container's events. One at a time, because two batches that
    both create the shared parent directory would trip over each other.
    """

    def __init__(self, manager: CgroupManager) -> None:
        self.manager = manager
        self._lock = trio.Lock()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            return await trio.to_thread.run_sync(fn, *args)

    async def create(self, name: str) -> ContainerCgroup:
        return await self._run(self.manager.create, name)

    async def remove(self, cgroup: ContainerCgroup) -> None:
        await self._run(cgroup.remove)


@dataclass(eq=False)
class Run:
    """A running container's run state, shim, cgroup, interfaces and watch."""

    record: RunState  # what state.json says: the next daemon adopts from it
    directory: Path  # its run directory
    shim: Shim
    #: None only for a run adopted after its cgroup vanished
    cgroup: ContainerCgroup | None
    log: structlog.typing.FilteringBoundLogger
    watch: Watch | None = None  # on cgroup.events, while watched

    @property
    def mode(self) -> RunMode:
        return self.record.mode

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        return self.record.interfaces

    @property
    def init_pid(self) -> int:
        return self.shim.init_pid

    async def observe(
        self, predicate: Callable[[], bool], wait_changed: Callable[[], Awaitable[None]]
    ) -> None:
        """Wait until the cgroup shows ``predicate`` (see :func:`observe`);
        ``wait_changed`` returns when cgroup.events may have changed."""
        await observe(predicate, wait_changed if self.watch is not None else None)

    def kill_all(self) -> None:
        """SIGKILL every process, the init last (its pid namespace takes the rest)."""
        if self.cgroup is not None:
            try:
                self.cgroup.kill(signal.SIGKILL)
            except CgroupError as e:
                self.log.warning("cgroup_kill_failed", error=str(e))
        self.shim.signal_init(signal.SIGKILL)

    async def teardown(
        self, tree: CgroupTree, wait_changed: Callable[[], Awaitable[None]]
    ) -> None:
        """Release all of it: processes, cgroup, interfaces, watch, shim, run
        directory (``wait_changed``: returns when cgroup.events may have changed)."""
        await release(self.log, tree, self.directory, cgroup=self.cgroup,
                      interfaces=self.interfaces, shim=self.shim, watch=self.watch,
                      wait_changed=wait_changed if self.watch is not None else None)
        self.watch = None


async def release(
    log: structlog.typing.FilteringBoundLogger,
    tree: CgroupTree,
    directory: Path,
    *,
    cgroup: ContainerCgroup | None = None,
    interfaces: tuple[Interface, ...] = (),
    shim: Shim | None = None,
    watch: Watch | None = None,
    wait_changed: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Release what a run (or a start that failed half-way) holds.

    Shielded so a cancelled caller cannot leave half a container behind;
    every wait inside is bounded on its own, so each step still runs.
    """
    with trio.CancelScope(shield=True):
        if cgroup is not None:
            cg = cgroup
            try:
                if cg.read_events().populated:
                    cg.kill(signal.SIGKILL)
                    with trio.move_on_after(5):
                        await observe(lambda: not cg.read_events().populated, wait_changed)
                await tree.remove(cg)
            except Exception as e:
                log.error("cgroup_cleanup_failed", error=str(e))
        if interfaces:
            from lxcflow import network  # pyroute2 costs a quarter second: only when used

            try:
                await trio.to_thread.run_sync(network.release, [i.host for i in interfaces])
            except Exception as e:  # e.g. out of fds: the rest of teardown still runs
                log.error("network_cleanup_failed", error=str(e))
        if watch is not None:
            watch.close()
        if shim is not None:
            with trio.move_on_after(5) as scope:
                await shim.reap()
            if scope.cancelled_caught:
                log.error("shim_did_not_exit", pid=shim.pid)
            shim.close()
        shutil.rmtree(directory, ignore_errors=True)


async def observe(
    predicate: Callable[[], bool], wait_changed: Callable[[], Awaitable[None]] | None
) -> None:
    """Wait until ``predicate()`` holds, woken by ``wait_changed`` (cgroup.events)
    where there is one, and re-checked on a short backoff (0.1 ms doubling to
    5 ms) in any case: the kernel rate-limits cgroup.events notifications to
    about one per file per 10-15 ms, a busy container often freezes in well
    under that, and v1's freezer.state has no notification at all.
    """
    if predicate():
        return
    delay = 0.0001
    timer = PreciseTimer()  # trio's own sleeps round up to a millisecond
    try:
        while not predicate():
            async with trio.open_nursery() as race:
                race.start_soon(_then_cancel, race.cancel_scope, timer.sleep, delay)
                if wait_changed is not None:
                    race.start_soon(_then_cancel, race.cancel_scope, wait_changed)
            delay = min(delay * 2, 0.005)
    finally:
        timer.close()


async def _then_cancel(scope: trio.CancelScope, fn: Callable[..., Awaitable[object]],
                       *args: object) -> None:
    await fn(*args)
    scope.cancel()
