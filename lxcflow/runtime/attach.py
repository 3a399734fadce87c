"""A command run inside a running container: ``lxcflow-shim attach`` (shim/attach.c).

The spec travels in a memfd (never a file another process could read), the
namespaces to enter as a pidfd of the container's init, the stdio as the
caller's own descriptors.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from lxcflow.runtime.shim import spawn_with_fds
from lxcflow.runtime.spec import encode_records

#: what the attach shim exits with when it failed before the command ran
SETUP_FAILED = 125


@dataclass(frozen=True, slots=True)
class AttachSpec:
    """What to run, as whom and where, in the container whose init is ``init_pid``."""

    init_pid: int
    cgroup_procs: tuple[Path, ...]
    command: tuple[str, ...]  # empty: the user's login shell inside
    env: Mapping[str, str]
    uid: int = 0
    gid: int = 0
    cwd: str | None = None
    cwd_strict: bool = False  # a missing cwd is an error (else: /)
    tty: bool = False
    # the container's init's records (Confinement.records); () only in tests
    confinement: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        """The NUL-terminated records attach.c reads.

        Raises:
            UsageError: a NUL byte, or an environment name the kernel cannot take.
        """
        records = [("init", str(self.init_pid)), ("uid", str(self.uid)), ("gid", str(self.gid)),
                   ("tty", "1" if self.tty else "0")]
        if self.cwd is not None:
            records += [("cwd", self.cwd), ("cwd_strict", "1" if self.cwd_strict else "0")]
        records += [("cgroup", str(p)) for p in self.cgroup_procs]
        records += self.confinement
        return encode_records(records, self.command, self.env)


@dataclass(slots=True)
class Attached:
    """A running attach shim (this process's child)."""

    pid: int
    pidfd: int

    def signal(self, sig: int) -> None:
        """Signal it (it passes the signal on to the command)."""
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    async def wait(self) -> tuple[int | None, int | None]:
        """Wait for it to end: (exit code, None) or (None, signal)."""
        await trio.lowlevel.wait_readable(self.pidfd)
        _, status = os.waitpid(self.pid, 0)  # noqa: ASYNC222 (it has exited: no wait)
        os.close(self.pidfd)
        self.pidfd = -1
        if os.WIFSIGNALED(status):
            return None, os.WTERMSIG(status)
        return os.waitstatus_to_exitcode(status), None


def spawn(binary: Path, spec: AttachSpec, *, stdio: Sequence[int], init_pidfd: int) -> Attached:
    """Start the attach shim on ``stdio`` (three fds) for the init behind ``init_pidfd``.

    Raises:
        UsageError: the spec cannot be encoded.
        OSError: the shim cannot be run.
    """
    data = spec.encode()
    memfd = os.memfd_create("lxcflow-attach", os.MFD_CLOEXEC)
    try:
        os.write(memfd, data)
        pid = spawn_with_fds(binary, ["attach"], [*stdio, init_pidfd, memfd])
    finally:
        os.close(memfd)
    return Attached(pid, os.pidfd_open(pid))
