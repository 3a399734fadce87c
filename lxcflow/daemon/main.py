"""``lxcflow daemon``: the composition root, in the foreground.

Builds the supervisor, the rule engine and the request handlers from one
:class:`DaemonOptions`, serves the control socket, and owns the signals
that end it. Nothing below knows who composed it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import signal
from pathlib import Path

import structlog
import trio

from lxcflow.cgroups import open_manager
from lxcflow.daemon import autostart, handlers, logs, server
from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.events import EventBus
from lxcflow.daemon.journal import JOURNAL_FILE, Journal
from lxcflow.daemon.options import DaemonOptions
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import CgroupError, LxcflowError
from lxcflow.runtime import shim

log = structlog.get_logger("lxcflow.daemon")


def take_lock(rundir: Path) -> int:
    """Hold ``daemon.lock``: one daemon per run directory.

    Raises:
        LxcflowError: another daemon holds it.
    """
    rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(rundir / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise LxcflowError(f"a daemon is already running for {rundir}") from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def serve(options: DaemonOptions, journal: Journal) -> None:
    """Run the supervisor, its rules and the API until SIGTERM or SIGINT."""
    paths = options.paths
    supervisor = Supervisor(
        paths, open_manager(parent=paths.cgroup_parent), shim_binary=shim.ensure_built(),
        bus=EventBus(journal), hooks_dir=options.hooks_dir, hook_timeout=options.hook_timeout,
    )
    engine = RuleEngine(supervisor, options.rules_dir, restart_budget=options.restart_budget,
                        hook_timeout=options.hook_timeout)
    fleet = None
    if options.fleet is not None:
        from lxcflow.daemon.fleet.link import Fleet  # NATS: only when asked for

        engine.host = options.fleet.host
        fleet = Fleet(options.fleet, supervisor, journal, engine)
    services = handlers.Services(supervisor, engine, fleet)
    dispatch = handlers.dispatcher(services)

    async def stop(name: str, kill: bool) -> None:
        await handlers.user_stop(services, name, kill=kill)

    exporter, listeners = None, []
    if options.metrics is not None:
        from lxcflow.daemon import metrics  # prometheus_client: only when asked for

        # Bound first: an address in use refuses the start, before anything runs.
        listeners = await metrics.listen(options.metrics)
        exporter = metrics.Metrics(supervisor, engine)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals, \
            contextlib.closing(journal):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)  # subscribed before adoption: sees recoveries
            if fleet is not None:
                # Refused credentials end the daemon before it adopts anything.
                await nursery.start(fleet.run)
            await nursery.start(supervisor.run)
            await nursery.start(server.serve, paths.socket, dispatch, handlers.OPEN_ENDED)
            if exporter is not None:
                await nursery.start(exporter.serve, listeners)
                log.info("metrics_serving", address=f"http://{options.metrics}/metrics")
            nursery.start_soon(autostart.at_boot, supervisor, stop)
            log.info("daemon_ready", socket=str(paths.socket), pid=os.getpid())
            if options.ready_fd is not None:
                os.write(options.ready_fd, b"ready\n")
                os.close(options.ready_fd)
            async for signum in signals:
                log.info("daemon_stopping", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    try:
        # Leave no empty cgroup parent behind; one with containers stays.
        supervisor.cgroups.remove_parent_if_empty()
    except CgroupError as e:
        log.warning("cgroup_parent_kept", error=str(e))


def raise_fd_limit() -> None:
    """Lift the soft fd limit to the hard one: two pidfds per container."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(options: DaemonOptions) -> int:
    """Entry point from the CLI; returns the exit code."""
    paths, ready_fd = options.paths, options.ready_fd
    logs.configure(options.log_format, options.log_level)
    raise_fd_limit()
    try:
        lock = take_lock(paths.rundir)
        try:
            paths.lxcpath.mkdir(parents=True, exist_ok=True)
            journal = Journal(paths.lxcpath / JOURNAL_FILE, max_events=options.journal_max_events,
                              max_age_s=options.journal_max_age_s,
                              hold_unpublished=options.fleet is not None)
            try:
                trio.run(serve, options, journal)
            except BaseExceptionGroup as group:  # a part that failed to start, in a nursery
                error = _the_error(group)
                if error is None:
                    raise
                return run_failed(error, ready_fd)
        finally:
            os.close(lock)
    except OSError as e:  # the lxcpath or run directory cannot be made
        return run_failed(LxcflowError(f"{e.filename}: {e.strerror}"), ready_fd)
    except LxcflowError as e:
        return run_failed(e, ready_fd)
    return 0


def _the_error(group: BaseExceptionGroup) -> LxcflowError | None:  # type: ignore[type-arg]
    """The user-facing error a nursery wrapped, if that is all it holds."""
    if len(group.exceptions) != 1:
        return None
    inner = group.exceptions[0]
    if isinstance(inner, BaseExceptionGroup):
        return _the_error(inner)
    return inner if isinstance(inner, LxcflowError) else None


def run_failed(e: LxcflowError, ready_fd: int | None) -> int:
    """Tell whoever waits on the readiness pipe, log, and give the exit code."""
    if ready_fd is not None:
        try:
            os.write(ready_fd, f"error {e}\n".encode())
        except OSError:
            pass  # already reported ready; the log says the rest
    log.error("daemon_failed", error=str(e))
    return e.exit_code
