"""Where lxcflow keeps things; every path is configurable so tests use temp dirs.

Imported by the CLI: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LXCPATH = "/var/lib/lxcflow"
DEFAULT_SOCKET = "/run/lxcflow/lxcflow.sock"
DEFAULT_CGROUP_PARENT = "lxcflow"


class Paths:
    """The directories and socket of one lxcflow installation.

    ``lxcpath`` holds created containers (``<lxcpath>/<name>/config``, as
    LXC's /var/lib/lxc); the run directory (the socket's directory, a tmpfs
    normally) holds what lives only while containers run. A plain class, not
    a dataclass: the CLI imports this on every call, and dataclasses pulls
    in inspect (about 9 ms here).
    """

    __slots__ = ("lxcpath", "socket", "cgroup_parent")

    def __init__(
        self, lxcpath: Path, socket: Path, cgroup_parent: str = DEFAULT_CGROUP_PARENT
    ) -> None:
        self.lxcpath = lxcpath
        self.socket = socket
        self.cgroup_parent = cgroup_parent

    def __repr__(self) -> str:
        return f"Paths({self.lxcpath!r}, {self.socket!r}, {self.cgroup_parent!r})"

    @classmethod
    def from_env(
        cls, lxcpath: str | None = None, socket: str | None = None, cgroup_parent: str | None = None
    ) -> Paths:
        """Options win over LXCFLOW_PATH / LXCFLOW_SOCKET / LXCFLOW_CGROUP, then defaults."""
        return cls(
            lxcpath=Path(lxcpath or os.environ.get("LXCFLOW_PATH") or DEFAULT_LXCPATH).absolute(),
            socket=Path(socket or os.environ.get("LXCFLOW_SOCKET") or DEFAULT_SOCKET).absolute(),
            cgroup_parent=cgroup_parent
            or os.environ.get("LXCFLOW_CGROUP")
            or DEFAULT_CGROUP_PARENT,
        )

    @property
    def rundir(self) -> Path:
        return self.socket.parent

    def container_dir(self, name: str) -> Path:
        return self.lxcpath / name

    def config_file(self, name: str) -> Path:
        return self.lxcpath / name / "config"

    def run_dir(self, name: str) -> Path:
        return self.rundir / "containers" / name
