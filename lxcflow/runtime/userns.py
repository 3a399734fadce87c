"""The user namespace of an unprivileged container (``lxc.idmap``).

Made before the shim starts, as the network namespace is, and with it: a
container's own network namespace comes from the same ``unshare``
(shim/userns.c), so the
user namespace owns it and container root may mount sysfs and administer
its interfaces, while the daemon configures them from the host first. A
process of this daemon's cannot make it: ``unshare(CLONE_NEWUSER)`` wants a
single-threaded caller.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxcflow.config import ContainerConfig
from lxcflow.config.idmap import IdMap, host_root
from lxcflow.errors import StartFailed


@dataclass(frozen=True, slots=True)
class UserNamespace:
    """A user namespace and the network namespace it owns (None: the
    container shares the host's), as fds the caller closes."""

    user: int
    net: int | None


def create(shim: Path, maps: Sequence[IdMap], *, net: bool) -> UserNamespace:
    """A new user namespace with ``maps``, and with ``net`` a network
    namespace it owns (blocking: run it in a worker thread).

    Raises:
        StartFailed: the kernel refused the namespace or the maps.
    """
    holder = subprocess.Popen([str(shim), "userns", *(["net"] if net else [])],
                              stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env={}, close_fds=True)
    assert holder.stdin is not None
    assert holder.stdout is not None
    opened: list[int] = []
    try:
        said = holder.stdout.readline().decode(errors="replace").strip()
        if said != "ok":
            raise StartFailed(said.removeprefix("error ") or "cannot create a user namespace")
        proc = Path(f"/proc/{holder.pid}")
        # gid_map needs no setgroups=deny: the writer is root of the parent.
        for kind, file in (("u", "uid_map"), ("g", "gid_map")):
            text = "".join(m.line_text() for m in maps if m.kind == kind)
            try:
                (proc / file).write_text(text)
            except OSError as e:
                raise StartFailed(f"cannot write the user namespace's {file}: "
                                  f"{e.strerror}") from None
        for ns in ("user", "net") if net else ("user",):
            opened.append(os.open(proc / "ns" / ns, os.O_RDONLY | os.O_CLOEXEC))
        return UserNamespace(opened[0], opened[1] if net else None)
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    finally:
        holder.stdin.close()  # it exits: the fds hold the namespaces now
        holder.stdout.close()
        holder.wait()


def idmaps_rootfs(config: ContainerConfig) -> bool:
    """Whether an unprivileged container's rootfs is mounted idmapped.

    A tree whose top belongs to the mapped root is shifted already (LXC's
    unprivileged containers are chowned so): mapped again, its files would
    be nobody's. Any other tree (one host root made) is idmapped, so that
    it boots as it is on disk; ``lxc.rootfs.options = idmap=container``
    asks for that either way.

    Raises:
        OSError: the rootfs cannot be looked at.
    """
    if config.rootfs is None or not config.idmap:
        return False
    return config.rootfs_idmap or config.rootfs.stat().st_uid != host_root(config.idmap)[0]
