"""The trio supervisor: the registry of containers and their lifecycle.

Each running container has one runner task in the supervisor's nursery,
started with ``nursery.start`` so that ``start`` returns once the container is
RUNNING (or has aborted). Runners only observe: they wait on the shim's pidfd
and tear the run down when it ends. Operations (start, stop, freeze, ...) hold
the container's lock; state changes go through :meth:`Container.transition`.
The start pipeline is :mod:`~lxcflow.daemon.launch`, freezing is
:mod:`~lxcflow.daemon.freezer`, what a previous daemon left is
:mod:`~lxcflow.daemon.adoption`; this module decides when each happens.

Containers outlive the supervisor: cancelling it closes file descriptors and
nothing else; the next supervisor re-adopts what is still running.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio

from lxcflow import states
from lxcflow.cgroups import CgroupManager, ContainerCgroup
from lxcflow.config import ContainerConfig, load_config
from lxcflow.daemon import creation, hooks
from lxcflow.daemon.adoption import Adoption
from lxcflow.daemon.container import Container, LastRun
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.freezer import Freezer
from lxcflow.daemon.halting import halt_signal, init_end, reboot_signal, seen_exit
from lxcflow.daemon.launch import AddressClaims, Launch, Launcher
from lxcflow.daemon.run import CgroupTree, Run
from lxcflow.daemon.watch import FileWatcher
from lxcflow.errors import (
    AlreadyExists,
    CgroupError,
    ConfigError,
    LxcflowError,
    NotFound,
    OperationTimeout,
    StartFailed,
    WrongState,
)
from lxcflow.paths import Paths
from lxcflow.runstate import ExitStatus, Interface
from lxcflow.runtime import lxc
from lxcflow.runtime.spec import RunMode
from lxcflow.states import USER, Actor, Cause, State
from lxcflow.validate import container_name

log = structlog.get_logger("lxcflow.supervisor")


@dataclass(frozen=True, slots=True)
class Usage:
    """What a running container uses, sampled from its cgroup."""

    cpu_ns: int
    memory_bytes: int | None
    pids: int


class Supervisor:
    """Runs and observes containers.

    Args:
        paths: where configs, run state and the socket live.
        cgroups: the cgroup manager for this machine's layout.
        shim_binary: the built ``lxcflow-shim``.
        freeze_timeout: seconds a freeze may take before it is undone.
        start_timeout: seconds a start may take before it is aborted.
        hooks_dir: executables run on every transition (None: none).
        hook_timeout: seconds any hook may run before it is killed.
    """

    def __init__(
        self,
        paths: Paths,
        cgroups: CgroupManager,
        *,
        shim_binary: Path,
        bus: EventBus | None = None,
        freeze_timeout: float = 5.0,
        start_timeout: float = 30.0,
        hooks_dir: Path | None = None,
        hook_timeout: float = 30.0,
    ) -> None:
        self.paths = paths
        self.cgroups = cgroups
        self.shim_binary = shim_binary
        self.bus = bus or EventBus()
        self.start_timeout = start_timeout
        self.hooks_dir = hooks_dir
        self.hook_timeout = hook_timeout
        self.containers: dict[str, Container] = {}
        self._watcher = FileWatcher()
        self._tree = CgroupTree(cgroups)
        self.freezer = Freezer(self._watcher, freeze_timeout)
        self._launcher = Launcher(paths, self._tree, shim_binary,
                                  AddressClaims(self._interfaces), hook_timeout)
        self._nursery: trio.Nursery | None = None
        #: set once what was running before this supervisor has been adopted
        self.ready = trio.Event()
        #: told the seconds each start, stop, freeze and unfreeze that
        #: succeeded took, from the request to its confirmation (metrics)
        self.on_operation: Callable[[str, float], None] = lambda op, seconds: None

    @contextmanager
    def _timed(self, op: str) -> Iterator[None]:
        began = trio.current_time()
        yield  # an operation that raised is not timed
        self.on_operation(op, trio.current_time() - began)

    # ----------------------------------------------------------- lifetime

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Adopt what is running, then supervise until cancelled."""
        self.paths.lxcpath.mkdir(parents=True, exist_ok=True)
        (self.paths.rundir / "containers").mkdir(parents=True, exist_ok=True, mode=0o700)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._watcher.run)
            if self.hooks_dir is not None:
                # Subscribed before adoption: recovered transitions run hooks too.
                await nursery.start(hooks.run_global_hooks, self.bus, self.hooks_dir,
                                    self.hook_timeout)
            for config in sorted(self.paths.lxcpath.glob("*/config")):
                name = config.parent.name
                self.containers[name] = Container(name, self.bus)
            adoption = Adoption(self.containers, self.bus, self.paths, self._tree, self.freezer)
            for c in await adoption.adopt_all():
                nursery.start_soon(self._watch, c)
            self.ready.set()
            task_status.started()
            await trio.sleep_forever()

    def _interfaces(self) -> Iterator[tuple[str, tuple[Interface, ...]]]:
        """Every running container's interfaces (for address claims)."""
        return ((c.name, c.run.interfaces) for c in self.containers.values() if c.run)

    def state_of(self, name: str) -> State | None:
        """The container's state, or None if no container has that name."""
        c = self.containers.get(name)
        return c.state if c is not None else None

    def get(self, name: str) -> Container:
        """The container named ``name``.

        Raises:
            UsageError: not a valid name. NotFound: no such container.
        """
        container_name(name)
        try:
            return self.containers[name]
        except KeyError:
            raise NotFound(f"container {name!r} does not exist", container=name) from None

    def running(self, name: str) -> tuple[Container, Run, ContainerCgroup]:
        """The container, its run and cgroup.

        Raises:
            WrongState: it is not running (or its cgroup is gone).
        """
        c = self.get(name)
        run = c.run
        if c.state is State.STOPPED or run is None or run.cgroup is None:
            raise WrongState(f"container {name!r} is not running", container=name)
        return c, run, run.cgroup

    # ----------------------------------------------------------- create / destroy

    async def create(self, name: str, config_file: str | None, *, template: str | None = None,
                     template_args: Sequence[str] = (), unprivileged: bool = False) -> None:
        """Associate ``name`` with a copy of ``config_file`` (validated first),
        and with what ``template`` adds to it: a root file system, say;
        ``unprivileged``: with LXC's usual ``lxc.idmap`` lines too.

        Raises:
            UsageError: neither is given, or no such template.
            ConfigError: the config (or what the template made of it) is wrong.
            LxcflowError: the template failed; nothing of the container is left.
        """
        container_name(name)
        if name in self.containers or self.paths.container_dir(name).exists():
            raise AlreadyExists(f"container {name!r} already exists", container=name)
        await creation.make(self.paths, name, config_file, template, template_args,
                            unprivileged=unprivileged)
        self.containers[name] = Container(name, self.bus)
        self.bus.poke()  # a waiter for this name sees it appear

    async def destroy(self, name: str, *, force: bool = False) -> None:
        """Remove a created container; ``force`` stops it first."""
        c = self.get(name)
        if c.ephemeral:
            raise WrongState(f"container {name!r} was never created (nothing to destroy)")
        if c.state is not State.STOPPED:
            if not force:
                raise WrongState(
                    f"container {name!r} is {c.state.value}: stop it first or use -f",
                    container=name, state=c.state.value,
                )
            await self.stop(name, grace=0, kill=True)
        async with c.lock:
            if c.state is not State.STOPPED:
                raise WrongState(f"container {name!r} was started again meanwhile")
            try:
                config: ContainerConfig | None = load_config(self.paths.config_file(name))
            except ConfigError:
                config = None  # a broken config must not make a container undeletable
            if config is not None:
                await hooks.run_lxc(name, config, "destroy", self.hook_timeout)
            shutil.rmtree(self.paths.container_dir(name))
            del self.containers[name]
            self.bus.poke()

    # ----------------------------------------------------------- start

    async def start(
        self,
        name: str,
        *,
        mode: RunMode = RunMode.SYSTEM,
        command: Sequence[str] = (),
        config_file: str | None = None,
        stdio: tuple[int, int, int] | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        by: Actor | Cause = USER,
        again: bool = False,
    ) -> Container:
        """Start a container and return once it is RUNNING (``by``: who asks,
        for the events' cause). ``again`` with no ``command`` runs what its
        last run ran (a restart), if it ran.

        Without ``config_file`` the container must have been created; with
        one, an uncreated name runs as an ephemeral container (as
        ``lxc-execute -f``), forgotten once it stops.

        Raises:
            StartFailed: the start aborted (STARTING -> ABORTING -> STOPPED).
        """
        container_name(name)
        c = self.containers.get(name)
        if c is None:
            if config_file is None:
                raise NotFound(
                    f"container {name!r} does not exist (create it, or give -f CONFIG)",
                    container=name,
                )
            c = self.containers[name] = Container(name, self.bus, ephemeral=True)
        try:
            with self._timed("start"):
                async with c.lock:
                    if not states.can_start(c.state):
                        raise WrongState(
                            f"container {name!r} is already {c.state.value}",
                            container=name, state=c.state.value,
                        )
                    if again:
                        c.restarts += 1
                    if not c.ephemeral and lxc.runs(self.paths.lxcpath, name):
                        raise WrongState(f"container {name!r} is running under LXC: stop it with "
                                         "lxc-stop first", container=name)
                    path = Path(config_file) if config_file else self.paths.config_file(name)
                    config = load_config(path)
                    if not command and again and c.last_run is not None:
                        last = c.last_run
                        mode, command = last.mode, last.command
                        cwd, env = cwd or last.cwd, env or dict(last.env)
                    if not command:
                        if mode is RunMode.APP:
                            raise ConfigError("execute needs a command", file=str(path))
                        if config.init_cmd is None and config.rootfs is None:
                            # The host's own init, on the host's own files: a
                            # second systemd would take the machine over.
                            raise ConfigError(
                                "no lxc.rootfs.path and no lxc.init.cmd: refusing to boot the "
                                "host's own /sbin/init (set lxc.init.cmd or give a command)",
                                file=str(path))
                        command = config.init_cmd or ("/sbin/init",)
                    launch = Launch(config, path, mode, list(command), stdio, cwd, env or {}, by)
                    assert self._nursery is not None, "start() before run()"
                    await self._nursery.start(self._runner, c, launch)
        finally:
            if c.ephemeral and c.state is State.STOPPED and self.containers.get(name) is c:
                del self.containers[name]
        return c

    async def _runner(
        self,
        c: Container,
        launch: Launch,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        c.config = launch.config
        c.last_exit = None
        c.last_run = LastRun(launch.mode, tuple(launch.command), launch.cwd,
                             tuple(launch.env.items()))
        by = launch.by
        c.transition(State.STARTING, by)
        try:
            with trio.fail_after(self.start_timeout):
                c.run = await self._launcher.launch(c, launch)
                self.freezer.watch(c, c.run)
                await self._launcher.started(c, launch.config)
        except BaseException as e:
            # Whatever went wrong (the kernel, the caller's cancellation, a
            # bug), a start never stays half-done: abort and clean up.
            reason = _reason(e, self.start_timeout)
            c.transition(State.ABORTING, by, detail=reason)
            await self._end_run(c)
            c.transition(State.STOPPED, by, detail=reason)
            if isinstance(e, (LxcflowError, OSError, trio.TooSlowError)):
                raise StartFailed(f"container {c.name!r} failed to start: {reason}") from None
            raise
        # The shim reported the exec: an observation, not a hope.
        c.transition(State.RUNNING, Cause.KERNEL)
        task_status.started()
        await self._watch(c)

    async def _watch(self, c: Container) -> None:
        """Wait for the init to die, report it, and release the run once the
        keeper has recorded how it ended and exited."""
        run = c.run
        assert run is not None, "watching a container that does not run"
        # The keeper reaps the init as soon as it exits and reports the
        # status on its pipe (an adopted run has none: the init's pidfd tells
        # what it can); a keeper that does not (stopped under a debugger,
        # say) is waited for below, and its record read.
        if run.shim.report_fd < 0:
            await run.shim.init_exited()
        seen: ExitStatus | None = None
        with trio.move_on_after(1):
            raw = await run.shim.keeper_status()
            seen = (ExitStatus.of_wait_status(raw) if raw is not None
                    else seen_exit(run.mode, await run.shim.init_status()))
        cause = self._stopping(c, run, seen) if seen is not None else None
        await run.shim.reap()
        record = ExitStatus.read(run.directory)
        if seen is not None and record is not None and record != seen:
            c.log.error("exit_status_disagrees", seen=str(seen), recorded=str(record))
        exit = seen if seen is not None else record
        if cause is None:
            cause = self._stopping(c, run, exit)
        await self._end_run(c)
        if c.config is not None:
            with trio.CancelScope(shield=True):  # cleanup a user relies on
                await hooks.run_lxc(c.name, c.config, "post-stop", self.hook_timeout)
        c.transition(State.STOPPED, cause, exit=exit)
        if cause is Cause.REBOOT:
            assert self._nursery is not None
            self._nursery.start_soon(self._start_again, c)
        else:
            c.rebooting = False
        if c.ephemeral:
            # Forgotten once no operation holds it any more (a stop waiting
            # on this very transition, say), unless it was started again.
            async with c.lock:
                if c.state is State.STOPPED and self.containers.get(c.name) is c:
                    del self.containers[c.name]

    def _stopping(self, c: Container, run: Run, exit: ExitStatus | None) -> Cause:
        """Report the death (STOPPING, unless a stop already did); its cause."""
        # The init's own reboot(2); a user's plain stop that ends that way
        # stays a stop (only stop -r asks for the start again).
        end = init_end(run.mode, exit)
        if c.state is State.STOPPING and not c.rebooting:
            end = None
        if end is Cause.REBOOT and c.ephemeral:
            end = Cause.HALT  # forgotten once stopped: nothing to start again
        cause = end or Cause.KERNEL
        c.last_exit = exit
        if c.state is not State.STOPPING:
            c.transition(State.STOPPING, cause, exit=exit)
        return cause

    async def _start_again(self, c: Container) -> None:
        """A reboot's second half: the same command, started again."""
        try:
            await self.start(c.name, again=True, by=Cause.REBOOT)
        except LxcflowError as e:
            c.log.warning("reboot_start_failed", error=str(e))
        finally:
            c.rebooting = False
            c.notify()

    async def _end_run(self, c: Container) -> None:
        """Release what the run held (if it got that far)."""
        if c.run is not None:
            await c.run.teardown(self._tree, c.next_change)
            c.run = None

    # ----------------------------------------------------------- stop / kill

    async def stop(
        self, name: str, *, grace: float = 60.0, kill: bool = False, by: Actor = USER
    ) -> None:
        """Stop politely (halt signal, then SIGKILL after ``grace`` seconds) or at once.

        Raises:
            WrongState: it is not running.
            OperationTimeout: it did not stop even after SIGKILL.
        """
        c = self.get(name)
        with self._timed("stop"):
            await self._stop(c, grace, kill, by)

    async def _stop(self, c: Container, grace: float, kill: bool, by: Actor) -> None:
        name = c.name
        async with c.lock:
            if c.state is State.STOPPED:
                raise WrongState(f"container {name!r} is not running", container=name)
            c.rebooting = False  # a stop wins over a reboot still under way
            if c.state in (State.RUNNING, State.FROZEN):
                was_frozen = c.state is State.FROZEN
                c.transition(State.STOPPING, by)
                run = c.run
                if not kill and run is not None:
                    halt = halt_signal(c.config, run.mode, run.shim.init_pid)
                    if was_frozen and run.cgroup is not None:
                        # A frozen init takes the signal as it thaws.
                        run.cgroup.request_freeze(False)
                    run.shim.signal_init(halt)
                    with trio.move_on_after(grace):
                        await c.wait_until(lambda: c.state is State.STOPPED)
            # else STOPPING already: it is dying on its own; make sure of it.
            if c.state is not State.STOPPED:
                if c.run is not None:
                    c.run.kill_all()
                try:
                    with trio.fail_after(10):
                        await c.wait_until(lambda: c.state is State.STOPPED)
                except trio.TooSlowError:
                    raise OperationTimeout(f"container {name!r} did not stop") from None

    async def reboot(self, name: str, *, within: float = 60.0) -> None:
        """Ask a system container's init to reboot (``lxc.signal.reboot``) and
        return once it runs again; its init's reboot(2) brings it back.

        Raises:
            WrongState: it is not RUNNING, or runs an application.
            OperationTimeout: it did not come back ``within`` seconds.
            StartFailed: it went down but did not start again.
        """
        c, run, _ = self.running(name)
        if c.state is not State.RUNNING:
            raise WrongState(f"container {name!r} is {c.state.value}, not RUNNING",
                             container=name)
        if run.mode is not RunMode.SYSTEM:
            raise WrongState(f"container {name!r} runs an application: stop and start it",
                             container=name)
        c.rebooting = True
        run.shim.signal_init(reboot_signal(c.config))
        with trio.move_on_after(within):
            await c.wait_until(lambda: not c.rebooting)
        if c.rebooting:
            c.rebooting = False
            raise OperationTimeout(f"container {name!r} did not reboot within {within:g} s",
                                   container=name)
        if c.run is run or c.state is not State.RUNNING:
            raise StartFailed(f"container {name!r} went down but did not start again",
                              container=name)

    async def kill(self, name: str, sig: int, *, init_only: bool = False) -> int:
        """Send ``sig`` to every process of the container (or only its init,
        which forwards it to an application); returns how many got it."""
        _, run, cgroup = self.running(name)
        if init_only:
            run.shim.signal_init(sig)
            return 1
        return cgroup.kill(sig)

    # ----------------------------------------------------------- freeze

    async def freeze(self, name: str, *, by: Actor = USER) -> None:
        """Freeze and return once the kernel confirms FROZEN; undone on timeout.

        The freeze is recorded as ``by``'s: a rule's :meth:`unfreeze` does not
        undo a user's freeze.
        """
        c = self.get(name)
        async with c.lock:
            run = c.run
            if not states.can_freeze(c.state) or run is None or run.cgroup is None:
                raise WrongState(f"container {name!r} is {c.state.value}, not RUNNING")
            with self._timed("freeze"):
                await self.freezer.freeze(c, run, run.cgroup, by)

    async def unfreeze(self, name: str, *, by: Actor = USER, detail: str | None = None) -> None:
        """Thaw and return once the kernel confirms the container runs
        (``detail``: why, for the event).

        Raises:
            WrongState: not FROZEN; or a rule asks and a user froze it.
        """
        c = self.get(name)
        async with c.lock:
            run = c.run
            if not states.can_unfreeze(c.state) or run is None or run.cgroup is None:
                raise WrongState(f"container {name!r} is {c.state.value}, not FROZEN")
            with self._timed("unfreeze"):
                await self.freezer.unfreeze(c, run, run.cgroup, by, detail)

    # ----------------------------------------------------------- cgroup settings

    def priority(self, name: str, value: int | None = None) -> int:
        """Set the CPU priority (cpu.shares semantics) if ``value``; return it."""
        _, _, cgroup = self.running(name)
        if value is not None:
            cgroup.set_priority(value)
        return cgroup.priority()

    def cgroup_attr(self, name: str, key: str, value: str | None = None) -> str:
        """Set the cgroup attribute ``key`` if ``value``; return it."""
        _, _, cgroup = self.running(name)
        if value is not None:
            cgroup.set(key, value)
        return cgroup.get(key)

    def usage(self, name: str) -> Usage | None:
        """What a RUNNING container uses now; None if it is not RUNNING or
        its cgroup cannot be read (it is going away)."""
        c = self.containers.get(name)
        if c is None or c.state is not State.RUNNING or c.run is None or c.run.cgroup is None:
            return None
        cg = c.run.cgroup
        try:
            return Usage(cg.cpu_usage_ns(), cg.memory_bytes(), len(cg.pids()))
        except (CgroupError, LxcflowError, OSError):
            return None


def _reason(e: BaseException, start_timeout: float) -> str:
    if isinstance(e, trio.TooSlowError):
        return f"not running after {start_timeout:g} s"
    if isinstance(e, trio.Cancelled):
        return "cancelled"
    if isinstance(e, OSError):
        return f"{e.filename or ''}: {e.strerror}".lstrip(": ")
    return str(e) or type(e).__name__
