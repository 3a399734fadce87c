"""Taking over from a previous daemon: adopt what still runs, recover what ended.

Containers outlive the daemon. When a daemon starts, each run directory it
finds is a container some earlier daemon started: if its shim still lives
(same PID and start time), the container is adopted; if not, the exit
status the shim recorded tells how it ended. Whatever happened while no
daemon watched is reported as transitions marked ``recovered``, in legal
steps from the state the journal last saw.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from lxcflow import states
from lxcflow.config import load_config
from lxcflow.daemon.container import Container, LastRun
from lxcflow.errors import CgroupError, ConfigError, LxcflowError
from lxcflow.runstate import FROZEN_BY_FILE, ExitStatus, RunState
from lxcflow.runtime import shim
from lxcflow.states import Cause, State

if TYPE_CHECKING:
    from lxcflow.daemon.supervisor import Supervisor

log = structlog.get_logger("lxcflow.adoption")


async def adopt_all(sup: Supervisor) -> None:
    """Adopt or recover every container a previous daemon left a trace of."""
    journaled = sup.bus.journal.last_states() if sup.bus.journal else {}
    run_dirs = sorted((sup.paths.rundir / "containers").iterdir())
    for run_dir in run_dirs:
        try:
            await _adopt(sup, run_dir, journaled.get(run_dir.name))
        except Exception as e:  # one damaged run directory must not stop the daemon
            log.exception("adoption_failed", container=run_dir.name, error=str(e))
    adopted = {d.name for d in run_dirs}
    for name, last in sorted(journaled.items()):
        if last is not State.STOPPED and name not in adopted:
            # Running when the last daemon saw it, gone without a trace since
            # (a reboot, a lost run directory): it stopped.
            recover(sup.containers.get(name) or Container(name, sup.bus), last, State.STOPPED)


def recover(c: Container, last: State, found: State, exit: ExitStatus | None = None) -> None:
    """Emit, in legal steps and marked recovered, how ``last`` became ``found``."""
    steps = states.path(last, found)
    if State.STOPPED in steps[:-1]:
        # e.g. the last daemon died halfway through a stop that then never
        # happened: claiming a stop and a start would report a fiction.
        c.log.warning("state_resumed", journaled=last.value, found=found.value)
        c.state = found
        return
    c.state = last
    for state in steps:
        c.transition(state, Cause.RECOVERED, exit=exit if state is found else None)


async def _adopt(sup: Supervisor, run_dir: Path, last: State | None) -> None:
    """Take over one container, or learn how it ended. ``last`` is its state
    after its last journaled event."""
    name = run_dir.name
    try:
        rs = RunState.load(run_dir)
    except (OSError, ValueError, TypeError) as e:
        # A start the last daemon never finished: it never ran.
        log.error("run_state_unreadable", container=name, error=str(e))
        c = await _clean_orphan(sup, name)
        if last not in (None, State.STOPPED):
            recover(c, last, State.STOPPED)
        return
    c = sup.containers.get(name) or Container(name, sup.bus, ephemeral=rs.ephemeral)
    sup.containers[name] = c
    c.run = rs
    c.interfaces = rs.interfaces
    if rs.command:
        c.last_run = LastRun(rs.mode, tuple(rs.command))
    try:
        c.config = load_config(rs.config_file)
    except ConfigError as e:
        c.log.warning("config_unreadable", error=str(e))
    try:
        c.cgroup = sup.cgroups.open(name)
    except CgroupError:
        c.cgroup = None
    c.shim = shim.adopt(rs.shim_pid, rs.shim_start, rs.init_pid)
    if c.shim is None:
        # It ended while no daemon was watching: report what the shim
        # recorded. state.json exists only once the shim reported the exec,
        # so it did run (STARTING -> RUNNING is part of the story).
        exit = ExitStatus.read(run_dir)
        recover(c, last if last not in (None, State.STOPPED) else State.RUNNING,
                State.STOPPING, exit)
        await sup.teardown(c)
        c.transition(State.STOPPED, Cause.RECOVERED, exit=exit)
        c.last_exit = exit
        if c.ephemeral:
            del sup.containers[name]
        return
    found = _found_state(c)
    if c.cgroup is not None:
        sup.watch_cgroup(c)
    if last in (State.STOPPING, State.ABORTING):
        # The last daemon died halfway through a stop: finish it, so that
        # what is reported next (STOPPED) is what really happens.
        c.state = State.STOPPING
        sup.kill_all(c)
    elif last in (None, State.STOPPED):
        c.state = found  # no journaled past to compare with: nothing to report
    else:
        recover(c, last, found)
    if c.state is State.FROZEN:
        if c.frozen_since_ns is None:
            c.frozen_since_ns = time.time_ns()  # frozen since before this daemon
        try:
            c.frozen_by = (run_dir / FROZEN_BY_FILE).read_text().strip() or None
        except OSError:
            c.frozen_by = None  # frozen by no lxcflow request we know of
    c.log.info("adopted", state=c.state.value, pid=rs.init_pid)
    sup.supervise(c)


def _found_state(c: Container) -> State:
    """RUNNING or FROZEN, as the kernel says; a freeze left halfway by the
    last daemon is undone, as its deadline would have."""
    if c.cgroup is None:
        return State.RUNNING
    try:
        freezer = c.cgroup.freezer_state()
        if freezer == "FREEZING":
            c.cgroup.request_freeze(False)
        return State.FROZEN if freezer == "FROZEN" else State.RUNNING
    except LxcflowError as e:
        c.log.warning("freezer_unreadable", error=str(e))
        return State.RUNNING


async def _clean_orphan(sup: Supervisor, name: str) -> Container:
    """A start interrupted by the daemon's death: kill what it made."""
    c = sup.containers.get(name) or Container(name, sup.bus)
    try:
        c.cgroup = sup.cgroups.open(name)
    except CgroupError:
        pass
    await sup.teardown(c)
    return c
