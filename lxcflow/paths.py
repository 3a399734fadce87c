"""Where lxcflow keeps things; every path is configurable so tests use temp dirs.

Imported by the CLI on every call, where every millisecond shows: standard
library only, no pathlib (with what it imports, about 25 ms), not even os
(about 2 ms: os.environ pulls in _collections_abc). Paths are kept as text;
the daemon's side asks for :class:`~pathlib.Path` objects, and only then is
pathlib imported.
"""

from __future__ import annotations

import posix  # os without its Python layer: already loaded when Python starts
import sys

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike
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

    Attributes:
        socket_address: the socket's path as text, what ``connect()`` takes.
        cgroup_parent: the cgroup directory holding the containers.
    """

    __slots__ = ("_lxcpath", "socket_address", "cgroup_parent")

    def __init__(
        self, lxcpath: str | PathLike[str], socket: str | PathLike[str],
        cgroup_parent: str = DEFAULT_CGROUP_PARENT,
    ) -> None:
        self._lxcpath = posix.fspath(lxcpath)
        self.socket_address = posix.fspath(socket)
        self.cgroup_parent = cgroup_parent

    def __repr__(self) -> str:
        return f"Paths({self._lxcpath!r}, {self.socket_address!r}, {self.cgroup_parent!r})"

    @classmethod
    def from_env(
        cls, lxcpath: str | None = None, socket: str | None = None, cgroup_parent: str | None = None
    ) -> Paths:
        """Options win over LXCFLOW_PATH / LXCFLOW_SOCKET / LXCFLOW_CGROUP, then defaults."""
        return cls(
            lxcpath=absolute(lxcpath or _getenv("LXCFLOW_PATH") or DEFAULT_LXCPATH),
            socket=absolute(socket or _getenv("LXCFLOW_SOCKET") or DEFAULT_SOCKET),
            cgroup_parent=cgroup_parent or _getenv("LXCFLOW_CGROUP") or DEFAULT_CGROUP_PARENT,
        )

    @property
    def lxcpath(self) -> Path:
        """The directory of created containers."""
        return _path(self._lxcpath)

    @property
    def socket(self) -> Path:
        """The daemon's socket (the client connects to :attr:`socket_address`)."""
        return _path(self.socket_address)

    @property
    def rundir(self) -> Path:
        return self.socket.parent

    def container_dir(self, name: str) -> Path:
        return self.lxcpath / name

    def config_file(self, name: str) -> Path:
        return self.lxcpath / name / "config"

    def run_dir(self, name: str) -> Path:
        return self.rundir / "containers" / name

    @property
    def seccomp_cache(self) -> Path:
        """Compiled seccomp programs, one per profile (runtime/seccomp.py)."""
        return self.rundir / "seccomp"

    def console_log(self, name: str, logfile: str | None, *, ephemeral: bool) -> Path:
        """Where a container's console is logged: ``lxc.console.logfile``, else
        beside its config (it outlives the run, for post-mortems), or in the
        run directory of an ephemeral one, which has no other."""
        if logfile:
            from pathlib import Path

            return Path(logfile)
        return (self.run_dir(name) if ephemeral else self.container_dir(name)) / "console.log"


def _getenv(name: str) -> str | None:
    """``os.environ.get(name)``, without importing os."""
    os = sys.modules.get("os")
    if os is not None:
        # posix.environ is a copy taken at start-up: os.environ has any change since.
        return os.environ.get(name)
    value = posix.environ.get(name.encode())  # bytes, decoded as os.environ decodes them
    if value is None:
        return None
    return value.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def absolute(path: str) -> str:
    """``path`` joined to the working directory, ``..`` kept as Path.absolute() keeps it
    (without importing os, as everything the CLI imports)."""
    return path if path.startswith("/") else f"{posix.getcwd()}/{path}"


def _path(text: str) -> Path:
    from pathlib import Path  # the daemon's side only: see the module's docstring

    return Path(text)
