"""The trio supervisor: owns every container, its runner task and its cgroup.

Each running container has one runner task in the supervisor's nursery,
started with ``nursery.start`` so that ``start`` returns once the container is
RUNNING (or has aborted). Runners only observe: they wait on the shim's pidfd
and tear down when it ends. Operations (start, stop, freeze, ...) hold the
container's lock; state changes go through :meth:`Container.transition`.

Containers outlive the supervisor: cancelling it closes file descriptors and
nothing else; the next supervisor re-adopts what is still running.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
import trio

from lxcflow import states
from lxcflow.cgroups import CgroupManager
from lxcflow.config import ContainerConfig, absolutize, load_config, validate_name
from lxcflow.daemon import adoption, hooks
from lxcflow.daemon.container import Container, LastRun
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.watch import FileWatcher
from lxcflow.errors import (
    AlreadyExists,
    CgroupError,
    ConfigError,
    LxcflowError,
    NetworkError,
    NotFound,
    OperationTimeout,
    StartFailed,
    WrongState,
)
from lxcflow.paths import Paths
from lxcflow.runstate import (
    CONFIG_FILE,
    CONSOLE_LOG,
    EXIT_FILE,
    FROZEN_BY_FILE,
    SPEC_FILE,
    ExitStatus,
    RunState,
)
from lxcflow.runtime import proc, shim
from lxcflow.runtime.spec import Mode, build_spec, container_env, write_spec
from lxcflow.states import Cause, State

log = structlog.get_logger("lxcflow.supervisor")

ACTIVE = (State.RUNNING, State.FROZEN)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Launch:
    """What one start of a container asks for."""

    config: ContainerConfig
    config_path: Path
    mode: Mode
    command: list[str]
    stdio: tuple[int, int, int] | None  # None: /dev/null in, console log out
    cwd: str | None  # the caller's directory (used only on the host's root)
    env: Mapping[str, str]  # added to the container's environment
    rule: str | None  # the rule that asked for it; None: a user


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
        self.bus = bus or EventBus()
        self.shim_binary = shim_binary
        self.freeze_timeout = freeze_timeout
        self.start_timeout = start_timeout
        self.hooks_dir = hooks_dir
        self.hook_timeout = hook_timeout
        self.containers: dict[str, Container] = {}
        self._watcher = FileWatcher()
        self._nursery: trio.Nursery | None = None
        self._cgroup_tree = trio.Lock()
        self._claimed_addresses: dict[str, str] = {}  # address -> container starting
        #: set once what was running before this supervisor has been adopted
        self.ready = trio.Event()
        #: called with the name on a user's stop; True: it cancelled something
        #: pending (a restart), which makes stopping a STOPPED container succeed
        self.stop_listeners: list[Callable[[str], bool]] = []
        #: what ``rules list`` shows (set by the rule engine, if one runs)
        self.rules_report: Callable[[], dict[str, Any]] | None = None

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
                await nursery.start(self._run_global_hooks, self.hooks_dir)
            for config in sorted(self.paths.lxcpath.glob("*/config")):
                name = config.parent.name
                self.containers[name] = Container(name, self.bus)
            await adoption.adopt_all(self)
            self.ready.set()
            task_status.started()
            await trio.sleep_forever()

    async def _run_global_hooks(
        self, directory: Path, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the global hooks for every event, in order, one event at a time.

        A hook that fails or hangs (it is killed at the timeout) is logged and
        never stops the supervisor; events arriving meanwhile queue (1,024 at
        most, then they are counted as missed for hooks).
        """
        with self.bus.subscribe() as sub:
            task_status.started()
            while True:
                event = await sub.receive()
                if sub.missed:
                    log.error("hooks_missed_events", missed=sub.missed)
                    sub.missed = 0
                try:
                    await hooks.run_global(directory, event, self.hook_timeout)
                except Exception as e:  # e.g. an unreadable hooks directory
                    log.exception("hooks_failed", error=str(e), event_id=event.id)

    async def _lxc_hooks(self, c: Container, config: ContainerConfig, hook_type: str) -> bool:
        """Run the container's ``lxc.hook.<type>`` commands in order; False at the
        first that fails (the rest are not run, as in LXC)."""
        env = hooks.lxc_env(c.name, hook_type, config.file, config.rootfs)
        for command in config.hooks.get(hook_type, ()):
            result = await hooks.run(hooks.lxc_argv(command, c.name, hook_type), env=env,
                                     kill_after=self.hook_timeout)
            hooks.report(result, container=c.name, hook=f"lxc.hook.{hook_type}")
            if not result.ok:
                return False
        return True

    def state_of(self, name: str) -> State | None:
        """The container's state, or None if no container has that name."""
        c = self.containers.get(name)
        return c.state if c is not None else None

    def get(self, name: str) -> Container:
        validate_name(name)
        try:
            return self.containers[name]
        except KeyError:
            raise NotFound(f"container {name!r} does not exist", container=name) from None

    # ----------------------------------------------------------- create / destroy

    async def create(self, name: str, config_file: str) -> None:
        """Associate ``name`` with a copy of ``config_file`` (validated first)."""
        validate_name(name)
        if name in self.containers or self.paths.container_dir(name).exists():
            raise AlreadyExists(f"container {name!r} already exists", container=name)
        source = Path(config_file)
        load_config(source)  # every error with file:line, before anything is written
        text = absolutize(source.read_text(), source.parent)
        tmp = self.paths.lxcpath / f".{name}.creating"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(mode=0o755)
            (tmp / "config").write_text(text)
            os.rename(tmp, self.paths.container_dir(name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
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
                await self._lxc_hooks(c, config, "destroy")
            shutil.rmtree(self.paths.container_dir(name))
            del self.containers[name]
            self.bus.poke()

    # ----------------------------------------------------------- start

    async def start(
        self,
        name: str,
        *,
        mode: Mode = "system",
        command: Sequence[str] = (),
        config_file: str | None = None,
        stdio: tuple[int, int, int] | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        rule: str | None = None,
        again: bool = False,
    ) -> Container:
        """Start a container and return once it is RUNNING (``rule``: the rule
        that asks, for the events' cause; None for a user). ``again`` with no
        ``command`` runs what its last run ran (a restart), if it ran.

        Without ``config_file`` the container must have been created; with
        one, an uncreated name runs as an ephemeral container (as
        ``lxc-execute -f``), forgotten once it stops.

        Raises:
            StartFailed: the start aborted (STARTING -> ABORTING -> STOPPED).
        """
        validate_name(name)
        c = self.containers.get(name)
        if c is None:
            if config_file is None:
                raise NotFound(
                    f"container {name!r} does not exist (create it, or give -f CONFIG)",
                    container=name,
                )
            c = self.containers[name] = Container(name, self.bus, ephemeral=True)
        try:
            async with c.lock:
                if not states.can_start(c.state):
                    raise WrongState(
                        f"container {name!r} is already {c.state.value}",
                        container=name, state=c.state.value,
                    )
                path = Path(config_file) if config_file else self.paths.config_file(name)
                config = load_config(path)
                if not command and again and c.last_run is not None:
                    last = c.last_run
                    mode, command = last.mode, last.command  # type: ignore[assignment]
                    cwd, env = cwd or last.cwd, env or dict(last.env)
                if not command:
                    if mode == "app":
                        raise ConfigError("execute needs a command", file=str(path))
                    if config.init_cmd is None and config.rootfs is None:
                        # The host's own init, on the host's own files: a
                        # second systemd would take the machine over.
                        raise ConfigError(
                            "no lxc.rootfs.path and no lxc.init.cmd: refusing to boot the "
                            "host's own /sbin/init (set lxc.init.cmd or give a command)",
                            file=str(path))
                    command = config.init_cmd or ("/sbin/init",)
                launch = Launch(config, path, mode, list(command), stdio, cwd, env or {}, rule)
                assert self._nursery is not None
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
        cause = Cause.RULE if launch.rule else Cause.COMMAND
        c.transition(State.STARTING, cause, rule=launch.rule)
        try:
            with trio.fail_after(self.start_timeout):
                await self._launch(c, launch)
        except BaseException as e:
            # Whatever went wrong (the kernel, the caller's cancellation, a
            # bug), a start never stays half-done: abort and clean up.
            reason = _reason(e, self.start_timeout)
            c.transition(State.ABORTING, cause, detail=reason, rule=launch.rule)
            await self.teardown(c)
            c.transition(State.STOPPED, cause, detail=reason, rule=launch.rule)
            if isinstance(e, (LxcflowError, OSError, trio.TooSlowError)):
                raise StartFailed(f"container {c.name!r} failed to start: {reason}") from None
            raise
        # The shim reported the exec: an observation, not a hope.
        c.transition(State.RUNNING, Cause.KERNEL)
        task_status.started()
        await self._watch(c)

    async def _launch(self, c: Container, launch: Launch) -> None:
        config, config_path, stdio = launch.config, launch.config_path, launch.stdio
        inside = sorted(set(config.hooks) - set(hooks.HOST_HOOKS))
        if inside:
            raise StartFailed(
                f"lxc.hook.{inside[0]} runs inside the container, which lxcflow does not "
                f"support (host hooks: {', '.join(hooks.HOST_HOOKS)})"
            )
        if not await self._lxc_hooks(c, config, "pre-start"):
            raise StartFailed("lxc.hook.pre-start failed")
        run_dir = self.paths.run_dir(c.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, mode=0o700)
        if c.ephemeral:
            shutil.copyfile(config_path, run_dir / CONFIG_FILE)
            config_path = run_dir / CONFIG_FILE
        if config.rootfs is not None and not config.rootfs.is_dir():
            raise StartFailed(f"rootfs {config.rootfs} is not a directory")
        c.cgroup = await self._cgroup_op(self.cgroups.create, c.name)
        for setting in config.cgroup:
            try:
                c.cgroup.set(setting.key, setting.value)
            except LxcflowError as e:
                raise ConfigError(str(e), file=config.file, line=setting.line) from None
        # Interfaces to make need netlink, in the daemon; a namespace with lo
        # alone (``empty``) the shim makes itself, which is cheaper.
        prepared_netns = "net" in config.new_namespaces and config.makes_interfaces
        spec = build_spec(
            name=c.name, mode=launch.mode, config=config, command=launch.command,
            cgroup_procs=c.cgroup.procs_files(), exit_file=run_dir / EXIT_FILE,
            env=container_env(config, launch.env), cwd=launch.cwd, netns=prepared_netns,
        )
        write_spec(run_dir / SPEC_FILE, spec)
        opened: list[int] = []
        try:
            if stdio is None:
                # What a system container prints outlives the run (for
                # post-mortems), beside its config; an ephemeral one has only
                # its run directory.
                log_dir = run_dir if c.ephemeral else self.paths.container_dir(c.name)
                opened.append(os.open(os.devnull, os.O_RDONLY))
                opened.append(os.open(log_dir / CONSOLE_LOG,
                                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
                stdio = (opened[0], opened[1], opened[1])
            netns = await self._prepare_network(c, config) if prepared_netns else None
            if netns is not None:
                opened.append(netns)
            c.shim = await shim.spawn(self.shim_binary, run_dir / SPEC_FILE, stdio=stdio,
                                      netns=netns)
        finally:
            # The namespace is the container's now, or (a failed start) nobody's.
            for fd in opened:
                os.close(fd)
        c.run = RunState(
            name=c.name, mode=launch.mode, shim_pid=c.shim.pid,
            shim_start=proc.start_time(c.shim.pid) or 0, init_pid=c.shim.init_pid,
            started_ns=time.time_ns(), config_file=str(config_path), ephemeral=c.ephemeral,
            command=tuple(launch.command), interfaces=c.interfaces,
        )
        c.run.save(run_dir)
        self.watch_cgroup(c)
        # LXC runs start-host just before the init starts; here the init has
        # just been exec'd, which is as close as a host-side hook can get.
        if not await self._lxc_hooks(c, config, "start-host"):
            raise StartFailed("lxc.hook.start-host failed")

    async def _prepare_network(self, c: Container, config: ContainerConfig) -> int:
        """The network namespace the container will join (an fd), its
        interfaces up; recorded on the container, so teardown removes them.

        Raises:
            NetworkError: an address another container uses, or netlink said no.
        """
        wanted = {ip.split("/")[0]: ip for net in config.networks for ip in (*net.ipv4, *net.ipv6)}
        in_use = dict(self._claimed_addresses)
        for other in self.containers.values():
            if other is not c:
                in_use.update({ip.split("/")[0]: other.name for i in other.interfaces
                               for ip in (*i.ipv4, *i.ipv6)})
        for ip, text in wanted.items():
            if ip in in_use:
                raise NetworkError(f"address {text} already used by {in_use[ip]}")
        from lxcflow import network  # pyroute2 costs a quarter second: only when used

        # Claimed while netlink works, so two starts cannot both take one address.
        self._claimed_addresses.update(dict.fromkeys(wanted, c.name))
        try:
            prepared = await trio.to_thread.run_sync(network.prepare, config.networks)
        finally:
            for ip in wanted:
                self._claimed_addresses.pop(ip, None)
        c.interfaces = prepared.interfaces
        return prepared.netns

    async def _cgroup_op(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a cgroup mkdir/rmdir batch off the event loop, one at a time.

        Creating or removing one container's cgroups takes about 2.6 / 3.2 ms
        on this hybrid machine (nine hierarchies): inline, that stalls every
        other container's events. One at a time, because two batches that
        both create the shared parent directory would trip over each other.
        """
        async with self._cgroup_tree:
            return await trio.to_thread.run_sync(fn, *args)

    def watch_cgroup(self, c: Container) -> bool:
        """Watch the container's cgroup.events; False where that is impossible."""
        assert c.cgroup is not None
        if c.cgroup.events_file is None:
            return False
        try:
            c.watch = self._watcher.add(c.cgroup.events_file, lambda: self._on_cgroup_event(c))
        except (OSError, ValueError) as e:  # out of inotify watches; watcher closed
            c.log.warning("cgroup_watch_failed", error=str(e))
            return False
        return True

    def _on_cgroup_event(self, c: Container) -> None:
        """cgroup.events changed: wake waiters, and record freezes nobody asked for."""
        c.notify()
        if c.lock.locked() or c.cgroup is None or c.state not in ACTIVE:
            return
        try:
            frozen = c.cgroup.read_events().frozen
        except CgroupError:
            return  # being removed
        if frozen and c.state is State.RUNNING:
            c.transition(State.FREEZING, Cause.KERNEL, detail="frozen outside lxcflow")
            c.frozen_by = "outside"
            c.transition(State.FROZEN, Cause.KERNEL)
            self._record_freezer(c)
        elif not frozen and c.state is State.FROZEN:
            c.transition(State.RUNNING, Cause.KERNEL, detail="thawed outside lxcflow")
            self._record_freezer(c)

    def _record_freezer(self, c: Container) -> None:
        """Keep who froze it beside its run state, so that after a daemon
        restart a rule's thaw still does not undo a user's freeze."""
        path = self.paths.run_dir(c.name) / FROZEN_BY_FILE
        try:
            if c.state is State.FROZEN and c.frozen_by is not None:
                path.write_text(c.frozen_by)
            else:
                path.unlink(missing_ok=True)
        except OSError as e:
            c.log.warning("freezer_not_recorded", error=str(e))

    async def _watch(self, c: Container) -> None:
        """Wait for the shim to end (the init died and its status is on disk)."""
        assert c.shim is not None
        await c.shim.reap()
        exit = ExitStatus.read(self.paths.run_dir(c.name))
        c.last_exit = exit
        if c.state is not State.STOPPING:
            c.transition(State.STOPPING, Cause.KERNEL, exit=exit)
        await self.teardown(c)
        if c.config is not None:
            with trio.CancelScope(shield=True):  # cleanup a user relies on
                await self._lxc_hooks(c, c.config, "post-stop")
        c.transition(State.STOPPED, Cause.KERNEL, exit=exit)
        if c.ephemeral:
            # Forgotten once no operation holds it any more (a stop waiting
            # on this very transition, say), unless it was started again.
            async with c.lock:
                if c.state is State.STOPPED and self.containers.get(c.name) is c:
                    del self.containers[c.name]

    async def teardown(self, c: Container) -> None:
        """Release everything a run held: processes, cgroup, run directory, fds."""
        # Shielded so a cancelled caller cannot leave half a container behind;
        # every wait inside is bounded on its own, so each step still runs.
        with trio.CancelScope(shield=True):
            if c.cgroup is not None:
                cg = c.cgroup
                try:
                    if cg.read_events().populated:
                        cg.kill(signal.SIGKILL)
                        with trio.move_on_after(5):
                            await self._observe(c, lambda: not cg.read_events().populated)
                    await self._cgroup_op(cg.remove)
                except Exception as e:
                    c.log.error("cgroup_cleanup_failed", error=str(e))
                c.cgroup = None
            if c.interfaces:
                from lxcflow import network

                try:
                    await trio.to_thread.run_sync(network.release,
                                                  [i.host for i in c.interfaces])
                except Exception as e:  # e.g. out of fds: the rest of teardown still runs
                    c.log.error("network_cleanup_failed", error=str(e))
                c.interfaces = ()
            if c.watch is not None:
                self._watcher.remove(c.watch)
                c.watch = None
            if c.shim is not None:
                with trio.move_on_after(5) as scope:
                    await c.shim.reap()
                if scope.cancelled_caught:
                    c.log.error("shim_did_not_exit", pid=c.shim.pid)
                c.shim.close()
                c.shim = None
            c.run = None
            shutil.rmtree(self.paths.run_dir(c.name), ignore_errors=True)

    async def _observe(self, c: Container, predicate: Callable[[], bool]) -> None:
        """Wait until the cgroup shows ``predicate``.

        Woken by cgroup.events (v2), and also re-checked on a short backoff
        (0.1 ms doubling to 5 ms): the kernel rate-limits cgroup.events
        notifications to about one per file per 10-15 ms, a busy container
        often freezes in well under that, and v1's freezer.state has no
        notification at all.
        """
        assert c.cgroup is not None
        notified = c.watch is not None or self.watch_cgroup(c)  # teardown removes it
        delay = 0.0001
        while not predicate():
            with trio.move_on_after(delay):
                if notified:
                    await c.next_change()
                else:
                    await trio.sleep_forever()
            delay = min(delay * 2, 0.005)

    def supervise(self, c: Container) -> None:
        """Watch an adopted container until it ends, as a runner does."""
        assert self._nursery is not None
        self._nursery.start_soon(self._watch, c)

    # ----------------------------------------------------------- stop / kill

    async def stop(
        self, name: str, *, grace: float = 60.0, kill: bool = False, rule: str | None = None
    ) -> None:
        """Stop politely (halt signal, then SIGKILL after ``grace`` seconds) or at once.

        A user's stop is final: it also cancels a restart a policy has pending.
        """
        c = self.get(name)
        cancelled = rule is None and any([cancel(name) for cancel in self.stop_listeners])
        async with c.lock:
            if c.state is State.STOPPED and cancelled:
                return
            if c.state is State.STOPPED:
                raise WrongState(f"container {name!r} is not running", container=name)
            if c.state in ACTIVE:
                was_frozen = c.state is State.FROZEN
                c.transition(State.STOPPING, _cause(rule), rule=rule)
                if not kill and c.shim is not None:
                    if was_frozen and c.cgroup is not None:
                        c.cgroup.request_freeze(False)  # a frozen init cannot take a signal
                    c.shim.signal_init(self._halt_signal(c))
                    with trio.move_on_after(grace):
                        await c.wait_until(lambda: c.state is State.STOPPED)
            # else STOPPING already: it is dying on its own; make sure of it.
            if c.state is not State.STOPPED:
                self.kill_all(c)
                try:
                    with trio.fail_after(10):
                        await c.wait_until(lambda: c.state is State.STOPPED)
                except trio.TooSlowError:
                    raise OperationTimeout(f"container {name!r} did not stop") from None

    def _halt_signal(self, c: Container) -> int:
        config = c.config
        if config is not None and config.signal_halt is not None:
            return config.signal_halt
        # LXC's defaults: SIGPWR asks a system init to shut down.
        return signal.SIGTERM if c.run and c.run.mode == "app" else signal.SIGPWR

    def kill_all(self, c: Container) -> None:
        if c.cgroup is not None:
            try:
                c.cgroup.kill(signal.SIGKILL)
            except CgroupError as e:
                c.log.warning("cgroup_kill_failed", error=str(e))
        if c.shim is not None:
            c.shim.signal_init(signal.SIGKILL)  # the pid namespace takes the rest

    async def kill(self, name: str, sig: int, *, init_only: bool = False) -> int:
        """Send ``sig`` to every process of the container (or only its init,
        which forwards it to an application); returns how many got it."""
        c = self.get(name)
        if c.state is State.STOPPED or c.cgroup is None or c.shim is None:
            raise WrongState(f"container {name!r} is not running", container=name)
        if init_only:
            c.shim.signal_init(sig)
            return 1
        return c.cgroup.kill(sig)

    # ----------------------------------------------------------- freeze

    async def freeze(self, name: str, *, rule: str | None = None) -> None:
        """Freeze and return once the kernel confirms FROZEN; undone on timeout.

        The freeze is recorded as the user's or ``rule``'s: a rule's
        :meth:`unfreeze` does not undo a user's freeze.
        """
        c = self.get(name)
        async with c.lock:
            if not states.can_freeze(c.state) or c.cgroup is None:
                raise WrongState(f"container {name!r} is {c.state.value}, not RUNNING")
            cg = c.cgroup
            cg.request_freeze(True)  # first: if the kernel refuses, nothing changed
            c.transition(State.FREEZING, _cause(rule), rule=rule)
            c.frozen_by = f"rule:{rule}" if rule else "user"
            failure = f"did not freeze within {self.freeze_timeout:g} s"
            frozen = False

            def done() -> bool:
                nonlocal frozen
                frozen = c.state is State.FREEZING and cg.freezer_state() == "FROZEN"
                return frozen or c.state is not State.FREEZING

            try:
                with trio.move_on_after(self.freeze_timeout):
                    await self._observe(c, done)
            except LxcflowError as e:
                frozen, failure = False, str(e)
            if c.state is not State.FREEZING:
                raise WrongState(f"container {name!r} stopped while freezing")
            if not frozen:
                # Never left half-frozen: undo, and say so in the event.
                try:
                    cg.request_freeze(False)
                except LxcflowError as e:
                    c.log.error("thaw_failed", error=str(e))
                c.transition(State.RUNNING, _cause(rule), detail=f"freeze_failed: {failure}",
                             rule=rule)
                raise OperationTimeout(f"container {name!r} {failure}")
            c.transition(State.FROZEN, Cause.KERNEL)
            self._record_freezer(c)

    async def unfreeze(self, name: str, *, rule: str | None = None) -> None:
        """Thaw and return once the kernel confirms the container runs.

        Raises:
            WrongState: not FROZEN; or ``rule`` asks and a user froze it.
        """
        c = self.get(name)
        async with c.lock:
            if not states.can_unfreeze(c.state) or c.cgroup is None:
                raise WrongState(f"container {name!r} is {c.state.value}, not FROZEN")
            if rule is not None and not (c.frozen_by or "").startswith("rule:"):
                raise WrongState(f"container {name!r} was frozen by a user, not by a rule")
            cg = c.cgroup
            cg.request_freeze(False)
            try:
                with trio.fail_after(self.freeze_timeout):
                    await self._observe(
                        c, lambda: c.state is not State.FROZEN or cg.freezer_state() == "THAWED"
                    )
            except trio.TooSlowError:
                raise OperationTimeout(f"container {name!r} did not thaw") from None
            if c.state is State.FROZEN:
                c.transition(State.RUNNING, _cause(rule), rule=rule)
                self._record_freezer(c)

    # ----------------------------------------------------------- queries

    def info(self, name: str) -> dict[str, Any]:
        """What ``lxc-info`` shows, as a dict."""
        c = self.get(name)
        out: dict[str, Any] = {
            "name": c.name,
            "state": c.state.value,
            "pid": c.shim.init_pid if c.shim else None,
            "ephemeral": c.ephemeral,
            "cpu_ns": None,
            "memory_bytes": None,
            "ipv4": [ip for i in c.interfaces for ip in i.ipv4],
            "interfaces": [
                {"name": i.name, "host": i.host, "link": i.link, "ipv4": list(i.ipv4),
                 "ipv6": list(i.ipv6), "host_counters": _counters(i.host)}
                for i in c.interfaces
            ],
            "frozen_since_ns": c.frozen_since_ns,
            "frozen_by": c.frozen_by,
            "frozen_total_ns": c.frozen_total_ns + (
                time.time_ns() - c.frozen_since_ns if c.frozen_since_ns else 0),
            "last_exit": None,
        }
        if c.last_exit is not None:
            out["last_exit"] = {"code": c.last_exit.code, "signal": c.last_exit.signal}
        if c.cgroup is not None and c.state is not State.STOPPED:
            try:
                out["cpu_ns"] = c.cgroup.cpu_usage_ns()
                out["memory_bytes"] = c.cgroup.memory_bytes()
            except (CgroupError, LxcflowError):
                pass
        return out

    def list_containers(self) -> list[dict[str, Any]]:
        return [
            {
                "name": c.name,
                "state": c.state.value,
                "pid": c.shim.init_pid if c.shim else None,
                "ephemeral": c.ephemeral,
                "ipv4": [ip for i in c.interfaces for ip in i.ipv4],
            }
            for c in sorted(self.containers.values(), key=lambda c: c.name)
        ]

    def ps(self, name: str) -> list[dict[str, Any]]:
        c = self._running(name)
        assert c.cgroup is not None
        found = (proc.process_info(pid) for pid in sorted(c.cgroup.pids()))
        return [{"pid": p.pid, "ns_pid": p.ns_pid, "command": p.command} for p in found if p]

    def priority(self, name: str, value: int | None = None) -> int:
        c = self._running(name)
        assert c.cgroup is not None
        if value is not None:
            c.cgroup.set_priority(value)
        return c.cgroup.priority()

    def cgroup_attr(self, name: str, key: str, value: str | None = None) -> str:
        c = self._running(name)
        assert c.cgroup is not None
        if value is not None:
            c.cgroup.set(key, value)
        return c.cgroup.get(key)

    def _running(self, name: str) -> Container:
        c = self.get(name)
        if c.state is State.STOPPED or c.cgroup is None:
            raise WrongState(f"container {name!r} is not running", container=name)
        return c


def _counters(host: str) -> dict[str, int] | None:
    """rx/tx bytes and packets of a host-side interface (None once it is gone);
    from sysfs, so ``info`` needs no netlink."""
    base = Path("/sys/class/net", host, "statistics")
    try:
        return {key: int((base / key).read_text())
                for key in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")}
    except (OSError, ValueError):
        return None


def _cause(rule: str | None) -> Cause:
    return Cause.RULE if rule else Cause.COMMAND


def _reason(e: BaseException, start_timeout: float) -> str:
    if isinstance(e, trio.TooSlowError):
        return f"not running after {start_timeout:g} s"
    if isinstance(e, trio.Cancelled):
        return "cancelled"
    if isinstance(e, OSError):
        return f"{e.filename or ''}: {e.strerror}".lstrip(": ")
    return str(e) or type(e).__name__
