"""Whether LXC itself runs a container: its monitor answers on the container's
command socket, an abstract Unix socket named after the lxcpath and the
container (``\\0<lxcpath>/<name>/command``, or ``\\0lxc/<FNV-1a 64>/command``
when that is too long), as LXC's commands_utils.c names it.

Two supervisors on one container would each take the other's processes for
their own: lxcflow refuses to start what LXC runs.
"""

from __future__ import annotations

import socket
from pathlib import Path

#: sun_path minus the leading NUL and the terminating one LXC keeps room for
_NAME_MAX = 108 - 2


def _fnv1a_64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def command_socket(lxcpath: Path, name: str) -> bytes:
    """The abstract address of LXC's command socket for ``name`` in ``lxcpath``."""
    plain = f"{lxcpath}/{name}/command".encode()
    if len(plain) < _NAME_MAX:
        return b"\0" + plain
    digest = _fnv1a_64(f"{lxcpath}/{name}".encode())
    return b"\0" + f"lxc/{digest:016x}/command".encode()


def runs(lxcpath: Path, name: str) -> bool:
    """Whether an LXC monitor answers for ``name`` in ``lxcpath``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(command_socket(lxcpath, name))
        except OSError:
            return False
    return True
