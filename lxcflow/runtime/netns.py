"""A thread's visit to another network namespace, and back; and a socket
made there, connected again and again.

setns(2) moves only the calling thread, so the daemon does this in worker
threads and never in the trio thread; a worker that could not come back
would serve later jobs from a container's namespace, so it ends the process.
A socket stays in the namespace it was made in whichever thread uses it,
and a TCP socket whose connection is dissolved may connect again: a probe
pays the visit once per run, not once per connect. Stdlib only: a probe's
socket needs no netlink library.
"""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from lxcflow.errors import NetworkError

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def returning() -> Iterator[None]:
    """Bring the calling thread back to its network namespace afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        if _libc.setns(own, CLONE_NEWNET) != 0:
            # This (worker) thread would go on in a container's namespace.
            os.abort()
        os.close(own)


@contextmanager
def inside(netns: int) -> Iterator[None]:
    """Run the block in the network namespace of ``netns``: a namespace fd,
    or a pidfd (that process's namespace)."""
    with returning():
        if _libc.setns(netns, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetworkError(f"cannot enter the network namespace: {os.strerror(err)}")
        yield


def unshare() -> int:
    """A new, empty network namespace as an fd: no mount, no process holds it."""
    with returning():
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetworkError(f"cannot create a network namespace: {os.strerror(err)}")
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def tcp_socket_in(netns: int) -> socket.socket:
    """A non-blocking TCP socket that belongs to ``netns`` (a socket stays in
    the namespace it was made in, whichever thread uses it later)."""
    with inside(netns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)


#: a struct sockaddr whose sa_family is AF_UNSPEC (0): what connect(2) takes
#: to dissolve a socket's association
_UNSPEC = (ctypes.c_ubyte * 16)()


def disconnect(fd: int) -> bool:
    """Dissolve a TCP socket's connection (connect(2) to AF_UNSPEC: a reset
    if it was connected, and no TIME_WAIT), leaving the socket free to
    connect again, in the namespace it was made in. False if the kernel
    refused (the socket is then only good for closing)."""
    return _libc.connect(fd, _UNSPEC, len(_UNSPEC)) == 0

