"""Templates: programs that fill a new container's root file system and add
to its config, called as LXC calls its own: ``--path DIR --name NAME
--rootfs DIR/rootfs``, then the user's options, in a mount namespace of
their own (what a template mounts, debootstrap's /proc say, never reaches
the host).

``-t NAME`` is lxcflow's template ``lxcflow/templates/NAME`` if there is
one, else LXC's ``/usr/share/lxc/templates/lxc-NAME``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import trio

from lxcflow.errors import LxcflowError, UsageError

OWN = Path(__file__).resolve().parents[1] / "templates"
LXC_TEMPLATES = Path("/usr/share/lxc/templates")


def _available() -> list[str]:
    own = sorted(p.name for p in OWN.iterdir() if os.access(p, os.X_OK))
    try:
        theirs = sorted(p.name.removeprefix("lxc-") for p in LXC_TEMPLATES.glob("lxc-*"))
    except OSError:
        theirs = []
    return own + [t for t in theirs if t not in own]


def find(name: str) -> Path:
    """The program of template ``name``.

    Raises:
        UsageError: there is no such template (the message lists those there are).
    """
    if name and "/" not in name and not name.startswith("."):
        for candidate in (OWN / name, LXC_TEMPLATES / f"lxc-{name}"):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    raise UsageError(f"no template {name!r} (there are: {', '.join(_available()) or 'none'})")


async def _kill_group(process: trio.Process) -> None:
    """A cancelled create ends the whole template: debootstrap, its dpkg, all."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run(template: Path, *, name: str, directory: Path, args: Sequence[str]) -> None:
    """Run ``template`` for container ``name`` whose directory is ``directory``.

    Raises:
        LxcflowError: it failed, with the last lines it wrote.
    """
    argv = ["unshare", "--mount", "--propagation", "private", str(template),
            "--path", str(directory), "--name", name, "--rootfs", str(directory / "rootfs"),
            *args]
    result = await trio.run_process(argv, stdin=subprocess.DEVNULL, capture_stdout=True,
                                    capture_stderr=True, check=False, start_new_session=True,
                                    deliver_cancel=_kill_group)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        last = " / ".join(said[-3:]) or "no message"
        raise LxcflowError(f"template {template.name} failed (exit {result.returncode}): {last}")
