"""Freezing and thawing, as the kernel confirms it, and who asked.

Write, then confirm: a freeze returns once the cgroup says FROZEN (woken by
cgroup.events, see :func:`lxcflow.daemon.run.observe`) and is undone if its
deadline passes, so a container is never left FREEZING. Freezes are owned:
a rule's thaw does not undo a user's freeze, and who froze a container is
kept beside its run state for the next daemon. A freeze or thaw nobody
asked for (cgroupfs written by hand) is seen through cgroup.events and
reported as the kernel's.

The caller (the supervisor) holds the container's lock and has checked
that the container runs; this module decides nothing else.
"""

from __future__ import annotations

import trio

from lxcflow.cgroups import ContainerCgroup, FreezerState
from lxcflow.daemon.container import Container
from lxcflow.daemon.run import Run
from lxcflow.daemon.watch import FileWatcher
from lxcflow.errors import CgroupError, LxcflowError, OperationTimeout, WrongState
from lxcflow.runstate import FROZEN_BY_FILE
from lxcflow.states import OUTSIDE, Actor, Cause, State


class Freezer:
    """Freezes containers' cgroups and watches their cgroup.events.

    Args:
        watcher: the daemon's one inotify instance for cgroup.events files.
        timeout: seconds a freeze may take before it is undone.
    """

    def __init__(self, watcher: FileWatcher, timeout: float) -> None:
        self.watcher = watcher
        self.timeout = timeout

    def watch(self, c: Container, run: Run) -> None:
        """Watch the run's cgroup.events (where the layout has one)."""
        if run.cgroup is None or run.cgroup.events_file is None:
            return
        try:
            run.watch = self.watcher.add(run.cgroup.events_file,
                                         lambda: self._on_cgroup_event(c, run))
        except (OSError, ValueError) as e:  # out of inotify watches; watcher closed
            c.log.warning("cgroup_watch_failed", error=str(e))

    def _on_cgroup_event(self, c: Container, run: Run) -> None:
        """cgroup.events changed: wake waiters, and record freezes nobody asked for."""
        c.notify()
        if c.lock.locked() or c.run is not run or run.cgroup is None:
            return
        if c.state is not State.RUNNING and c.state is not State.FROZEN:
            return
        try:
            frozen = run.cgroup.read_events().frozen
        except CgroupError:
            return  # being removed
        if frozen and c.state is State.RUNNING:
            c.transition(State.FREEZING, Cause.KERNEL, detail="frozen outside lxcflow")
            c.frozen_by = OUTSIDE
            c.transition(State.FROZEN, Cause.KERNEL)
            record_owner(c, run)
        elif not frozen and c.state is State.FROZEN:
            c.transition(State.RUNNING, Cause.KERNEL, detail="thawed outside lxcflow")
            record_owner(c, run)

    async def freeze(self, c: Container, run: Run, cg: ContainerCgroup, by: Actor) -> None:
        """Freeze and return once the kernel confirms FROZEN; undone on timeout."""
        cg.request_freeze(True)  # first: if the kernel refuses, nothing changed
        c.transition(State.FREEZING, by)
        c.frozen_by = by
        failure = f"did not freeze within {self.timeout:g} s"
        frozen = False

        def done() -> bool:
            nonlocal frozen
            frozen = c.state is State.FREEZING and cg.freezer_state() is FreezerState.FROZEN
            return frozen or c.state is not State.FREEZING

        try:
            with trio.move_on_after(self.timeout):
                await run.observe(done, c.next_change)
        except LxcflowError as e:
            frozen, failure = False, str(e)
        if c.state is not State.FREEZING:
            raise WrongState(f"container {c.name!r} stopped while freezing")
        if not frozen:
            # Never left half-frozen: undo, and say so in the event.
            try:
                cg.request_freeze(False)
            except LxcflowError as e:
                c.log.error("thaw_failed", error=str(e))
            c.transition(State.RUNNING, by, detail=f"freeze_failed: {failure}")
            raise OperationTimeout(f"container {c.name!r} {failure}")
        c.transition(State.FROZEN, Cause.KERNEL)
        record_owner(c, run)

    async def unfreeze(self, c: Container, run: Run, cg: ContainerCgroup, by: Actor,
                       detail: str | None = None) -> None:
        """Thaw and return once the kernel confirms the container runs
        (``detail``: why, for the event).

        Raises:
            WrongState: a rule asks and a user froze it.
        """
        if by.rule is not None and (c.frozen_by is None or c.frozen_by.rule is None):
            raise WrongState(f"container {c.name!r} was frozen by a user, not by a rule")
        cg.request_freeze(False)
        try:
            with trio.fail_after(self.timeout):
                await run.observe(
                    lambda: c.state is not State.FROZEN
                    or cg.freezer_state() is FreezerState.THAWED,
                    c.next_change,
                )
        except trio.TooSlowError:
            raise OperationTimeout(f"container {c.name!r} did not thaw") from None
        if c.state is State.FROZEN:
            c.transition(State.RUNNING, by, detail=detail)
            record_owner(c, run)


def record_owner(c: Container, run: Run) -> None:
    """Keep who froze it beside its run state, so that after a daemon
    restart a rule's thaw still does not undo a user's freeze."""
    path = run.directory / FROZEN_BY_FILE
    try:
        if c.state is State.FROZEN and c.frozen_by is not None:
            path.write_text(c.frozen_by)
        else:
            path.unlink(missing_ok=True)
    except OSError as e:
        c.log.warning("freezer_not_recorded", error=str(e))


def recorded_owner(run: Run) -> Actor | None:
    """Who froze it, as the last daemon recorded (None: no lxcflow request we know of)."""
    try:
        return Actor.parse((run.directory / FROZEN_BY_FILE).read_text().strip())
    except OSError:
        return None


def found_state(c: Container, run: Run) -> State:
    """RUNNING or FROZEN, as the kernel says; a freeze left halfway by the
    last daemon is undone, as its deadline would have."""
    if run.cgroup is None:
        return State.RUNNING
    try:
        freezer = run.cgroup.freezer_state()
        if freezer is FreezerState.FREEZING:
            run.cgroup.request_freeze(False)
        return State.FROZEN if freezer is FreezerState.FROZEN else State.RUNNING
    except LxcflowError as e:
        c.log.warning("freezer_unreadable", error=str(e))
        return State.RUNNING
