"""What a running container leaves on disk for the next daemon to find.

``<rundir>/containers/<name>/state.json`` is written atomically once the
container is RUNNING; the shim writes ``exit`` beside it when the init dies.
Together they let a daemon that was killed re-adopt the container, or learn
how it ended, without ever mistaking a reused PID for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lxcflow.runtime.spec import RunMode

STATE_FILE = "state.json"
EXIT_FILE = "exit"
#: who froze a FROZEN container ("user", "rule:NAME", "outside"), for the next daemon
FROZEN_BY_FILE = "frozen_by"
SPEC_FILE = "spec"
CONFIG_FILE = "config"
#: the keeper's socket: consoles, ttys, log followers (shim/keeper.c)
CONSOLE_SOCKET = "console.sock"


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface of a running container."""

    name: str  # inside the container
    host: str  # the host end of its veth pair
    link: str | None  # the bridge the host end is on
    ipv4: tuple[str, ...]  # "A.B.C.D/prefix"
    ipv6: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunState:
    """One run of one container."""

    name: str
    mode: RunMode
    shim_pid: int
    shim_start: int  # clock ticks since boot: with the pid, the shim's identity
    init_pid: int  # the container's init; it dies with the shim (PDEATHSIG)
    started_ns: int
    config_file: str  # the config this run uses (a copy for ephemeral containers)
    ephemeral: bool  # started with -f and never created: forgotten once STOPPED
    command: tuple[str, ...] = ()  # what it runs: a restart runs it again
    interfaces: tuple[Interface, ...] = ()
    # the init's confinement records (runtime/confinement.py), which every
    # attach gets too, whatever the config file says by then; () from a
    # daemon that did not keep them
    confinement: tuple[tuple[str, str], ...] = ()

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, run_dir / STATE_FILE)

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        """Raises OSError, ValueError or TypeError for a missing or damaged file."""
        data = json.loads((run_dir / STATE_FILE).read_text())
        data["interfaces"] = tuple(
            Interface(**{**i, "ipv4": tuple(i["ipv4"]), "ipv6": tuple(i.get("ipv6", ()))})
            for i in data.get("interfaces", ()))
        data["mode"] = RunMode(data["mode"])
        data["command"] = tuple(data.get("command", ()))
        data["confinement"] = tuple((str(k), str(v)) for k, v in data.get("confinement", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a container's command ended: an exit code or a signal."""

    code: int | None
    signal: int | None

    @classmethod
    def of_wait_status(cls, status: int) -> ExitStatus:
        """From a raw wait(2) status."""
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status))
        return cls(os.WEXITSTATUS(status), None)

    @classmethod
    def read(cls, run_dir: Path) -> ExitStatus | None:
        """The status the shim recorded, or None if it recorded none."""
        try:
            kind, value = (run_dir / EXIT_FILE).read_text().split()
        except (OSError, ValueError):
            return None
        return cls(code=int(value), signal=None) if kind == "exit" else cls(None, int(value))
