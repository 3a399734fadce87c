"""Facts about host processes read from /proc and pidfds.

A PID alone never identifies a process for long: the kernel reuses them. A
(pid, start time) pair does, and a pidfd pins one for as long as it is open.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
from dataclasses import dataclass

#: ``_IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info)`` for the struct's first
#: 64 bytes (PIDFD_INFO_SIZE_VER0), which hold the exit status
PIDFD_GET_INFO = 0xC040FF0B
PIDFD_INFO_EXIT = 1 << 3
_EXIT_CODE_OFFSET = 60  # struct pidfd_info: mask, cgroupid, 11 ids, then exit_code


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def open_pidfd(pid: int, expected_start: int | None) -> int | None:
    """A pidfd for ``pid`` if it is still the process that started at ``expected_start``.

    The pidfd is opened first and the start time checked after, so a PID
    reused in between cannot slip through.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if expected_start is not None and start_time(pid) != expected_start:
        os.close(fd)
        return None
    return fd


def has_exited(pidfd: int) -> bool:
    """Whether the process is gone (a pidfd turns readable at exit, zombie or not)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def exit_status(pidfd: int) -> int | None:
    """The raw wait status of the process behind ``pidfd`` once it has been
    reaped (``PIDFD_GET_INFO`` with ``PIDFD_INFO_EXIT``); None while it lives
    or waits as a zombie.

    Raises:
        NotImplementedError: this kernel (before 6.15) cannot tell.
    """
    info = bytearray(64)
    struct.pack_into("Q", info, 0, PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, info)
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL):
            raise NotImplementedError("PIDFD_GET_INFO") from None
        if e.errno == errno.ESRCH:  # reaped before 6.15 kept anything of it
            raise NotImplementedError("PIDFD_INFO_EXIT") from None
        raise
    (mask,) = struct.unpack_from("Q", info, 0)
    if not mask & PIDFD_INFO_EXIT:
        return None
    (status,) = struct.unpack_from("i", info, _EXIT_CODE_OFFSET)
    return int(status)


def parent_pid(pid: int) -> int | None:
    """The PPid of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("PPid:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process of a container, as `ps` shows it."""

    pid: int  # in the host's pid namespace
    ns_pid: int  # in the container's (innermost) pid namespace
    command: str


def process_info(pid: int) -> ProcessInfo | None:
    """What `ps` shows of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            nspid = next((ln.split()[1:] for ln in f if ln.startswith("NSpid:")), [str(pid)])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    command = " ".join(a.decode(errors="replace") for a in argv if a)
    if not command:
        try:
            with open(f"/proc/{pid}/comm") as f:
                command = f"[{f.read().strip()}]"
        except (FileNotFoundError, ProcessLookupError):
            return None
    return ProcessInfo(pid=pid, ns_pid=int(nspid[-1]), command=command)


def blocks_signal(pid: int, sig: int) -> bool:
    """Whether the process has ``sig`` blocked (its SigBlk mask); False if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigBlk:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False
    return bool(mask & (1 << (sig - 1)))
