"""Build, spawn and talk to ``lxcflow-shim``, the per-container keeper (shim/*.c)."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from lxcflow.errors import LxcflowError, StartFailed
from lxcflow.runtime import proc

SOURCE_DIR = Path(__file__).with_name("shim")  # its .c files, built together, and shim.h
DEFAULT_BINARY = Path(__file__).parent / "bin" / "lxcflow-shim"


def binary_path() -> Path:
    """Where the shim is: ``$LXCFLOW_SHIM`` or next to its source."""
    return Path(os.environ.get("LXCFLOW_SHIM", DEFAULT_BINARY))


def ensure_built(binary: Path | None = None) -> Path:
    """Compile the shim if it is missing or older than any of its sources.

    Raises:
        LxcflowError: when no C compiler can build it (the message says how).
    """
    binary = binary or binary_path()
    sources = sorted(SOURCE_DIR.glob("*.c"))
    if binary.exists():
        built = binary.stat().st_mtime
        if all(f.stat().st_mtime <= built for f in [*sources, *SOURCE_DIR.glob("*.h")]):
            return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}")
    cmd = [os.environ.get("CC", "cc"), "-O2", "-Wall", "-o", str(tmp), *map(str, sources),
           "-lseccomp"]
    # Static first: no dynamic loader relocations, so each shim dirties about
    # 40 KiB less (measured: 64-72 KiB private vs 108-116 KiB dynamic); the
    # binary's own pages are shared by every shim. Dynamic if no libc.a.
    for extra in (["-static"], []):
        try:
            subprocess.run(cmd + extra, check=True, capture_output=True, text=True)
            break
        except FileNotFoundError:
            raise LxcflowError(
                f"cannot build {binary.name}: no C compiler ({cmd[0]}); install gcc"
            ) from None
        except subprocess.CalledProcessError as e:
            failure = (e.stderr.strip().splitlines() or ["?"])[-1]
            if "seccomp.h" in e.stderr or "-lseccomp" in e.stderr:
                failure = "libseccomp is missing (install libseccomp-dev)"
    else:
        raise LxcflowError(f"cannot build {binary.name}: {failure}")
    os.replace(tmp, binary)
    return binary


@dataclass(slots=True)
class Shim:
    """A running shim, pidfds on it and on the container's init."""

    pid: int
    pidfd: int
    init_pid: int
    init_pidfd: int  # -1 when the init was already gone
    own_child: bool  # spawned by this daemon (so this daemon must reap it)
    #: the report pipe, whose last line is the keeper's "exit STATUS" at the
    #: reap (-1: adopted, or read), and what was read of it past the "ok"
    report_fd: int = -1
    report_rest: bytes = b""

    def signal_init(self, sig: int) -> None:
        """Signal the container's init through its pidfd: never a reused PID."""
        if self.init_pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.init_pidfd, sig)
            except ProcessLookupError:
                pass

    async def init_exited(self) -> None:
        """Return once the init has exited, zombie or reaped (its pidfd turns
        readable and stays so); at once if it was gone when the run began."""
        if self.init_pidfd >= 0:
            await trio.lowlevel.wait_readable(self.init_pidfd)

    async def keeper_status(self) -> int | None:
        """The init's raw wait status as the keeper reports it when it reaps
        it, at once after the exit (the status its exit record holds: in an
        application container the command's); None for an adopted run, which
        has no report pipe, or a keeper that ended without a word.

        The caller bounds the wait: a keeper stopped by a debugger never reaps.
        """
        if self.report_fd < 0:
            return None
        try:
            line, self.report_rest = await _read_line(self.report_fd, self.report_rest)
        finally:
            os.close(self.report_fd)
            self.report_fd = -1
        kind, _, value = line.partition(" ")
        return int(value) if kind == "exit" and value.lstrip("-").isdigit() else None

    async def init_status(self) -> int | None:
        """The exited init's raw wait status as the kernel keeps it after the
        keeper's reap (which follows the exit at once); None where the kernel
        cannot tell (before 6.15), or without a pidfd on the init. Not always
        what wait(2) told the keeper: see :func:`~lxcflow.daemon.halting.seen_exit`.

        The caller bounds the wait for the reap: a keeper stopped by a
        debugger never reaps.
        """
        if self.init_pidfd < 0:
            return None
        try:
            status = proc.exit_status(self.init_pidfd)
            if status is not None:
                return status
            # A pidfd reports EPOLLHUP once its process is reaped: an epoll
            # set asking for no event but that one turns readable then.
            with select.epoll() as reaped:
                reaped.register(self.init_pidfd, 0)
                await trio.lowlevel.wait_readable(reaped.fileno())
            return proc.exit_status(self.init_pidfd)
        except NotImplementedError:
            return None

    async def reap(self) -> None:
        """Wait for the shim to exit and collect it if it is this daemon's child.

        The caller bounds the wait: a shim waits for an init that may hang in
        the kernel (a stuck mount), and that must never block the event loop.
        """
        if self.pidfd >= 0:
            await trio.lowlevel.wait_readable(self.pidfd)
        if self.own_child:
            try:
                os.waitpid(self.pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: never blocks)
            except ChildProcessError:
                pass
            self.own_child = False

    def close(self) -> None:
        for fd in (self.pidfd, self.init_pidfd, self.report_fd):
            if fd >= 0:
                os.close(fd)
        self.pidfd = self.init_pidfd = self.report_fd = -1


def adopt(pid: int, start: int, init_pid: int) -> Shim | None:
    """A shim a previous daemon spawned, if it is still that process and alive."""
    pidfd = proc.open_pidfd(pid, start)
    if pidfd is None:
        return None
    if proc.has_exited(pidfd):  # a zombie waiting for its new parent: it ended
        os.close(pidfd)
        return None
    # The init is the shim's child and stays unreaped while the shim lives, so
    # its PID cannot be reused; checking the parent rules out a stale record.
    init_pidfd = proc.open_pidfd(init_pid, None)
    if init_pidfd is not None and proc.parent_pid(init_pid) != pid:
        os.close(init_pidfd)
        init_pidfd = None
    return Shim(pid, pidfd, init_pid, -1 if init_pidfd is None else init_pidfd, own_child=False)


def spawn_with_fds(binary: Path, args: Sequence[str], fds: Sequence[int]) -> int:
    """Start ``binary ARGS`` with ``fds`` as its descriptors 0, 1, 2, ... (and
    no others), an empty environment, in a session of its own; its pid.

    setsid: the shim (and so the container) must not share the daemon's
    session or process group, or a terminal's ^C would reach it.
    """
    # Copied above 9 first: a source that is itself 3 or 4 would otherwise
    # be overwritten by an earlier dup2 before its own turn.
    sources: list[int] = []
    try:
        for fd in fds:
            sources.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(sources)]
        return os.posix_spawn(str(binary), [str(binary), *args], {}, file_actions=actions,
                              setsid=True)
    finally:
        for fd in sources:
            os.close(fd)


async def spawn(
    binary: Path, spec_file: Path, *, stdio: tuple[int, int, int], netns: int | None = None,
    userns: int | None = None,
) -> Shim:
    """Start a shim and wait for its report: returns once the command was exec'd.

    The shim gets an empty environment; the container's travels in the spec.
    ``netns``: a prepared network namespace (an fd) for the container to join;
    ``userns``: the user namespace (an fd) of an unprivileged container.

    Raises:
        StartFailed: with the shim's own words when setup or exec failed.
    """
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    fds = [*stdio, report_w]
    if netns is not None or userns is not None:
        fds.append(netns if netns is not None else stdio[0])  # fd 4: unread without netns=1
    if userns is not None:
        fds.append(userns)
    try:
        pid = spawn_with_fds(binary, [str(spec_file)], fds)
    except BaseException as e:
        os.close(report_r)
        if isinstance(e, OSError):
            raise StartFailed(f"cannot run {binary}: {e.strerror}") from None
        raise
    finally:
        os.close(report_w)
    pidfd = -1
    try:
        os.set_blocking(report_r, False)
        pidfd = os.pidfd_open(pid)
        line, rest = await _read_line(report_r, b"")
        if not line.startswith("ok "):
            reason = line.removeprefix("error ").strip() or "the shim exited without a report"
            raise StartFailed(reason)
        init_pid = int(line[3:])
    except BaseException:
        os.close(report_r)
        if pidfd >= 0:
            os.close(pidfd)
        _kill_and_reap(pid)
        raise
    try:
        init_pidfd = os.pidfd_open(init_pid)
    except ProcessLookupError:
        init_pidfd = -1  # it ended at once; the shim has reaped it and will tell
    return Shim(pid, pidfd, init_pid, init_pidfd, own_child=True, report_fd=report_r,
                report_rest=rest)


async def _read_line(fd: int, buffered: bytes) -> tuple[str, bytes]:
    """One line from a non-blocking pipe (with what was read past the last
    line before), and what was read past it; "" at the end of the pipe."""
    data = buffered
    while b"\n" not in data:
        await trio.lowlevel.wait_readable(fd)
        try:
            chunk = os.read(fd, 1024)
        except BlockingIOError:
            continue
        if not chunk:
            return "", b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line.decode(errors="replace"), rest


def _kill_and_reap(pid: int) -> None:
    # Blocking is safe: a SIGKILLed shim exits at once. It never mounts or
    # execs itself; its child (the init) does, and that dies by PDEATHSIG.
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


if __name__ == "__main__":
    print(ensure_built())
    sys.exit(0)
