"""Sleeps shorter than a millisecond that last what they say.

trio sleeps in epoll_wait, whose timeout is in whole milliseconds, and
Python rounds up: a 0.1 ms sleep lasts a millisecond or more (a freeze's
second look at the cgroup came 1.3-3.5 ms after its first, measured). A
timerfd expires at the nanosecond it is set for and wakes epoll as any
readable fd does.
"""

from __future__ import annotations

import ctypes
import os

import trio

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


class PreciseTimer:
    """A timerfd to sleep on, one sleep at a time.

    Raises (on creation):
        OSError: the kernel would not make one (out of fds).
    """

    def __init__(self) -> None:
        fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd = fd

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (more than 0), to the microsecond."""
        try:  # an expiry left over from a sleep that was cancelled
            os.read(self.fd, 8)
        except BlockingIOError:
            pass
        ns = max(1, int(seconds * 1e9))
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 1_000_000_000, ns % 1_000_000_000))
        if _libc.timerfd_settime(self.fd, 0, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
        await trio.lowlevel.wait_readable(self.fd)

    def close(self) -> None:
        os.close(self.fd)
