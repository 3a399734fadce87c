"""Taking over from a previous daemon: adopt what still runs, recover what ended.

Containers outlive the daemon. When a daemon starts, each run directory it
finds is a container some earlier daemon started: if its shim still lives
(same PID and start time), the container is adopted; if not, the exit
status the shim recorded tells how it ended. Whatever happened while no
daemon watched is reported as transitions marked ``recovered``, in legal
steps from the state the journal last saw. A container that was already
STOPPED gets back its last exit from the journal.

This module builds :class:`Run` objects and hands them back; the supervisor
watches them from then on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from lxcflow import states
from lxcflow.cgroups import ContainerCgroup
from lxcflow.config import load_config
from lxcflow.daemon import freezer
from lxcflow.daemon.container import Container, LastRun
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.freezer import Freezer
from lxcflow.daemon.run import CgroupTree, Run, release
from lxcflow.errors import CgroupError, ConfigError
from lxcflow.paths import Paths
from lxcflow.runstate import ExitStatus, RunState
from lxcflow.runtime import shim
from lxcflow.states import Cause, State

log = structlog.get_logger("lxcflow.adoption")


@dataclass
class Adoption:
    """What adopting needs: the registry to fill, and the parts runs are made of."""

    containers: dict[str, Container]
    bus: EventBus
    paths: Paths
    tree: CgroupTree
    freezer: Freezer

    async def adopt_all(self) -> list[Container]:
        """Adopt or recover every container a previous daemon left a trace of;
        returns those adopted running (each with its run), to be watched."""
        journal = self.bus.journal
        journaled = journal.last_states() if journal else {}
        self._restore_last_exits(journal.last_ends() if journal else {}, journaled)
        run_dirs = sorted((self.paths.rundir / "containers").iterdir())
        adopted: list[Container] = []
        for run_dir in run_dirs:
            try:
                c = await self._adopt(run_dir, journaled.get(run_dir.name))
            except Exception as e:  # one damaged run directory must not stop the daemon
                log.exception("adoption_failed", container=run_dir.name, error=str(e))
                continue
            if c is not None:
                adopted.append(c)
        seen = {d.name for d in run_dirs}
        for name, last in sorted(journaled.items()):
            if last is not State.STOPPED and name not in seen:
                # Running when the last daemon saw it, gone without a trace since
                # (a reboot, a lost run directory): it stopped.
                recover(self.containers.get(name) or Container(name, self.bus), last,
                        State.STOPPED)
        return adopted

    def _restore_last_exits(
        self, ends: dict[str, states.Event], journaled: dict[str, State]
    ) -> None:
        """How each STOPPED container's last run ended, as the journal kept it
        (a run still going has no last exit yet)."""
        for name, end in ends.items():
            c = self.containers.get(name)
            if (c is not None and journaled.get(name) is State.STOPPED
                    and (end.exit_code is not None or end.signal is not None)):
                c.last_exit = ExitStatus(end.exit_code, end.signal)

    async def _adopt(self, run_dir: Path, last: State | None) -> Container | None:
        """Take over one container, or learn how it ended. ``last`` is its state
        after its last journaled event."""
        name = run_dir.name
        try:
            rs = RunState.load(run_dir)
        except (OSError, ValueError, TypeError) as e:
            # A start the last daemon never finished: it never ran.
            log.error("run_state_unreadable", container=name, error=str(e))
            c = self.containers.get(name) or Container(name, self.bus)
            await release(c.log, self.tree, run_dir, cgroup=self._cgroup(name))
            if last not in (None, State.STOPPED):
                recover(c, last, State.STOPPED)
            return None
        c = self.containers.get(name) or Container(name, self.bus, ephemeral=rs.ephemeral)
        self.containers[name] = c
        if rs.command:
            c.last_run = LastRun(rs.mode, rs.command)
        try:
            c.config = load_config(rs.config_file)
        except ConfigError as e:
            c.log.warning("config_unreadable", error=str(e))
        cgroup = self._cgroup(name)
        alive = shim.adopt(rs.shim_pid, rs.shim_start, rs.init_pid)
        if alive is None:
            # It ended while no daemon was watching: report what the shim
            # recorded. state.json exists only once the shim reported the exec,
            # so it did run (STARTING -> RUNNING is part of the story).
            exit = ExitStatus.read(run_dir)
            recover(c, last if last not in (None, State.STOPPED) else State.RUNNING,
                    State.STOPPING, exit)
            await release(c.log, self.tree, run_dir, cgroup=cgroup, interfaces=rs.interfaces)
            c.transition(State.STOPPED, Cause.RECOVERED, exit=exit)
            c.last_exit = exit
            if c.ephemeral:
                del self.containers[name]
            return None
        run = Run(rs, run_dir, alive, cgroup, c.log)
        c.run = run
        found = freezer.found_state(c, run)
        self.freezer.watch(c, run)
        if last in (State.STOPPING, State.ABORTING):
            # The last daemon died halfway through a stop: finish it, so that
            # what is reported next (STOPPED) is what really happens.
            c.state = State.STOPPING
            run.kill_all()
        elif last in (None, State.STOPPED):
            c.state = found  # no journaled past to compare with: nothing to report
        else:
            recover(c, last, found)
        if c.state is State.FROZEN:
            if c.frozen_since_ns is None:
                c.frozen_since_ns = time.time_ns()  # frozen since before this daemon
            c.frozen_by = freezer.recorded_owner(run)
        c.log.info("adopted", state=c.state.value, pid=rs.init_pid)
        return c

    def _cgroup(self, name: str) -> ContainerCgroup | None:
        try:
            return self.tree.manager.open(name)
        except CgroupError:
            return None


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
