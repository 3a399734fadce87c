"""``attach``: a command in a running container's namespaces and cgroup, with
its environment, for as long as the command runs (lxc-attach's model).

The environment is built in LXC's order: the container's own (PATH,
``container=lxc``, ``lxc.environment``), then the caller's when it is kept,
then the variables the caller sets.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence

import trio

from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import WrongState
from lxcflow.runtime import attach
from lxcflow.runtime.confinement import confinement_for
from lxcflow.runtime.spec import container_env
from lxcflow.states import State

#: seconds a command whose caller hung up has, after SIGHUP, before SIGKILL
HANGUP_GRACE = 5.0


async def start(
    supervisor: Supervisor,
    name: str,
    *,
    command: Sequence[str],
    stdio: Sequence[int],
    caller_env: Mapping[str, str],
    set_env: Mapping[str, str],
    uid: int = 0,
    gid: int = 0,
    cwd: str | None = None,
    cwd_strict: bool = False,
    tty: bool = False,
) -> attach.Attached:
    """Start ``command`` (empty: the login shell) inside ``name``.

    Raises:
        NotFound, WrongState: no such container, or it is not RUNNING (a
            FROZEN one cannot run anything new).
    """
    c, run, cgroup = supervisor.running(name)
    if c.state is not State.RUNNING:
        hint = ": unfreeze it first" if c.state is State.FROZEN else ""
        raise WrongState(f"container {name!r} is {c.state.value}{hint}", container=name)
    config = c.config
    assert config is not None  # a running container has its run's config
    env = container_env(config)
    env.update(caller_env)
    env.update(set_env)
    # The init's own: a config edited since never loosens what attach gets.
    # A run an older daemon recorded without them gets the config's now.
    confinement = run.record.confinement or tuple((await confinement_for(
        config, supervisor.shim_binary, supervisor.paths.seccomp_cache)).records())
    spec = attach.AttachSpec(
        init_pid=run.init_pid, cgroup_procs=tuple(cgroup.procs_files()), command=tuple(command),
        env=env, uid=uid, gid=gid, cwd=cwd, cwd_strict=cwd_strict, tty=tty,
        confinement=confinement,
    )
    return attach.spawn(supervisor.shim_binary, spec, stdio=stdio,
                        init_pidfd=run.shim.init_pidfd)


async def finish(attached: attach.Attached) -> tuple[int | None, int | None]:
    """Wait for the command: (exit code, None) or (None, signal).

    Cancelled (the caller hung up), the command gets SIGHUP as from a
    closed terminal, then SIGKILL; either way it is reaped.
    """
    try:
        return await attached.wait()
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            attached.signal(signal.SIGHUP)
            with trio.move_on_after(HANGUP_GRACE) as grace:
                await attached.wait()
            if grace.cancelled_caught:
                attached.signal(signal.SIGKILL)
                await attached.wait()
        raise
